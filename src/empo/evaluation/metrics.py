"""Response metrics: pure functions over arrays and texts, and the registry that ``empo eval`` aggregates with.

Layer 1, pure functions (hand-checked in ``tests/test_metrics.py``):

- empathy levels (EPITOME mechanisms ER/IP/EX, levels 0/1/2 from the identifiers): :func:`diff_epitome` (EmPO's
  mean squared level difference), :func:`mean_abs_diff`, :func:`mean_level`, :func:`weighted_f1` and
  :func:`emp_f1` (EmpRL's Emp-F1);
- diversity: :func:`tokenize`, :func:`distinct_n` (corpus-level distinct-n), :func:`ngram_entropy`, :func:`mtld`
  (McCarthy and Jarvis 2010, from the ``lexicalrichness`` package);
- valence: :func:`vader_compound`, :func:`load_nrc_vad`, :func:`nrc_vad_scores`; length: :func:`word_counts`.

Layer 2, :data:`METRICS`: a registry of :class:`Metric` entries, each a function of the per-example *columns*
(a dict of arrays and text lists computed once per input by :mod:`empo.evaluation.scoring`) that returns one
number. A metric whose columns are absent (e.g. no identifiers, no lexicon) is skipped, not zero. The same entries
compute the overall numbers and the per-emotion breakdown (the columns sliced to one emotion).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from empo.registry import Registry

#: EPITOME's mechanisms: emotional reactions, interpretations, explorations (same order as empo.identifiers).
MECHANISMS: tuple[str, ...] = ("ER", "IP", "EX")

# ------------------------------------------------------------------------------------------------ empathy levels


def _levels(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1)


def diff_epitome(response_levels: Any, reference_levels: Any) -> float:
    """EmPO's diff-Epitome for one mechanism: mean over examples of (level_response - level_reference)^2.

    Lower is better (0: every response has its reference's level). NaN for no examples.
    """
    r, g = _levels(response_levels), _levels(reference_levels)
    if r.shape != g.shape:
        raise ValueError(f"level arrays differ in length: {r.shape[0]} vs {g.shape[0]}")
    return float(np.mean((r - g) ** 2)) if r.size else math.nan


def mean_abs_diff(response_levels: Any, reference_levels: Any) -> float:
    """Mean over examples of |level_response - level_reference| (same scale as the levels)."""
    r, g = _levels(response_levels), _levels(reference_levels)
    if r.shape != g.shape:
        raise ValueError(f"level arrays differ in length: {r.shape[0]} vs {g.shape[0]}")
    return float(np.mean(np.abs(r - g))) if r.size else math.nan


def mean_level(levels: Any) -> float:
    """Mean empathy level (0-2) of a set of texts."""
    a = _levels(levels)
    return float(a.mean()) if a.size else math.nan


def weighted_f1(reference_levels: Any, response_levels: Any) -> float:
    """sklearn's F1 averaged over the levels present, weighted by their support in the REFERENCES.

    The reference levels are ``y_true`` and the response levels ``y_pred``; a level never predicted scores 0.
    """
    from sklearn.metrics import f1_score

    y_true = np.asarray(reference_levels, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(response_levels, dtype=np.int64).reshape(-1)
    if y_true.size == 0:
        return math.nan
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def emp_f1(response_levels: Mapping[str, Any], reference_levels: Mapping[str, Any]) -> float:
    """EmpRL's Emp-F1: the mean over mechanisms of :func:`weighted_f1` between reference and response levels."""
    mechs = [m for m in response_levels if m in reference_levels]
    if not mechs:
        raise ValueError("emp_f1 needs levels of at least one mechanism for responses and references")
    return float(np.mean([weighted_f1(reference_levels[m], response_levels[m]) for m in mechs]))


# ----------------------------------------------------------------------------------------------------- diversity

_WORD = re.compile(r"\w+(?:'\w+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased words (letters/digits, inner apostrophes kept: "don't"); punctuation dropped."""
    return _WORD.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def ngram_counts(texts: Sequence[str], n: int) -> Counter:
    """Counts of the n-grams of every text (n-grams never cross from one text into the next)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    counts: Counter = Counter()
    for t in texts:
        counts.update(_ngrams(tokenize(t), n))
    return counts


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Corpus-level distinct-n (Li et al. 2016): distinct n-grams / all n-grams over all texts. 0 when none."""
    counts = ngram_counts(texts, n)
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def ngram_entropy(texts: Sequence[str], n: int) -> float:
    """Shannon entropy, in bits, of the corpus n-gram distribution (Zhang et al. 2018's Ent-n). 0 when none."""
    counts = ngram_counts(texts, n)
    total = sum(counts.values())
    if not total:
        return 0.0
    p = np.fromiter(counts.values(), dtype=np.float64) / total
    return float(-(p * np.log2(p)).sum())


def mtld(texts: Sequence[str], threshold: float = 0.72) -> float:
    """MTLD (McCarthy and Jarvis 2010) of all texts' words in order, from the maintained ``lexicalrichness``
    package: the mean length of word runs whose type-token ratio stays above ``threshold`` (forward and backward
    average). Length-robust, unlike TTR. NaN when there is no word."""
    import matplotlib

    matplotlib.use("Agg")  # lexicalrichness imports pyplot at import time
    from lexicalrichness import LexicalRichness

    words = [w for t in texts for w in tokenize(t)]
    if not words:
        return math.nan
    return float(LexicalRichness(words, preprocessor=None, tokenizer=None).mtld(threshold=threshold))


def word_counts(texts: Sequence[str]) -> np.ndarray:
    """Length of each text in whitespace-separated words (as EmPO's words/response)."""
    return np.array([len(t.split()) for t in texts], dtype=np.float64)


# ------------------------------------------------------------------------------------------------------- valence


def vader_compound(texts: Sequence[str], analyzer: Any = None) -> np.ndarray:
    """VADER's compound sentiment (-1..1) of each text (``vaderSentiment``; pass an analyzer to reuse one)."""
    if analyzer is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)


def load_nrc_vad(path: str | Path) -> dict[str, tuple[float, float, float]]:
    """Read the NRC VAD lexicon (``word<TAB>valence<TAB>arousal<TAB>dominance``, values in [0, 1]; a header line
    is skipped). Multi-word entries are kept but only single words ever match. Raises DataError on bad lines."""
    from empo.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"NRC-VAD lexicon {path} not found; pass the path of NRC-VAD-Lexicon.txt to --nrc-vad"
        )
    out: dict[str, tuple[float, float, float]] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4 or not line.strip():
                if line.strip():
                    raise DataError(f"{path}:{lineno}: expected word<TAB>valence<TAB>arousal<TAB>dominance")
                continue
            try:
                v, a, d = (float(x) for x in parts[1:4])
            except ValueError:
                if lineno == 1:  # a header line (the lexicon's v2 has one)
                    continue
                raise DataError(f"{path}:{lineno}: valence/arousal/dominance are not numbers") from None
            out[parts[0].lower()] = (v, a, d)
    if not out:
        raise DataError(f"{path}: the NRC-VAD lexicon is empty")
    return out


