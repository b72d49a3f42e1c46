"""``empo eval --compare BASE_DIR ALIGNED_DIR``: per-task difference (aligned minus base) with its uncertainty.

The uncertainty of a difference is ``sqrt(se_a^2 + se_b^2)``, the standard error of the difference of two
independent estimates. Both runs score the SAME questions, so their errors are positively correlated and this
figure is conservative; a difference beyond 2 of them is flagged. When both runs logged their samples
(``suite.log_samples``), the overall difference is also given PAIRED, over the questions both answered: the mean
per-question difference and its standard error, which is the sharper test.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from empo.errors import EmpoError

FLAG_Z = 2.0


@dataclass(frozen=True)
class Row:
    name: str
    kind: str  # overall / group / category / task
    metric: str
    a: float | None
    b: float | None
    se_a: float | None
    se_b: float | None
    n_a: int | None
    n_b: int | None

    @property
    def diff(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def se(self) -> float | None:
        if self.se_a is None or self.se_b is None:
            return None
        return math.sqrt(self.se_a**2 + self.se_b**2)

    @property
    def z(self) -> float | None:
        d, se = self.diff, self.se
        if d is None or se is None:
            return None
        if se == 0:
            return 0.0 if d == 0 else math.copysign(math.inf, d)
        return d / se

    @property
    def flagged(self) -> bool:
        z = self.z
        return z is not None and abs(z) > FLAG_Z


def read_metrics(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise EmpoError(f"{folder} holds no metrics.json; pass two folders written by `empo eval --suite`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise EmpoError(f"{path}: not valid JSON ({exc})") from None
    if "suite" not in data or "tasks" not in data:
        raise EmpoError(
            f"{path} is not an `empo eval --suite` summary (no 'suite'/'tasks'); pass suite results"
        )
    return data


def read_samples(folder: Path) -> dict[tuple[str, Any], float]:
    """(task, doc_id) -> the 0/1 accuracy of every question answered, from lm-eval's ``samples_<task>.jsonl``
    files (written with ``suite.log_samples``); empty when none were logged."""
    out: dict[tuple[str, Any], float] = {}
    for path in sorted(Path(folder).glob("samples_*.jsonl")):
        task = path.stem.removeprefix("samples_")
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                row = json.loads(line)
                acc = row.get("acc")
                if isinstance(acc, int | float) and math.isfinite(acc):
                    out[(task, row.get("doc_id"))] = float(acc)
    return out


def paired_overall(base: Path, aligned: Path) -> dict[str, Any] | None:
    """Paired accuracy difference (aligned minus base) over the questions both runs answered, from their samples."""
    from empo.evaluation.metrics import paired_difference

    sa, sb = read_samples(base), read_samples(aligned)
    keys = sorted(set(sa) & set(sb), key=str)
    res = paired_difference([sa[k] for k in keys], [sb[k] for k in keys])
    if res is None:
        return None
    return {**res, "changed": sum(sa[k] != sb[k] for k in keys)}


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    """Rows for every entry present in both summaries: overall, groups, MMLU categories, tasks."""
    rows: list[Row] = []

    def add(name: str, kind: str, ea: dict[str, Any], eb: dict[str, Any]) -> None:
        rows.append(
            Row(
                name=name,
                kind=kind,
                metric=str(ea.get("metric") or eb.get("metric") or ""),
                a=ea.get("value"),
                b=eb.get("value"),
                se_a=ea.get("stderr"),
                se_b=eb.get("stderr"),
                n_a=ea.get("n"),
                n_b=eb.get("n"),
            )
        )

    oa, ob = a.get("overall") or {}, b.get("overall") or {}
    if oa and ob:
        add(f"overall ({oa.get('name', '')})", "overall", oa, ob)
    for section, kind in (("groups", "group"), ("categories", "category"), ("tasks", "task")):
        sa, sb = a.get(section) or {}, b.get(section) or {}
        for name, ea in sa.items():
            if name in sb and not (kind == "group" and name == oa.get("name")):
                if ea.get("value") is None and sb[name].get("value") is None:
                    continue
                add(name if kind != "category" else f"mmlu: {name}", kind, ea, sb[name])
    return rows


def _mismatches(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    notes = []
    for key in ("suite", "limit", "num_fewshot", "subjects", "apply_chat_template"):
        if a.get(key) != b.get(key):
            notes.append(f"{key} differs ({a.get(key)!r} vs {b.get(key)!r})")
    only_a = sorted(set(a.get("tasks", {})) - set(b.get("tasks", {})))
    only_b = sorted(set(b.get("tasks", {})) - set(a.get("tasks", {})))
    if only_a or only_b:
        notes.append(
            f"tasks in one run only: {len(only_a)} in the base, {len(only_b)} in the other (not compared)"
        )
    return notes


def _pct(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def compare_table(rows: list[Row], label_a: str, label_b: str) -> Table:
    t = Table(
        title=f"{label_b} minus {label_a} (points of %; * = beyond {FLAG_Z:g} se)", title_justify="left"
    )
    for col, just in (
        ("task", "left"),
        ("metric", "left"),
        ("n", "right"),
        ("base", "right"),
        ("aligned", "right"),
        ("diff", "right"),
        ("± se", "right"),
        ("z", "right"),
        ("", "left"),
    ):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    last_kind = None
    for r in rows:
        if last_kind is not None and r.kind != last_kind and r.kind == "task":
            t.add_section()
        last_kind = r.kind
        n = str(r.n_b) if r.n_a == r.n_b else f"{r.n_a}/{r.n_b}"
        z = "-" if r.z is None else ("inf" if math.isinf(r.z) else f"{r.z:+.1f}")
        t.add_row(
            r.name,
            r.metric,
            n,
            _pct(r.a),
            _pct(r.b),
            _pct(r.diff, signed=True),
            _pct(r.se),
            z,
            "*" if r.flagged else "",
        )
    return t


@dataclass
class Comparison:
    rows: list[Row]
    table: Table
    notes: list[str]
    text: str  # the table and notes as plain text
    paired: dict[str, Any] | None = None  # the overall paired difference, when both runs logged samples


def compare_dirs(base: Path, aligned: Path) -> Comparison:
    """Compare two suite result folders (``aligned`` minus ``base``)."""
    a, b = read_metrics(base), read_metrics(aligned)
    rows = compare_rows(a, b)
    if not rows:
        raise EmpoError(f"{base} and {aligned} share no task to compare")
    table = compare_table(rows, Path(base).name or str(base), Path(aligned).name or str(aligned))
    flagged = [r for r in rows if r.flagged]
    notes = [f"note: {n}" for n in _mismatches(a, b)]
    notes.append(
        f"{len(flagged)} of {len(rows)} rows differ by more than {FLAG_Z:g} se "
        "(se = sqrt(se_base^2 + se_aligned^2), conservative: both runs answer the same questions)"
    )
    pair = paired_overall(Path(base), Path(aligned))
    if pair:
        z = pair["mean"] / pair["se"] if pair["se"] else 0.0
        notes.append(
            f"paired over the {pair['n']} questions both answered (logged samples): {100 * pair['mean']:+.1f} ± "
            f"{100 * pair['se']:.1f} points (se), z {z:+.1f}; {pair['changed']} answers changed"
        )
    else:
        notes.append("no paired test: run both with --set suite.log_samples=true to log per-question answers")
    buf = io.StringIO()
    Console(file=buf, width=120, no_color=True, highlight=False).print(table)
    return Comparison(rows, table, notes, buf.getvalue() + "\n".join(notes) + "\n", pair)
