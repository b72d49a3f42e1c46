"""Strategies that choose the REJECTED response of a preference pair, in a registry.

Every strategy has the same small interface (:class:`Strategy`): given the split's *anchors* (one per cut point:
the prompt's dialogue and its real listener turn, the chosen response) and its *pool* (one candidate per dialogue:
its last listener turn, as in EmPO), return up to ``k`` distinct pool rows per anchor. The pool always comes from
the same split as the anchors (no leakage into ``test``), and a candidate never comes from the anchor's own
dialogue (every strategy draws from other emotions only).

- ``opposite`` (EmPO): a dialogue whose emotion is one of the anchor emotion's opposites
  (:data:`empo.prefs.emotions.OPPOSITES`), the opposite emotion chosen uniformly, then the dialogue uniformly.
- ``distance``: the rejected emotion is drawn with probability proportional to its valence/arousal distance from
  the anchor's emotion raised to ``distance_power`` (:data:`empo.prefs.emotions.VALENCE_AROUSAL`), then a
  dialogue of that emotion uniformly: every other emotion can appear, far ones much more often.
- ``hard``: among dialogues of *distant* emotions (the farthest quarter, plus the opposites), the ones whose topic
  (situation and user turns) is most similar to the anchor's by TF-IDF cosine; ``k`` of the ``hard_top_k`` most
  similar are drawn. On-topic but emotionally wrong: harder pairs than EmPO's random off-topic ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from empo.data.ed import EMOTIONS
from empo.prefs.emotions import OPPOSITES, distance_matrix
from empo.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from empo.prefs.config import PrefsConfig

#: Frames a strategy receives. ``anchors``: ``a`` (row id), ``conv_id``, ``emo`` (index into EMOTIONS),
#: ``topic``; ``pool``: ``p`` (row id), ``conv_id``, ``emo``, ``topic``. A strategy returns a frame with ``a``,
#: ``p`` (UInt32) and ``pair`` (0..k-1, the order of the draws), plus optional float ``similarity``.


class Strategy(ABC):
    """Choose up to ``k`` rejected candidates (pool rows) per anchor."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, cfg: PrefsConfig) -> None:
        self.cfg = cfg

    @abstractmethod
    def pick(
        self, anchors: pl.DataFrame, pool: pl.DataFrame, k: int, rng: np.random.Generator
    ) -> pl.DataFrame:
        """Return ``(a, p, pair)`` rows: at most ``k`` distinct pool rows per anchor, none of its dialogue."""


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def _picks_frame(a: np.ndarray, chosen: np.ndarray, sim: np.ndarray | None = None) -> pl.DataFrame:
    """``chosen`` is (n_anchors, k) pool rows with -1 for "none"; flatten it into ``(a, p, pair)`` rows."""
    import numpy as np
    import polars as pl

    k = chosen.shape[1]
    rows, cols = np.nonzero(chosen >= 0)
    data = {
        "a": pl.Series(a[rows], dtype=pl.UInt32),
        "p": pl.Series(chosen[rows, cols], dtype=pl.UInt32),
        "pair": pl.Series(cols, dtype=pl.UInt8 if k < 256 else pl.UInt32),
    }
    if sim is not None:
        data["similarity"] = pl.Series(sim[rows, cols], dtype=pl.Float32)
    return pl.DataFrame(data)