def nrc_vad_scores(
    texts: Sequence[str], lexicon: Mapping[str, tuple[float, float, float]], agg: str = "max"
) -> np.ndarray:
    """(n, 3) valence, arousal, dominance of each text: ``max`` (EmPO) or ``mean`` over its words found in the
    lexicon; NaN rows for texts with no lexicon word."""
    fn = {"max": np.max, "mean": np.mean}[agg]
    out = np.full((len(texts), 3), np.nan, dtype=np.float64)
    for i, t in enumerate(texts):
        hits = [lexicon[w] for w in tokenize(t) if w in lexicon]
        if hits:
            out[i] = fn(np.asarray(hits, dtype=np.float64), axis=0)
    return out


def nanmean(a: Any) -> float:
    """Mean ignoring NaN (NaN when nothing is left), without numpy's empty-slice warning."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else math.nan


# -------------------------------------------------------------------------------------------------- the registry

Columns = Mapping[str, Any]


@dataclass(frozen=True)
class Metric:
    """One number from the per-example columns. ``needs``: the columns it reads (absent -> skipped).
    ``better``: "lower", "higher" or "" (descriptive); ``group``: where the report puts it."""

    name: str
    fn: Callable[[Columns], float]
    needs: tuple[str, ...]
    better: str
    group: str
    description: str


METRICS: Registry[Metric] = Registry("metric")


def _add(name: str, fn: Callable[[Columns], float], needs: Sequence[str], better: str, group: str, doc: str):
    METRICS.add(name, Metric(name, fn, tuple(needs), better, group, doc))


def _lv(m: str, who: str) -> str:
    return f"level_{m}_{who}"


def _register_all() -> None:
    levels_resp = [_lv(m, "response") for m in MECHANISMS]
    levels_ref = [_lv(m, "reference") for m in MECHANISMS]
    for m in MECHANISMS:
        rp, rf = _lv(m, "response"), _lv(m, "reference")
        _add(
            f"diff-{m}",
            lambda c, rp=rp, rf=rf: diff_epitome(c[rp], c[rf]),
            (rp, rf),
            "lower",
            "empathy",
            f"mean squared {m} level difference, response vs reference (EmPO)",
        )
    _add(
        "diff-mean",
        lambda c: float(
            np.mean([diff_epitome(c[a], c[b]) for a, b in zip(levels_resp, levels_ref, strict=False)])
        ),
        (*levels_resp, *levels_ref),
        "lower",
        "empathy",
        "mean of diff-ER, diff-IP, diff-EX (EmPO's headline)",
    )
    for m in MECHANISMS:
        rp, rf = _lv(m, "response"), _lv(m, "reference")
        _add(
            f"absdiff-{m}",
            lambda c, rp=rp, rf=rf: mean_abs_diff(c[rp], c[rf]),
            (rp, rf),
            "lower",
            "empathy",
            f"mean absolute {m} level difference",
        )
    _add(
        "absdiff-mean",
        lambda c: float(
            np.mean([mean_abs_diff(c[a], c[b]) for a, b in zip(levels_resp, levels_ref, strict=False)])
        ),
        (*levels_resp, *levels_ref),
        "lower",
        "empathy",
        "mean of the absolute level differences",
    )
    for m in MECHANISMS:
        for who in ("response", "reference"):
            col = _lv(m, who)
            _add(
                f"level-{m}-{who}",
                lambda c, col=col: mean_level(c[col]),
                (col,),
                "",
                "empathy",
                f"mean {m} level of the {who}s",
            )
    for m in MECHANISMS:
        rp, rf = _lv(m, "response"), _lv(m, "reference")
        _add(
            f"f1-{m}",
            lambda c, rp=rp, rf=rf: weighted_f1(c[rf], c[rp]),
            (rp, rf),
            "higher",
            "empathy",
            f"weighted F1 of response vs reference {m} levels",
        )
    _add(
        "emp-f1",
        lambda c: emp_f1(
            {m: c[_lv(m, "response")] for m in MECHANISMS}, {m: c[_lv(m, "reference")] for m in MECHANISMS}
        ),
        (*levels_resp, *levels_ref),
        "higher",
        "empathy",
        "Emp-F1: mean weighted F1 over ER/IP/EX (EmpRL)",
    )
    for k, label in (("p", "P"), ("r", "R"), ("f", "F1")):
        col = f"bertscore_{k}"
        _add(
            f"bertscore-{label}",
            lambda c, col=col: nanmean(c[col]),
            (col,),
            "higher",
            "similarity",
            f"BERTScore {label} against the reference",
        )
    for who in ("response", "reference"):
        suffix = "" if who == "response" else "-reference"
        _add(
            f"distinct-1{suffix}",
            lambda c, who=who: distinct_n(c[who], 1),
            (who,),
            "higher",
            "diversity",
            f"corpus-level distinct unigrams / unigrams of the {who}s",
        )
        _add(
            f"distinct-2{suffix}",
            lambda c, who=who: distinct_n(c[who], 2),
            (who,),
            "higher",
            "diversity",
            f"corpus-level distinct bigrams / bigrams of the {who}s",
        )
        _add(
            f"entropy-2{suffix}",
            lambda c, who=who: ngram_entropy(c[who], 2),
            (who,),
            "higher",
            "diversity",
            f"entropy (bits) of the bigram distribution of the {who}s",
        )
        _add(
            f"mtld{suffix}",
            lambda c, who=who: mtld(c[who]),
            (who,),
            "higher",
            "diversity",
            f"MTLD lexical diversity of the {who}s (lexicalrichness)",
        )
        _add(
            f"words{suffix}",
            lambda c, who=who: float(np.mean(word_counts(c[who]))) if len(c[who]) else math.nan,
            (who,),
            "",
            "length",
            f"mean words per {who}",
        )
    _add(
        "entropy-1",
        lambda c: ngram_entropy(c["response"], 1),
        ("response",),
        "higher",
        "diversity",
        "entropy (bits) of the unigram distribution of the responses",
    )
    for who in ("response", "reference", "context"):
        col = f"vader_{who}"
        _add(
            f"vader-{who}",
            lambda c, col=col: nanmean(c[col]),
            (col,),
            "",
            "valence",
            f"mean VADER compound of the {who}s" + (" (the seeker's last turn)" if who == "context" else ""),
        )
    _add(
        "vader-diff",
        lambda c: nanmean(c["vader_context"] - c["vader_response"]),
        ("vader_context", "vader_response"),
        "",
        "valence",
        "mean VADER compound of context minus response (EmPO's sign)",
    )
    _add(
        "vader-absdiff",
        lambda c: nanmean(np.abs(c["vader_context"] - c["vader_response"])),
        ("vader_context", "vader_response"),
        "lower",
        "valence",
        "mean |VADER context - response|",
    )
    _add(
        "vader-diff-reference",
        lambda c: nanmean(c["vader_context"] - c["vader_reference"]),
        ("vader_context", "vader_reference"),
        "",
        "valence",
        "the same for the references",
    )
    for j, dim in enumerate(("valence", "arousal", "dominance")):
        for who in ("response", "reference"):
            col = f"nrc_{who}"
            suffix = "" if who == "response" else "-reference"
            _add(
                f"nrc-{dim}{suffix}",
                lambda c, col=col, j=j: nanmean(c[col][:, j]),
                (col,),
                "",
                "valence",
                f"mean NRC-VAD {dim} of the {who}s",
            )
            _add(
                f"nrc-{dim}-diff{suffix}",
                lambda c, col=col, j=j: nanmean(c["nrc_context"][:, j] - c[col][:, j]),
                (col, "nrc_context"),
                "",
                "valence",
                f"mean NRC-VAD {dim}, context minus {who} (EmPO)",
            )


_register_all()


def compute_metrics(columns: Columns, names: Sequence[str] | None = None) -> dict[str, float]:
    """Every registered metric (or ``names``) whose columns are present, as ``{name: value}`` (NaN -> None is
    left to the writer). Metrics with missing columns are omitted."""
    out: dict[str, float] = {}
    for name in names or METRICS.names():
        metric = METRICS.get(name)
        if all(k in columns for k in metric.needs):
            out[name] = metric.fn(columns)
    return out


def subset(columns: Columns, index: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """The columns restricted to the examples ``index`` (arrays fancy-indexed, lists picked)."""
    idx = np.asarray(index, dtype=np.int64)
    out: dict[str, Any] = {}
    for k, v in columns.items():
        if isinstance(v, np.ndarray):
            out[k] = v[idx]
        else:
            out[k] = [v[i] for i in idx]
    return out


# ------------------------------------------------------------------------------------------ paired comparisons


def _diff_mean_per_example(c: Columns) -> np.ndarray:
    return np.mean(
        [(_levels(c[_lv(m, "response")]) - _levels(c[_lv(m, "reference")])) ** 2 for m in MECHANISMS], axis=0
    )


#: Metrics that are means over examples, with the per-example values they average (for paired comparisons).
PER_EXAMPLE: dict[str, tuple[tuple[str, ...], Callable[[Columns], np.ndarray]]] = {
    "diff-mean": (
        tuple(_lv(m, w) for m in MECHANISMS for w in ("response", "reference")),
        _diff_mean_per_example,
    ),
    "bertscore-F1": (("bertscore_f",), lambda c: np.asarray(c["bertscore_f"], dtype=np.float64)),
    "vader-absdiff": (
        ("vader_context", "vader_response"),
        lambda c: np.abs(np.asarray(c["vader_context"]) - np.asarray(c["vader_response"])),
    ),
    "words": (("response",), lambda c: word_counts(c["response"])),
}


def per_example_values(columns: Columns, metric: str) -> np.ndarray | None:
    """Per-example values whose mean is ``metric`` (None when its columns are absent)."""
    needs, fn = PER_EXAMPLE[metric]
    if not all(k in columns for k in needs):
        return None
    return np.asarray(fn(columns), dtype=np.float64)


def paired_difference(a: Any, b: Any) -> dict[str, float] | None:
    """Mean of ``b - a`` over paired examples (NaNs dropped pairwise) and its standard error (sample sd / sqrt n).

    Both inputs answer the same dialogues, so the paired standard error is much smaller than the two separate
    ones combined. None with fewer than two pairs."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in length: {a.shape[0]} vs {b.shape[0]}")
    d = (b - a)[~(np.isnan(a) | np.isnan(b))]
    if d.size < 2:
        return None
    return {"n": int(d.size), "mean": float(d.mean()), "se": float(d.std(ddof=1) / math.sqrt(d.size))}
