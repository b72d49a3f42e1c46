"""The comparison across inputs: a markdown table (``comparison.md``), a PNG chart (``comparison.png``) and all
numbers in ``summary.json``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from empo.log import get_logger

log = get_logger(__name__)

#: (title, metric columns) of the markdown tables, in order. A column absent from every input is left out.
TABLES: list[tuple[str, list[str]]] = [
    (
        "Empathy (EPITOME identifiers; diff: lower is better, Emp-F1: higher)",
        [
            "diff-ER",
            "diff-IP",
            "diff-EX",
            "diff-mean",
            "absdiff-mean",
            "emp-f1",
            "level-ER-response",
            "level-IP-response",
            "level-EX-response",
        ],
    ),
    (
        "Similarity, diversity, length",
        [
            "bertscore-P",
            "bertscore-R",
            "bertscore-F1",
            "distinct-1",
            "distinct-2",
            "entropy-2",
            "mtld",
            "words",
        ],
    ),
    (
        "Valence (diff = context minus response; context = the seeker's last turn)",
        [
            "vader-response",
            "vader-context",
            "vader-diff",
            "vader-absdiff",
            "nrc-valence",
            "nrc-valence-diff",
            "nrc-arousal-diff",
            "nrc-dominance-diff",
        ],
    ),
]

#: What the reference row shows for the columns that describe texts on their own (not a comparison).
REFERENCE_COLUMNS = {
    "level-ER-response": "level-ER-reference",
    "level-IP-response": "level-IP-reference",
    "level-EX-response": "level-EX-reference",
    "distinct-1": "distinct-1-reference",
    "distinct-2": "distinct-2-reference",
    "entropy-2": "entropy-2-reference",
    "mtld": "mtld-reference",
    "words": "words-reference",
    "vader-response": "vader-reference",
    "vader-context": "vader-context",
    "vader-diff": "vader-diff-reference",
    "nrc-valence": "nrc-valence-reference",
    "nrc-valence-diff": "nrc-valence-diff-reference",
    "nrc-arousal-diff": "nrc-arousal-diff-reference",
    "nrc-dominance-diff": "nrc-dominance-diff-reference",
}

#: Chart panels: (title, [(label, metric), ...]).
PANELS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "diff-Epitome (lower is better)",
        [("ER", "diff-ER"), ("IP", "diff-IP"), ("EX", "diff-EX"), ("mean", "diff-mean")],
    ),
    (
        "BERTScore vs reference",
        [("P", "bertscore-P"), ("R", "bertscore-R"), ("F1", "bertscore-F1"), ("Emp-F1", "emp-f1")],
    ),
    ("Diversity", [("distinct-1", "distinct-1"), ("distinct-2", "distinct-2")]),
    (
        "VADER compound",
        [("response", "vader-response"), ("context", "vader-context"), ("context - resp.", "vader-diff")],
    ),
]


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


#: The per-example metrics compared pairwise against the first input (``empo.evaluation.metrics.PER_EXAMPLE``).
PAIRED_COLUMNS = ["diff-mean", "bertscore-F1", "vader-absdiff", "words"]


def _pm(d: Mapping[str, Any] | None) -> str:
    if not d:
        return "—"
    return f"{d['mean']:+.3f} ± {d['se']:.3f}"


def comparison_markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The markdown report: one table per metric group (a row per input and a ``reference`` row), then the
    per-emotion breakdown of the headline metric."""
    names = list(results)
    parts = [f"# empo eval: {len(names)} input(s)", ""]
    parts.append(
        "\n".join(
            f"- **{n}**: `{r.get('input')}` ({r['n']} responses; model {r.get('model') or '?'})"
            for n, r in results.items()
        )
    )
    first = results[names[0]]["metrics"]
    for title, cols in TABLES:
        cols = [c for c in cols if any(c in results[n]["metrics"] for n in names)]
        if not cols:
            continue
        rows = [[n, results[n]["n"], *(results[n]["metrics"].get(c) for c in cols)] for n in names]
        ref = [first.get(REFERENCE_COLUMNS[c]) if c in REFERENCE_COLUMNS else None for c in cols]
        if any(v is not None for v in ref):
            rows.append([f"reference ({names[0]})", results[names[0]]["n"], *ref])
        parts += ["", f"## {title}", "", markdown_table(["input", "n", *cols], rows)]
    with_pairs = [n for n in names[1:] if results[n].get("paired")]
    if with_pairs:
        metrics = [m for m in PAIRED_COLUMNS if any(results[n]["paired"].get(m) for n in with_pairs)]
        rows = [
            [n, results[n]["paired"]["n"], *(_pm(results[n]["paired"].get(m)) for m in metrics)]
            for n in with_pairs
        ]
        parts += [
            "",
            f"## Paired differences vs {names[0]} (input minus {names[0]}, mean ± se over the same dialogues)",
            "",
            markdown_table(["input", "n", *metrics], rows),
            "",
            "A difference beyond about 2 se is unlikely to be noise; the se is paired (both inputs answer the "
            "same dialogues), so it is smaller than the separate ones combined.",
        ]
    headline = next((m for m in ("diff-mean", "bertscore-F1", "vader-diff") if m in first), None)
    if headline and all("per_emotion" in results[n] for n in names):
        emotions = sorted({e for n in names for e in results[n]["per_emotion"]})
        rows = []
        for e in emotions:
            row: list[Any] = [e]
            for n in names:
                cell = results[n]["per_emotion"].get(e)
                row.append(cell["metrics"].get(headline) if cell else None)
            row.append(max((results[n]["per_emotion"].get(e) or {}).get("n", 0) for n in names))
            rows.append(row)
        parts += ["", f"## {headline} per ED emotion", "", markdown_table(["emotion", *names, "n"], rows)]
    skipped = {k: v for n in names for k, v in results[n].get("skipped", {}).items()}
    if skipped:
        parts += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())]
    return "\n".join(parts) + "\n"


