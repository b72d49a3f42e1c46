"""Build preference pairs from EmpatheticDialogues: ``OUT/{train,valid,test}.parquet`` + ``OUT/stats.json``.

Everything is columnar (polars + numpy), so the full release (24,850 dialogues) takes a few seconds:

1. read ED (:func:`empo.data.ed.read_ed`), one row per turn;
2. cut points: the last listener turn of each dialogue (``cuts: last``, EmPO) or every listener turn that follows a
   user turn (``cuts: all``); the prompt is the dialogue before the cut, built exactly as
   :func:`empo.data.chat.dialogue_messages` builds it, and the chosen response is the turn at the cut;
3. the strategy (:mod:`empo.prefs.strategies`) picks ``pairs_per_dialogue`` rejected responses per cut from the
   pool of the SAME split (the last listener turn of each dialogue);
4. optional length filter; DPO or KTO rows; atomic write (nothing half-written on error).

Rows are ordered by dialogue (file order), cut and draw, and the random stream of each split is seeded from
``(seed, split)``: the same input and seed give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from empo.data.ed import EMOTIONS, SPLITS, read_ed
from empo.errors import EmpoError
from empo.io import atomic_dir, write_json
from empo.log import get_logger
from empo.prefs.config import PrefsConfig
from empo.prefs.strategies import STRATEGIES, Hard, Strategy

if TYPE_CHECKING:
    import polars as pl

log = get_logger(__name__)

Counter = Callable[[list[str]], list[int]]


def token_counter(spec: str) -> Counter:
    """Token counts of texts with the tokenizer of a model spec (no special tokens)."""
    from empo.models.resolve import load_tokenizer

    try:
        tok = load_tokenizer(spec)
    except EmpoError:
        raise
    except Exception as exc:  # a hub name offline, a broken folder: one line, not a traceback
        raise EmpoError(f"cannot load tokenizer {spec!r} for the length filter: {exc}") from None

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]

    return count


def _msg(role: str | pl.Expr, content: pl.Expr) -> pl.Expr:
    import polars as pl

    return pl.struct(role=pl.lit(role) if isinstance(role, str) else role, content=content)


def make_items(
    frame: pl.DataFrame, cfg: PrefsConfig, counter: Counter | None, with_topic: bool
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Anchors (one per cut point, with the prompt messages, system message included, and lengths), the rejected
    pool (the last listener turn of each dialogue) and the number of dialogues without a usable cut."""
    import polars as pl

    f = frame.with_columns(
        dial=pl.col("conv_id").rle_id(),  # a dialogue's rows are contiguous, in file order
        words=pl.col("text").str.count_matches(r"\S+").cast(pl.Int64),
    )
    f = f.with_columns(
        n=pl.Series(counter(f["text"].to_list()), dtype=pl.Int64) if counter else pl.col("words")
    )
    cuts = f.filter((pl.col("role") == "assistant") & (pl.col("turn") >= 1)).with_columns(
        is_last=pl.col("turn") == pl.col("turn").max().over("dial")
    )
    no_cut = f["dial"].n_unique() - cuts["dial"].n_unique()
    if cfg.cuts == "last":
        cuts = cuts.filter(pl.col("is_last"))
    anchors = cuts.select(
        "dial",
        "conv_id",
        "emotion",
        "situation",
        pl.col("turn").alias("cut"),
        pl.col("text").alias("chosen"),
        pl.col("words").alias("chosen_words"),
        pl.col("n").alias("chosen_n"),
        "is_last",
        pl.col("line").alias("chosen_line"),
    ).with_row_index("a")

    # The context: the last max_context_turns turns before the cut, moved forward to start on a user turn
    # (even turn index): the same rule as empo.data.chat.context_start.
    mct = cfg.max_context_turns
    start = pl.lit(0) if mct is None else (pl.col("cut") - mct).clip(lower_bound=0)
    ctx = anchors.select("a", "conv_id", "cut", start=start).with_columns(
        start=pl.col("start") + pl.col("start") % 2
    )
    turns = ctx.join(f.select("conv_id", "turn", "role", "text", "words", "n"), on="conv_id").filter(
        pl.col("turn") < pl.col("cut")
    )
    system = cfg.system_message()
    if system:  # the system message as turn -1 (its length is added to the pair's later, once)
        sys_rows = ctx.with_columns(
            turn=pl.lit(-1, pl.Int32),
            role=pl.lit("system"),
            text=pl.lit(system),
            words=pl.lit(0, pl.Int64),
            n=pl.lit(0, pl.Int64),
        )
        turns = pl.concat([sys_rows, turns.select(sys_rows.columns)])
    joined = turns.sort(["a", "turn"])
    in_ctx = (pl.col("turn") >= pl.col("start")) | (pl.col("turn") < 0)
    aggs = [
        _msg(pl.col("role"), pl.col("text")).filter(in_ctx).alias("messages"),
        pl.col("words").filter(in_ctx).sum().alias("prompt_words"),
        pl.col("n").filter(in_ctx).sum().alias("prompt_n"),
    ]
    if with_topic:
        aggs.append(pl.col("text").filter(pl.col("role") == "user").str.join(" ").alias("user_text"))
    prompts = joined.group_by("a", maintain_order=True).agg(aggs)
    anchors = anchors.join(prompts, on="a", how="left", maintain_order="left")
    if with_topic:
        anchors = anchors.with_columns(topic=pl.concat_str(["situation", "user_text"], separator=" "))
    anchors = anchors.with_columns(emo=pl.col("emotion").replace_strict(EMOTIONS, range(len(EMOTIONS))))
    pool = anchors.filter(pl.col("is_last")) if cfg.cuts == "all" else anchors
    pool = pool.select(
        "a",
        "conv_id",
        "emo",
        *(["topic"] if with_topic else []),
        rejected_conv_id="conv_id",
        rejected_cut="cut",
        rejected_emotion="emotion",
        rejected="chosen",
        rejected_words="chosen_words",
        rejected_n="chosen_n",
    ).with_row_index("p")
    return anchors, pool, no_cut


