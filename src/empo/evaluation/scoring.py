"""Score GEN.jsonl files: read and validate them, run the scorers once, aggregate overall and per ED emotion.

Scorers (the model-backed steps) run ONCE for all inputs together: the identifiers over every distinct
(seeker, text) pair of all responses and references (references shared by several inputs are scored once), one
BERTScore model, one VADER analyzer, one NRC-VAD lexicon. Their per-example outputs become *columns*; the metrics
of :mod:`empo.evaluation.metrics` are pure functions of those columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from empo.errors import DataError, EmpoError
from empo.evaluation.config import EvalConfig
from empo.evaluation.metrics import (
    MECHANISMS,
    compute_metrics,
    load_nrc_vad,
    nrc_vad_scores,
    subset,
    vader_compound,
)
from empo.log import get_logger

log = get_logger(__name__)

REQUIRED = ("conv_id", "context", "reference", "response")
NO_EMOTION = "(none)"


# ------------------------------------------------------------------------------------------------------ reading


def last_user_turn(context: Any) -> str:
    """The seeker's last utterance: the content of the last ``user`` message (a plain string context is used
    as is). Empty string when there is no user message."""
    if isinstance(context, str):
        return context
    for m in reversed(context):
        if m.get("role") == "user":
            return m.get("content", "")
    return ""


def _check_record(rec: Any, where: str) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise DataError(
            f"{where}: missing field(s) {', '.join(missing)} (a GEN line needs {', '.join(REQUIRED)})"
        )
    for k in ("response", "reference"):
        if not isinstance(rec[k], str):
            raise DataError(f"{where}: '{k}' must be a string, got {type(rec[k]).__name__}")
    ctx = rec["context"]
    if isinstance(ctx, list):
        for m in ctx:
            if not (
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            ):
                raise DataError(f"{where}: 'context' messages need string 'role' and 'content' fields")
        if not any(m["role"] == "user" for m in ctx):
            raise DataError(
                f"{where}: 'context' has no user message (the seeker's turn that levels are scored against)"
            )
    elif not isinstance(ctx, str):
        raise DataError(
            f"{where}: 'context' must be a list of messages (or a string), got {type(ctx).__name__}"
        )
    emo = rec.get("emotion")
    if emo is not None and not isinstance(emo, str):
        raise DataError(f"{where}: 'emotion' must be a string or null, got {type(emo).__name__}")
    return rec


def read_gen(path: str | Path) -> list[dict[str, Any]]:
    """Read a GEN.jsonl file; every problem is a :class:`DataError` naming the file and line. Unknown fields are
    kept (others add their own), blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            records.append(_check_record(rec, where))
    if not records:
        raise DataError(f"{path}: the file is empty (no GEN lines)")
    return records


def input_names(paths: Sequence[Path]) -> list[str]:
    """A short distinct name per input: the file stem, made unique with the parent folder, then a counter."""
    stems = [Path(p).stem for p in paths]
    names = []
    for p, s in zip(paths, stems, strict=False):
        names.append(f"{Path(p).parent.name}-{s}" if stems.count(s) > 1 and Path(p).parent.name else s)
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out


@dataclass
class GenInput:
    name: str
    path: Path
    records: list[dict[str, Any]]
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def responses(self) -> list[str]:
        return [r["response"] for r in self.records]

    @property
    def references(self) -> list[str]:
        return [r["reference"] for r in self.records]

    @property
    def seekers(self) -> list[str]:
        return [last_user_turn(r["context"]) for r in self.records]

    @property
    def emotions(self) -> list[str]:
        return [r.get("emotion") or NO_EMOTION for r in self.records]

    def model(self) -> str | None:
        models = {r.get("model") for r in self.records if r.get("model")}
        return ", ".join(sorted(models)) if models else None


# ------------------------------------------------------------------------------------------------------ scorers