def comparison_chart(results: Mapping[str, Mapping[str, Any]], path: Path) -> bool:
    """Grouped bars (one colour per input) for each panel with data; returns False when nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results)
    panels = [
        (
            title,
            [(lab, m) for lab, m in items if any(results[n]["metrics"].get(m) is not None for n in names)],
        )
        for title, items in PANELS
    ]
    panels = [p for p in panels if p[1]]
    if not panels:
        return False
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 3.6 * rows), squeeze=False)
    width = 0.8 / len(names)
    for ax, (title, items) in zip(axes.flat, panels, strict=False):
        x = np.arange(len(items))
        for k, n in enumerate(names):
            vals = [results[n]["metrics"].get(m) for _, m in items]
            vals = [np.nan if v is None else v for v in vals]
            bars = ax.bar(x + (k - (len(names) - 1) / 2) * width, vals, width, label=n)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks(x, [lab for lab, _ in items])
        ax.set_title(title, fontsize=10)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(names), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(results: Mapping[str, Mapping[str, Any]], out: Path) -> None:
    """Write ``comparison.md``, ``comparison.png`` and ``summary.json`` (every input's numbers) into ``out``."""
    import os

    from empo.io import write_json

    out = Path(out)
    md = comparison_markdown(results)
    tmp = out / f".comparison.md.tmp-{os.getpid()}"
    tmp.write_text(md, encoding="utf-8")
    os.replace(tmp, out / "comparison.md")
    png_tmp = out / f".comparison.tmp-{os.getpid()}.png"
    if comparison_chart(results, png_tmp):
        os.replace(png_tmp, out / "comparison.png")
    write_json(
        out / "summary.json",
        {
            n: {
                "n": r["n"],
                "input": r.get("input"),
                "metrics": r["metrics"],
                **({"paired": r["paired"]} if r.get("paired") else {}),
            }
            for n, r in results.items()
        },
    )
    log.info("comparison: %s, %s", out / "comparison.md", out / "comparison.png")