def _describe(s: pl.Series) -> dict[str, float]:
    if s.len() == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    return {
        "mean": round(float(s.mean()), 2),  # type: ignore[arg-type]
        "p50": float(s.quantile(0.5, "nearest")),  # type: ignore[arg-type]
        "p95": float(s.quantile(0.95, "nearest")),  # type: ignore[arg-type]
        "max": float(s.max()),  # type: ignore[arg-type]
    }


def _rng(seed: int, split: str):
    import numpy as np

    # One independent stream per split: building fewer splits does not change the others.
    return np.random.default_rng([seed, SPLITS.index(split)])


def build_pairs(
    frame: pl.DataFrame,
    split: str,
    cfg: PrefsConfig,
    strategy: Strategy,
    counter: Counter | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Pairs of one split (a wide frame: anchor columns + ``rejected*`` columns + ``pair_n``) and its counts."""
    import polars as pl

    with_topic = isinstance(strategy, Hard)
    anchors, pool, no_cut = make_items(frame, cfg, counter, with_topic)
    picks = strategy.pick(
        anchors.select("a", "conv_id", "emo", *(["topic"] if with_topic else [])),
        pool.select("p", "a", "conv_id", "emo", *(["topic"] if with_topic else [])),
        cfg.pairs_per_dialogue,
        _rng(cfg.seed, split),
    )
    pairs = (
        picks.join(anchors.drop("emo", "topic", "user_text", strict=False), on="a")
        .join(pool.drop("a", "conv_id", "emo", "topic", strict=False), on="p")
        .sort(["a", "pair"])
    )
    if pairs.filter(pl.col("conv_id") == pl.col("rejected_conv_id")).height:  # a strategy bug, never data
        raise AssertionError(f"strategy {strategy.name} paired a dialogue with itself")
    pairs = pairs.with_columns(pair_n=pl.col("prompt_n") + pl.max_horizontal("chosen_n", "rejected_n"))
    counts = {
        "dialogues": frame["conv_id"].n_unique(),
        "dialogues_without_listener_turn": no_cut,
        "cuts": anchors.height,
        "cuts_without_pair": anchors.height - picks["a"].n_unique(),
        "pairs_drawn": pairs.height,
    }
    if "similarity" in picks.columns and picks.height:
        counts["mean_similarity"] = round(float(picks["similarity"].mean()), 4)  # type: ignore[arg-type]
    return pairs, counts


def to_rows(pairs: pl.DataFrame, cfg: PrefsConfig, strategy_name: str) -> pl.DataFrame:
    """The parquet rows: TRL's conversational preference (DPO) or unpaired (KTO) format."""
    import polars as pl

    prompt = pl.col("messages")  # the system message is already in (make_items)
    one = lambda col: pl.concat_list([_msg("assistant", pl.col(col))])  # noqa: E731
    strat = pl.lit(strategy_name)
    if cfg.format == "dpo":
        return pairs.select(
            prompt.alias("prompt"),
            one("chosen").alias("chosen"),
            one("rejected").alias("rejected"),
            "conv_id",
            "cut",
            "emotion",
            "rejected_conv_id",
            "rejected_cut",
            "rejected_emotion",
            strat.alias("strategy"),
            "pair",
        )

    # KTO: one desirable row per cut (its real listener turn) and one undesirable row per drawn rejection.
    def kto(frame: pl.DataFrame, order: pl.Expr, side: str, label: bool) -> pl.DataFrame:
        src = "" if side == "chosen" else "rejected_"
        return frame.select(
            "a",
            order.cast(pl.Int64).alias("order"),
            prompt.alias("prompt"),
            one(side).alias("completion"),
            pl.lit(label).alias("label"),
            "conv_id",
            "cut",
            "emotion",
            pl.col(f"{src}conv_id").alias("completion_conv_id"),
            pl.col(f"{src}emotion").alias("completion_emotion"),
        )

    good = kto(pairs.filter(pl.col("pair") == pl.col("pair").min().over("a")), pl.lit(0), "chosen", True)
    bad = kto(pairs, pl.col("pair") + 1, "rejected", False)
    return (
        pl.concat([good, bad]).sort(["a", "order"]).drop("a", "order").with_columns(strat.alias("strategy"))
    )


def build_prefs(cfg: PrefsConfig, out: Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Build the preference files of ``cfg`` into ``out`` and return the stats (also written to ``stats.json``).

    Raises :class:`~empo.errors.EmpoError` (one line, nothing written) on bad input or settings.
    """
    import polars as pl

    strategy = STRATEGIES.get(cfg.strategy)(cfg)
    out = Path(out)
    if out.exists() and not overwrite:
        raise EmpoError(f"{out} already exists; pass --overwrite to replace it, or choose another --out")
    filtering = cfg.max_length_percentile is not None or cfg.max_tokens is not None
    counter = token_counter(cfg.tokenizer) if filtering and cfg.tokenizer else None
    if cfg.tokenizer and not filtering:
        log.info("prefs.tokenizer is set but no length filter is (max_length_percentile, max_tokens): unused")

    ed = read_ed(cfg.data_dir, cfg.splits)
    system = cfg.system_message()
    system_n = 0
    if system:
        system_n = counter([system])[0] if counter else len(system.split())

    built: dict[str, tuple[pl.DataFrame, dict[str, Any]]] = {}
    for split in cfg.splits:
        pairs, counts = build_pairs(ed.frames[split], split, cfg, strategy, counter)
        built[split] = (pairs.with_columns(pl.col("pair_n") + system_n), counts)

    # Length filter (EmPO drops pairs above the 95th percentile): the percentile comes from train when it is
    # built (so valid/test are cut at the same length), else from all built splits.
    threshold: float | None = None
    length_filter: dict[str, Any] = {"enabled": filtering}
    if filtering:
        limits = []
        if cfg.max_length_percentile is not None:
            ref = built["train"][0] if "train" in built else pl.concat([p for p, _ in built.values()])
            if ref.height:
                limits.append(float(ref["pair_n"].quantile(cfg.max_length_percentile / 100, "nearest")))  # type: ignore[arg-type]
        if cfg.max_tokens is not None:
            limits.append(float(cfg.max_tokens))
        threshold = min(limits) if limits else None
        length_filter.update(
            unit="tokens" if counter else "words",
            tokenizer=cfg.tokenizer,
            percentile=cfg.max_length_percentile,
            max_tokens=cfg.max_tokens,
            threshold=threshold,
            measure="prompt (with system message) + the longer of chosen and rejected",
        )

    stats: dict[str, Any] = {
        "source": ed.source,
        "strategy": strategy.name,
        "format": cfg.format,
        "config": cfg.model_dump(mode="json"),
        "system_prompt": system,
        "length_filter": length_filter,
        "splits": {},
    }
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for split, (pairs, counts) in built.items():
            before = pairs.height
            if threshold is not None:
                pairs = pairs.filter(pl.col("pair_n") <= threshold)
            rows = to_rows(pairs, cfg, strategy.name)
            rows.write_parquet(tmp / f"{split}.parquet", compression="zstd", statistics=False)
            split_stats: dict[str, Any] = {
                **counts,
                "dropped_by_length": before - pairs.height,
                "pairs": pairs.height,
                "rows": rows.height,
            }
            if cfg.format == "kto":
                split_stats["kto_desirable"] = int(rows["label"].sum())
                split_stats["kto_undesirable"] = rows.height - split_stats["kto_desirable"]
            per_emotion = dict(pairs["emotion"].value_counts().iter_rows())
            per_rejected = dict(pairs["rejected_emotion"].value_counts().iter_rows())
            split_stats["per_emotion"] = {e: int(per_emotion.get(e, 0)) for e in EMOTIONS}
            split_stats["per_rejected_emotion"] = {e: int(per_rejected.get(e, 0)) for e in EMOTIONS}
            split_stats["lengths_words"] = {
                "prompt": _describe(pairs["prompt_words"]),
                "chosen": _describe(pairs["chosen_words"]),
                "rejected": _describe(pairs["rejected_words"]),
            }
            split_stats["load"] = ed.reports[split].as_dict()
            stats["splits"][split] = split_stats
            log.info(
                "%s: %d pairs from %d cut points of %d dialogues (%d dropped by length) -> %s.parquet",
                split,
                pairs.height,
                counts["cuts"],
                counts["dialogues"],
                before - pairs.height,
                split,
            )
        write_json(tmp / "stats.json", stats)
    log.info("wrote %s", out)
    return stats