def score_identifiers(inputs: Sequence[GenInput], identifiers: Any, batch_size: int = 32) -> None:
    """Add ``level_<mech>_response`` / ``level_<mech>_reference`` columns, predicting every DISTINCT
    (seeker, text) pair once in one batched call."""
    index: dict[tuple[str, str], int] = {}
    for inp in inputs:
        for seeker, resp, ref in zip(inp.seekers, inp.responses, inp.references, strict=False):
            index.setdefault((seeker, resp), len(index))
            index.setdefault((seeker, ref), len(index))
    pairs = list(index)
    log.info("empathy identifiers: %d distinct (seeker, text) pairs", len(pairs))
    levels = identifiers.predict([s for s, _ in pairs], [t for _, t in pairs], batch_size=batch_size)
    for m in MECHANISMS:
        if m not in levels:
            raise EmpoError(f"the identifiers returned no {m} levels (got {sorted(levels)})")
    for inp in inputs:
        seekers = inp.seekers
        for who, texts in (("response", inp.responses), ("reference", inp.references)):
            rows = np.array([index[(s, t)] for s, t in zip(seekers, texts, strict=False)], dtype=np.int64)
            for m in MECHANISMS:
                inp.columns[f"level_{m}_{who}"] = np.asarray(levels[m], dtype=np.int64)[rows]


def score_bertscore(inputs: Sequence[GenInput], scorer: Any) -> None:
    """Add ``bertscore_p/r/f`` columns: each response against its reference (one scorer for all inputs)."""
    for inp in inputs:
        p, r, f = scorer.score(inp.responses, inp.references)
        inp.columns.update(bertscore_p=p, bertscore_r=r, bertscore_f=f)


def score_vader(inputs: Sequence[GenInput]) -> None:
    """Add ``vader_response/reference/context`` columns (context = the seeker's last turn)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    for inp in inputs:
        inp.columns["vader_response"] = vader_compound(inp.responses, analyzer)
        inp.columns["vader_reference"] = vader_compound(inp.references, analyzer)
        inp.columns["vader_context"] = vader_compound(inp.seekers, analyzer)


def score_nrc_vad(
    inputs: Sequence[GenInput], lexicon: dict[str, tuple[float, float, float]], agg: str
) -> None:
    """Add ``nrc_response/reference/context`` (n, 3) V/A/D columns."""
    for inp in inputs:
        inp.columns["nrc_response"] = nrc_vad_scores(inp.responses, lexicon, agg)
        inp.columns["nrc_reference"] = nrc_vad_scores(inp.references, lexicon, agg)
        inp.columns["nrc_context"] = nrc_vad_scores(inp.seekers, lexicon, agg)


def default_nrc_vad() -> Path | None:
    from empo.paths import data_path

    path = data_path("valence", "NRC-VAD-Lexicon.txt")
    return path if path.is_file() else None


def load_default_identifiers(cfg: EvalConfig) -> tuple[Any | None, str | None]:
    """The identifiers of ``cfg`` (None + a reason when they are unavailable and not explicitly asked for)."""
    try:
        from empo.identifiers import load_identifiers
    except ImportError as exc:
        if cfg.identifiers:
            raise EmpoError(f"cannot load identifiers: {exc}") from None
        return None, f"empo.identifiers is not available ({exc})"
    path = Path(cfg.identifiers).expanduser() if cfg.identifiers else None
    if path is not None and not path.exists():
        raise EmpoError(
            f"identifiers folder {path} does not exist; train one with `empo identifiers train --out {path}`"
        )
    from empo.identifiers import MissingTrainingData

    try:
        return load_identifiers(path, train_if_missing=cfg.train_identifiers, device=cfg.device), None
    except MissingTrainingData as exc:
        # The default identifiers, with nothing to train them on (e.g. outside this workplace): skip, say why.
        return None, str(exc)
    except EmpoError as exc:
        if path is None and not cfg.train_identifiers:
            return None, str(exc)
        raise


# ------------------------------------------------------------------------------------------------- aggregation


def _clean(value: float) -> float | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 6)
    )


def aggregate(columns: dict[str, Any], emotions: Sequence[str], per_emotion: bool = True) -> dict[str, Any]:
    """``{"n", "metrics": {...}, "per_emotion": {emotion: {"n", "metrics"}}}`` from the per-example columns."""
    n = len(emotions)
    out: dict[str, Any] = {"n": n, "metrics": {k: _clean(v) for k, v in compute_metrics(columns).items()}}
    if per_emotion:
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(emotions):
            groups.setdefault(e, []).append(i)
        out["per_emotion"] = {
            e: {
                "n": len(idx),
                "metrics": {k: _clean(v) for k, v in compute_metrics(subset(columns, idx)).items()},
            }
            for e, idx in sorted(groups.items())
        }
    return out


def example_rows(inp: GenInput) -> list[dict[str, Any]]:
    """Per-example scores (for analysis): conv_id, emotion and every scalar column."""
    rows = []
    for i, rec in enumerate(inp.records):
        row: dict[str, Any] = {"conv_id": rec["conv_id"], "emotion": rec.get("emotion")}
        for k, v in inp.columns.items():
            if isinstance(v, np.ndarray):
                val = v[i]
                if val.ndim == 0:
                    row[k] = _clean(float(val))
                else:
                    row[k] = [_clean(float(x)) for x in val]
        rows.append(row)
    return rows


@dataclass
class EvalResult:
    out: Path
    names: list[str]
    results: dict[str, dict[str, Any]]


def dialogue_keys(records: Sequence[dict[str, Any]]) -> list[Any]:
    """What identifies a record's dialogue: ``conv_id`` (and ``cut``) when present, else the reference text."""
    return [
        (r.get("conv_id"), r.get("cut")) if r.get("conv_id") is not None else r["reference"] for r in records
    ]