class EmotionSampler(Strategy):
    """Draw the rejected emotion from a 32x32 weight matrix, then a pool dialogue of it uniformly."""

    #: Redraws of a candidate already drawn for the same anchor, before giving up on that draw.
    rounds: ClassVar[int] = 32

    @abstractmethod
    def weights(self) -> np.ndarray:
        """``W[e, f]``: relative chance that an anchor of emotion ``e`` gets a rejected response of emotion ``f``."""

    def pick(
        self, anchors: pl.DataFrame, pool: pl.DataFrame, k: int, rng: np.random.Generator
    ) -> pl.DataFrame:
        import numpy as np

        n_emo = len(EMOTIONS)
        pool_emo = pool["emo"].to_numpy()
        counts = np.bincount(pool_emo, minlength=n_emo)
        order = np.argsort(pool_emo, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        w = np.asarray(self.weights(), dtype=np.float64) * (counts > 0)[None, :]
        np.fill_diagonal(w, 0.0)  # never the anchor's own emotion, hence never its own dialogue
        total = w.sum(axis=1)
        cum = np.cumsum(w, axis=1)
        cum /= np.where(total > 0, total, 1.0)[:, None]
        cum[total > 0, -1] = 1.0
        avail = (w > 0).astype(np.int64) @ counts  # candidates per anchor emotion

        emo = anchors["emo"].to_numpy()
        a = anchors["a"].to_numpy()
        kk = np.minimum(k, avail[emo])
        chosen = np.full((len(a), k), -1, dtype=np.int64)

        def draw(rows: np.ndarray) -> np.ndarray:
            e = emo[rows]
            u = 1.0 - rng.random(len(rows))  # in (0, 1]: never lands on a zero-weight emotion
            target = (cum[e] < u[:, None]).sum(axis=1)
            return order[starts[target] + rng.integers(0, counts[target])]

        for j in range(k):
            rows = np.nonzero(kk > j)[0]
            if not len(rows):
                break
            chosen[rows, j] = draw(rows)
            for _ in range(self.rounds):
                dup = rows[(chosen[rows, :j] == chosen[rows, j][:, None]).any(axis=1)]
                if not len(dup):
                    break
                chosen[dup, j] = draw(dup)
            else:
                dup = rows[(chosen[rows, :j] == chosen[rows, j][:, None]).any(axis=1)]
                chosen[dup, j] = -1
        return _picks_frame(a, chosen)


@STRATEGIES.register("opposite")
class Opposite(EmotionSampler):
    name = "opposite"
    description = "a random dialogue of an opposite emotion (EmPO's Plutchik-inspired map)"

    def weights(self) -> np.ndarray:
        import numpy as np

        w = np.zeros((len(EMOTIONS), len(EMOTIONS)))
        for e, targets in OPPOSITES.items():
            for f in targets:
                w[EMOTIONS.index(e), EMOTIONS.index(f)] = 1.0
        return w


@STRATEGIES.register("distance")
class Distance(EmotionSampler):
    name = "distance"
    description = "emotion drawn with probability growing with its valence/arousal distance"

    def weights(self) -> np.ndarray:
        import numpy as np

        return np.asarray(distance_matrix()) ** self.cfg.distance_power


def distant_emotions(quantile: float) -> np.ndarray:
    """``M[e, f]`` is True when ``f`` is among the farthest emotions from ``e`` (distance at least the
    ``quantile`` of ``e``'s distances to the other 31) or one of ``e``'s opposites."""
    import numpy as np

    d = np.asarray(distance_matrix())
    n = len(EMOTIONS)
    off = ~np.eye(n, dtype=bool)
    thresholds = np.array([np.quantile(d[i][off[i]], quantile) for i in range(n)])
    m = (d >= thresholds[:, None]) & off
    for e, targets in OPPOSITES.items():
        for f in targets:
            m[EMOTIONS.index(e), EMOTIONS.index(f)] = True
    return m


@STRATEGIES.register("hard")
class Hard(Strategy):
    name = "hard"
    description = "the most on-topic (TF-IDF) response among dialogues of distant emotions"

    def pick(
        self, anchors: pl.DataFrame, pool: pl.DataFrame, k: int, rng: np.random.Generator
    ) -> pl.DataFrame:
        import numpy as np
        import polars as pl

        from empo.prefs.text import tfidf_matrix

        if "a" in pool.columns:  # the pool items are anchors too: vectorise their topics once
            xa = tfidf_matrix(anchors["topic"])
            xp = xa[pool["a"].to_numpy()].T.tocsc()
        else:
            x = tfidf_matrix(pl.concat([anchors["topic"], pool["topic"]]))
            xa, xp = x[: anchors.height], x[anchors.height :].T.tocsc()
        allowed = distant_emotions(self.cfg.hard_min_distance_quantile)
        emo, pool_emo = anchors["emo"].to_numpy(), pool["emo"].to_numpy()
        top_k = max(self.cfg.hard_top_k, k)
        chosen = np.full((anchors.height, k), -1, dtype=np.int64)
        sims = np.zeros((anchors.height, k), dtype=np.float32)
        for e in np.unique(emo):
            rows = np.nonzero(emo == e)[0]
            cand = np.nonzero(allowed[e][pool_emo])[0]
            if not len(cand):
                continue
            t = min(top_k, len(cand))
            kk = min(k, t)
            # Sparse cosine similarities: only candidates that share a content word with the anchor are stored,
            # so selecting the top t per row touches a few hundred values instead of every candidate.
            s = (xa[rows] @ xp[:, cand]).tocsr()
            keys = rng.random((len(rows), t))
            for i, row in enumerate(rows):
                lo, hi = s.indptr[i], s.indptr[i + 1]
                cols, vals = s.indices[lo:hi], s.data[lo:hi]
                if hi - lo > t:  # the t most similar (argpartition is deterministic for the same input)
                    top = np.argpartition(-vals, t - 1)[:t]
                    cols, vals = cols[top], vals[top]
                elif (
                    hi - lo < t
                ):  # too few share a word: fill up with other distant candidates (similarity 0)
                    extra = rng.permutation(len(cand))
                    extra = extra[~np.isin(extra, cols)][: t - len(cols)]
                    cols = np.concatenate([cols, extra])
                    vals = np.concatenate([vals, np.zeros(len(extra), dtype=vals.dtype)])
                # k of the t most similar, drawn at random (so another seed gives other pairs).
                pick = np.argsort(keys[i])[:kk]
                chosen[row, :kk] = cand[cols[pick]]
                sims[row, :kk] = vals[pick]
        return _picks_frame(anchors["a"].to_numpy(), chosen, sims)
