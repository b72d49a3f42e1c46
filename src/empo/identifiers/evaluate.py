"""Score trained identifiers on an EPITOME CSV (by default the 302-pair test split) against the anchor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from empo.identifiers.data import MECHANISMS, default_split
from empo.identifiers.metrics import ANCHOR_ACCURACY


def evaluate_identifiers(
    identifiers: Any, data: Path | str | None = None, batch_size: int = 64
) -> dict[str, Any]:
    """``{"data": path, "identifiers": folder, "scores": {M: {...}, "mean": {...}}, "anchor_accuracy": {...}}``."""
    from empo.identifiers.train import evaluate_on

    path = Path(data) if data is not None else default_split("test")
    scores = evaluate_on(identifiers, path, batch_size=batch_size)
    return {
        "data": str(path),
        "identifiers": str(getattr(identifiers, "path", None)),
        "scores": scores,
        "anchor_accuracy": ANCHOR_ACCURACY,
    }


def scores_rich_table(result: dict[str, Any]):
    """A rich table: mechanism, n, accuracy, macro-F1, weighted F1, per-level F1, anchor accuracy and the gap."""
    from rich.table import Table

    t = Table(title=f"Empathy identifiers on {result['data']}")
    for col in (
        "mechanism",
        "n",
        "accuracy",
        "macro-F1",
        "weighted F1",
        "F1 per level 0/1/2",
        "anchor acc",
        "Δ acc",
    ):
        t.add_column(col, justify="left" if col == "mechanism" else "right")
    anchor = result.get("anchor_accuracy") or {}
    for m in MECHANISMS:
        s = result["scores"].get(m)
        if s is None:
            continue
        a = anchor.get(m)
        t.add_row(
            m,
            str(s["n"]),
            f"{s['accuracy']:.3f}",
            f"{s['macro_f1']:.3f}",
            f"{s['weighted_f1']:.3f}",
            "/".join(f"{x:.2f}" for x in s["f1_per_level"]),
            f"{a:.3f}" if a is not None else "-",
            f"{s['accuracy'] - a:+.3f}" if a is not None else "-",
        )
    mean = result["scores"].get("mean")
    if mean:
        t.add_row("mean", "", f"{mean['accuracy']:.3f}", f"{mean['macro_f1']:.3f}", "", "", "", "")
    return t