def warn_if_different_dialogues(inputs: Sequence[GenInput]) -> bool:
    """Log a warning when the inputs do not answer the same dialogues (different --limit, split or data): their
    metrics are then not comparable side by side. Returns True when they all match."""
    if len(inputs) < 2:
        return True
    first = set(map(repr, dialogue_keys(inputs[0].records)))
    same = True
    for inp in inputs[1:]:
        other = set(map(repr, dialogue_keys(inp.records)))
        if other != first:
            same = False
            log.warning(
                "%s and %s answer different dialogues (%d vs %d, %d in common): their metrics are not paired; "
                "generate both with the same --split, --limit and data for a side-by-side comparison",
                inputs[0].path,
                inp.path,
                len(first),
                len(other),
                len(first & other),
            )
    return same


def paired_vs_first(inputs: Sequence[GenInput]) -> dict[str, dict[str, Any]]:
    """For every input after the first: the paired difference (input minus first) of the per-example metrics
    (:data:`empo.evaluation.metrics.PER_EXAMPLE`) over the dialogues both answered, with its standard error."""
    from empo.evaluation.metrics import PER_EXAMPLE, paired_difference, per_example_values

    if len(inputs) < 2:
        return {}
    first = inputs[0]
    index = {k: i for i, k in enumerate(map(repr, dialogue_keys(first.records)))}
    out: dict[str, dict[str, Any]] = {}
    for inp in inputs[1:]:
        pairs = [(index[k], j) for j, k in enumerate(map(repr, dialogue_keys(inp.records))) if k in index]
        if len(pairs) < 2:
            continue
        ia, ib = (np.array(x, dtype=np.int64) for x in zip(*pairs, strict=True))
        res: dict[str, Any] = {"vs": first.name, "n": len(pairs)}
        for metric in PER_EXAMPLE:
            a, b = per_example_values(first.columns, metric), per_example_values(inp.columns, metric)
            if a is not None and b is not None:
                res[metric] = paired_difference(a[ia], b[ib])
        out[inp.name] = res
    return out


def evaluate_files(
    paths: Sequence[str | Path],
    out: str | Path,
    cfg: EvalConfig | None = None,
    *,
    identifiers: Any = None,
    bertscorer: Any = None,
    command: str | None = None,
) -> EvalResult:
    """``empo eval``: score every GEN file and write ``OUT/<name>/metrics.json`` (+ ``scores.jsonl``), then the
    comparison ``OUT/comparison.md``, ``OUT/comparison.png`` and ``OUT/summary.json``.

    ``identifiers`` / ``bertscorer`` may be given (tests pass fakes); otherwise they are loaded from ``cfg``.
    """
    from empo.evaluation.report import write_report
    from empo.io import atomic_dir, git_sha, sha256_file, versions, write_json

    cfg = cfg or EvalConfig()
    paths = [Path(p) for p in paths]
    if not paths:
        raise EmpoError("give at least one GEN.jsonl file to evaluate")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EmpoError(f"{out} exists and is not a folder; --out takes a folder")
    # Read and validate everything first: a bad line fails before any model loads.
    inputs = [GenInput(name, p, read_gen(p)) for name, p in zip(input_names(paths), paths, strict=False)]
    for inp in inputs:
        inp.columns.update(response=inp.responses, reference=inp.references)
    warn_if_different_dialogues(inputs)
    skipped: dict[str, str] = {}
    settings: dict[str, Any] = {}

    if cfg.use_identifiers:
        if identifiers is None:
            identifiers, reason = load_default_identifiers(cfg)
            if reason:
                skipped["identifiers"] = reason
                log.warning("skipping diff-Epitome/Emp-F1: %s", reason)
        if identifiers is not None:
            score_identifiers(inputs, identifiers, batch_size=32)
            settings["identifiers"] = str(getattr(identifiers, "path", None) or cfg.identifiers or "default")
    else:
        skipped["identifiers"] = "disabled (--no-identifiers)"

    if cfg.bertscore_model:
        if bertscorer is None:
            from empo.evaluation.bertscore import BertScore, resolve_bertscore

            spec = resolve_bertscore(cfg.bertscore_model, cfg.bertscore_layer, cfg.bertscore_baseline)
            device = None if cfg.device == "auto" else cfg.device
            bertscorer = BertScore(
                spec, rescale=cfg.bertscore_rescale, batch_size=cfg.bertscore_batch_size, device=device
            )
        log.info("BERTScore with %s", getattr(bertscorer, "describe", lambda: {})() or "a given scorer")
        score_bertscore(inputs, bertscorer)
        settings["bertscore"] = bertscorer.describe() if hasattr(bertscorer, "describe") else {}
    else:
        skipped["bertscore"] = "disabled"

    score_vader(inputs)

    nrc = Path(cfg.nrc_vad).expanduser() if cfg.nrc_vad else default_nrc_vad()
    if nrc is not None:
        score_nrc_vad(inputs, load_nrc_vad(nrc), cfg.nrc_vad_agg)
        settings["nrc_vad"] = {"path": str(nrc), "agg": cfg.nrc_vad_agg}
    else:
        skipped["nrc_vad"] = "no lexicon (pass --nrc-vad PATH)"

    results: dict[str, dict[str, Any]] = {}
    paired = paired_vs_first(inputs)
    out.mkdir(parents=True, exist_ok=True)
    for inp in inputs:
        res = aggregate(inp.columns, inp.emotions, cfg.per_emotion)
        if inp.name in paired:
            res["paired"] = paired[inp.name]
        res.update(
            name=inp.name,
            input=str(inp.path),
            sha256=sha256_file(inp.path),
            model=inp.model(),
            settings=settings,
            skipped=skipped,
            eval_config=cfg.model_dump(mode="json"),
            command=command,
            git_sha=git_sha(),
            versions=versions("torch", "transformers", "bert-score", "vaderSentiment", "lexicalrichness"),
        )
        results[inp.name] = res
        with atomic_dir(out / inp.name) as tmp:
            write_json(tmp / "metrics.json", res)
            with (tmp / "scores.jsonl").open("w", encoding="utf-8") as f:
                for row in example_rows(inp):
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        log.info("%s: %d responses -> %s", inp.name, len(inp.records), out / inp.name / "metrics.json")
    write_report(results, out)
    return EvalResult(out=out, names=[i.name for i in inputs], results=results)
