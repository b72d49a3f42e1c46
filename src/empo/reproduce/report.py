"""The report of `empo reproduce`: ``report.md``, ``metrics.png``, ``training.png`` and ``report.json``, every
figure read from the run's own outputs (eval metrics and per-example scores, lm-eval results and samples, the
training run's ``logs.jsonl``, the stage timings)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from empo.evaluation.metrics import paired_difference as paired
from empo.log import get_logger
from empo.suites.compare import read_samples as mmlu_samples
from empo.suites.summary import finite_float as _num

if TYPE_CHECKING:
    from empo.reproduce.pipeline import Pipeline

log = get_logger(__name__)

#: Headline rows: (metric in empo eval's metrics.json, label, better: lower/higher/"", reference metric or None).
ROWS: list[tuple[str, str, str, str | None]] = [
    ("diff-ER", "diff-ER (emotional reactions)", "lower", None),
    ("diff-IP", "diff-IP (interpretations)", "lower", None),
    ("diff-EX", "diff-EX (explorations)", "lower", None),
    ("diff-mean", "diff-Epitome mean", "lower", None),
    ("emp-f1", "Emp-F1", "higher", None),
    ("bertscore-F1", "BERTScore F1 vs reference", "higher", None),
    ("distinct-1", "distinct-1", "higher", "distinct-1-reference"),
    ("distinct-2", "distinct-2", "higher", "distinct-2-reference"),
    ("vader-response", "valence: VADER compound of the response", "", "vader-reference"),
    ("vader-absdiff", "valence gap: abs(VADER context - response)", "lower", None),
    ("nrc-valence-diff", "valence: NRC-VAD context - response", "", "nrc-valence-diff-reference"),
    ("words", "length (words per response)", "", "words-reference"),
]
MECHS = ("ER", "IP", "EX")
CHARTS = ("metrics.png", "training.png")


# ------------------------------------------------------------------------------------------------------ reading


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def fmt(v: Any, digits: int = 3) -> str:
    v2 = _num(v)
    if v2 is None:
        return "—" if v is None else str(v)
    return f"{v2:.{digits}f}" if abs(v2) < 100 else f"{v2:.1f}"


def per_example_diff(scores: list[dict[str, Any]]) -> dict[str, float]:
    """conv_id -> mean over ER/IP/EX of (level_response - level_reference)^2 (the per-example diff-Epitome)."""
    out = {}
    for row in scores:
        vals = []
        for m in MECHS:
            r, g = row.get(f"level_{m}_response"), row.get(f"level_{m}_reference")
            if r is None or g is None:
                break
            vals.append((r - g) ** 2)
        else:
            out[str(row["conv_id"])] = sum(vals) / len(vals)
    return out


# --------------------------------------------------------------------------------------------------- gathering


def gather(pipe: Pipeline) -> dict[str, Any]:
    """Every number of the report, from the run folder."""
    state = pipe.state.data if pipe.state is not None else {}
    s: dict[str, Any] = {
        "out": str(pipe.out),
        "ed_source": str(pipe.ed_source),
        "ed_description": state.get("ed_description"),
        "machine": state.get("machine"),
        "load_start": state.get("load_start"),
        "command": state.get("command"),
        "git_sha": state.get("git_sha"),
        "units": state.get("units", {}),
        "unit_order": [u.name for u in pipe.units],
        "notes": [],
    }
    r = pipe.recipe
    s["settings"] = {
        "model": r.model.name_or_path,
        "sft": pipe.rp.sft,
        "algo": r.align.algo,
        "peft": f"LoRA r={r.peft.r}, alpha {r.peft.lora_alpha}, {r.peft.target_modules}"
        if r.peft.enabled
        else "full fine-tuning",
        "beta": getattr(getattr(r, r.align.algo, None), "beta", None),
        "learning_rate": r.train.learning_rate,
        "lr_scheduler_type": r.train.lr_scheduler_type,
        "max_steps": r.train.max_steps,
        "batch": r.train.per_device_train_batch_size * r.train.gradient_accumulation_steps,
        "max_length": r.train.max_length,
        "prefs": f"{r.prefs.strategy}, {r.prefs.pairs_per_dialogue} per dialogue, "
        f"last {r.prefs.max_context_turns or 'all'} turns of context",
        "generate": f"{r.generate.split} split, {r.generate.limit or 'all'} dialogues, "
        f"{'sampling' if r.generate.do_sample else 'greedy'}, {r.generate.max_new_tokens} new tokens, "
        f"last {r.generate.max_context_turns or 'all'} turns of context",
        "mmlu": f"{r.suite.num_fewshot if r.suite.num_fewshot is not None else 5}-shot, "
        f"{r.suite.limit or 'all'} per subject, "
        f"{len(r.suite.subjects) if r.suite.subjects else 57} subjects",
    }
    stats = _read_json(pipe.path("prefs") / "stats.json")
    if stats:
        s["pairs"] = {k: v["pairs"] for k, v in stats.get("splits", {}).items()}

    # Response metrics (empo eval)
    ev = {who: _read_json(pipe.path("eval") / who / "metrics.json") for who in ("base", "aligned")}
    if ev["base"] and ev["aligned"]:
        s["n_dialogues"] = ev["base"]["n"]
        rows = []
        for key, label, better, ref in ROWS:
            b, a = ev["base"]["metrics"].get(key), ev["aligned"]["metrics"].get(key)
            if b is None and a is None:
                continue
            rows.append(
                {
                    "metric": key,
                    "label": label,
                    "better": better,
                    "reference": ev["base"]["metrics"].get(ref) if ref else None,
                    "base": b,
                    "aligned": a,
                    "delta": (a - b) if (a is not None and b is not None) else None,
                }
            )
        s["rows"] = rows
        skipped = {**ev["base"].get("skipped", {})}
        for k, v in skipped.items():
            s["notes"].append(f"eval: {k} skipped: {v}")
        scores = {
            who: per_example_diff(_read_jsonl(pipe.path("eval") / who / "scores.jsonl"))
            for who in ("base", "aligned")
        }
        common = sorted(set(scores["base"]) & set(scores["aligned"]))
        if common:
            s["diff_paired"] = paired(
                [scores["base"][c] for c in common], [scores["aligned"][c] for c in common]
            )
        s["identifiers"] = ev["base"].get("settings", {}).get("identifiers")
    else:
        s["notes"].append("eval: no metrics (the eval stage has not run)")

    # MMLU
    mm = {who: _read_json(pipe.path(f"mmlu_{who}") / "metrics.json") for who in ("base", "aligned")}
    from empo.suites.summary import binomial_stderr

    if pipe.mmlu_skip:
        s["mmlu_skip"] = pipe.mmlu_skip
    elif mm["base"] and mm["aligned"]:
        s["mmlu"] = {
            who: {
                "accuracy": mm[who]["overall"]["value"],
                "stderr": mm[who]["overall"]["stderr"]
                if mm[who]["overall"]["stderr"] is not None
                else binomial_stderr(mm[who]["overall"]["value"], mm[who]["overall"]["n"]),
                "n": mm[who]["overall"]["n"],
            }
            for who in ("base", "aligned")
        }
        sb, sa = mmlu_samples(pipe.path("mmlu_base")), mmlu_samples(pipe.path("mmlu_aligned"))
        keys = sorted(set(sb) & set(sa), key=str)
        if keys:
            s["mmlu"]["paired"] = paired([sb[k] for k in keys], [sa[k] for k in keys])
            s["mmlu"]["answers_changed"] = sum(sb[k] != sa[k] for k in keys)
    else:
        s["notes"].append("mmlu: no results (the mmlu stage has not run)")

    # Training curve
    logs = _read_jsonl(pipe.path("align") / "logs.jsonl")
    train = [row for row in logs if "loss" in row and not any(k.startswith("eval_") for k in row)]
    evals = [row for row in logs if "eval_loss" in row]
    s["curve"] = {
        "step": [row["step"] for row in train],
        "loss": [row.get("loss") for row in train],
        "margin": [row.get("rewards/margins") for row in train],
        "accuracy": [row.get("rewards/accuracies") for row in train],
        "eval": [
            {
                "step": row["step"],
                "loss": row.get("eval_loss"),
                "margin": row.get("eval_rewards/margins"),
                "accuracy": row.get("eval_rewards/accuracies"),
            }
            for row in evals
        ],
    }
    am = _read_json(pipe.path("align") / "metrics.json") or {}
    s["align_timing"] = {k: v for k, v in am.get("timing", {}).items() if k != "step_seconds"}
    s["align_data"] = am.get("data", {}).get("train")

    # Examples: the first N test dialogues, in file order (not picked by result)
    n_ex = pipe.rp.examples
    gb, ga = _read_jsonl(pipe.path("gen_base")), _read_jsonl(pipe.path("gen_aligned"))
    lv = {
        who: {str(row["conv_id"]): row for row in _read_jsonl(pipe.path("eval") / who / "scores.jsonl")}
        for who in ("base", "aligned")
    }
    examples = []
    for b, a in list(zip(gb, ga, strict=False))[:n_ex]:
        if b["conv_id"] != a["conv_id"]:
            break
        cid = str(b["conv_id"])
        user = next((m["content"] for m in reversed(b["context"]) if m["role"] == "user"), "")

        def levels(who: str, side: str, cid: str = cid) -> str | None:
            row = lv[who].get(cid)
            if not row or row.get(f"level_ER_{side}") is None:
                return None
            return "/".join(str(int(row[f"level_{m}_{side}"])) for m in MECHS)

        examples.append(
            {
                "conv_id": cid,
                "emotion": b.get("emotion"),
                "seeker": user,
                "reference": b["reference"],
                "base": b["response"],
                "aligned": a["response"],
                "levels": {
                    "reference": levels("base", "reference"),
                    "base": levels("base", "response"),
                    "aligned": levels("aligned", "response"),
                },
            }
        )
    s["examples"] = examples

    # Verdicts
    rows = {row["metric"]: row for row in s.get("rows", [])}
    if "diff-mean" in rows:
        b, a = rows["diff-mean"]["base"], rows["diff-mean"]["aligned"]
        s["target_empathy"] = {"base": b, "aligned": a, "met": a < b}
    if "mmlu" in s:
        b, a = s["mmlu"]["base"]["accuracy"], s["mmlu"]["aligned"]["accuracy"]
        s["target_mmlu"] = {
            "base": b,
            "aligned": a,
            "delta_points": (a - b) * 100,
            "met": abs(a - b) * 100 <= 2.0,
        }
        pr = s["mmlu"].get("paired")
        if pr and pr.get("se"):
            # Is the change distinguishable from noise? |delta| > 2 paired standard errors.
            s["target_mmlu"]["se_points"] = pr["se"] * 100
            s["target_mmlu"]["significant"] = abs(a - b) > 2 * pr["se"]
    return s


def noise_note(tm: dict[str, Any]) -> str:
    """How to read an MMLU verdict given its paired uncertainty."""
    if "significant" not in tm:
        return ""
    if tm["significant"]:
        return f"the change is beyond 2 paired se ({tm['se_points']:.1f} points)"
    return (
        f"the change is within 2 paired se ({tm['se_points']:.1f} points) of zero: not distinguishable from no "
        "change at this sample size (raise suite.limit for a sharper test)"
    )


# ---------------------------------------------------------------------------------------------------- charts


def metrics_chart(s: dict[str, Any], path: Path) -> bool:
    """Base vs aligned: diff-Epitome, similarity/diversity, MMLU (with stderr bars), length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = {row["metric"]: row for row in s.get("rows", [])}
    panels: list[tuple[str, list[tuple[str, float | None, float | None, float | None, float | None]]]] = []

    def items(keys: list[tuple[str, str]]):
        return [(lab, rows[k]["base"], rows[k]["aligned"], None, None) for lab, k in keys if k in rows]

    p = items([("ER", "diff-ER"), ("IP", "diff-IP"), ("EX", "diff-EX"), ("mean", "diff-mean")])
    if p:
        panels.append(("diff-Epitome (lower is better)", p))
    p = items(
        [
            ("Emp-F1", "emp-f1"),
            ("BERTScore F1", "bertscore-F1"),
            ("distinct-1", "distinct-1"),
            ("distinct-2", "distinct-2"),
        ]
    )
    if p:
        panels.append(("Emp-F1, BERTScore, diversity (higher is better)", p))
    if "mmlu" in s:
        m = s["mmlu"]
        panels.append(
            (
                f"MMLU accuracy ({m['base']['n']} questions), ± stderr",
                [
                    (
                        "MMLU accuracy, %",
                        *(100 * m[w]["accuracy"] for w in ("base", "aligned")),
                        *(100 * (m[w]["stderr"] or 0) for w in ("base", "aligned")),
                    )
                ],
            )
        )
    p = items([("words", "words")])
    if p:
        panels.append(("response length (words)", p))
    if not panels:
        return False
    cols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6.0 * cols, 3.4 * nrows), squeeze=False)
    for ax, (title, data) in zip(axes.flat, panels, strict=False):
        x = np.arange(len(data))
        for k, (who, color) in enumerate((("base", "#8c8c8c"), ("aligned", "#d9534f"))):
            vals = [np.nan if d[1 + k] is None else d[1 + k] for d in data]
            errs = [0 if d[3 + k] is None else d[3 + k] for d in data]
            bars = ax.bar(
                x + (k - 0.5) * 0.38,
                vals,
                0.38,
                label=who,
                color=color,
                yerr=errs if any(errs) else None,
                capsize=3,
            )
            ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
        ax.set_xticks(x, [d[0] for d in data])
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def training_chart(s: dict[str, Any], path: Path) -> bool:
    """Loss, reward margin and reward accuracy per step (train), with the evaluations as points."""
    c = s.get("curve", {})
    if not c.get("step"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    for ax, key, title in zip(
        axes,
        ("loss", "margin", "accuracy"),
        ("loss", "reward margin (chosen - rejected)", "reward accuracy"),
        strict=True,
    ):
        pts = [(st, v) for st, v in zip(c["step"], c[key], strict=False) if v is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label="train")
        ev = [(e["step"], e[key]) for e in c.get("eval", []) if e.get(key) is not None]
        if ev:
            ax.scatter([p[0] for p in ev], [p[1] for p in ev], color="#d9534f", zorder=3, label="valid")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ev:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------------- markdown


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip() or "(empty)"


def headline_rows(s: dict[str, Any], short: bool = False) -> list[list[str]]:
    """The result table: metric, reference (human listener), base, aligned, aligned - base, better."""
    out = []
    arrow = {"lower": "lower", "higher": "higher", "": ""}
    for row in s.get("rows", []):
        d = row["delta"]
        out.append(
            [
                row["metric"] if short else row["label"],
                fmt(row["reference"]) if row["reference"] is not None else "",
                fmt(row["base"]),
                fmt(row["aligned"]),
                (f"{d:+.3f}" if d is not None else "—"),
                arrow[row["better"]],
            ]
        )
    if "mmlu" in s:
        m = s["mmlu"]
        b, a = m["base"], m["aligned"]

        def pct(x: dict[str, Any]) -> str:
            se = f" ± {x['stderr'] * 100:.1f}" if x["stderr"] is not None else ""
            return f"{x['accuracy'] * 100:.1f}{se}"

        pr = m.get("paired")
        delta = f"{(a['accuracy'] - b['accuracy']) * 100:+.1f}"
        if pr:
            delta += f" ± {pr['se'] * 100:.1f}"
        label = "MMLU acc %" if short else f"MMLU accuracy, % ({b['n']} questions)"
        out.append([label, "", pct(b), pct(a), delta, "higher"])
    return out


def _load_text(s: dict[str, Any]) -> str:
    m = s.get("machine") or {}
    gpu = m.get("gpu") or "no GPU"
    load = s.get("load_start")
    return (
        f"{m.get('cpus')} CPU cores ({m.get('processor')}), {m.get('memory_gib')} GiB, {gpu}; "
        f"load average at start {load[0] if load else '?'}"
    )


def markdown(s: dict[str, Any]) -> str:
    st = s["settings"]
    parts = ["# empo reproduce: base vs aligned", ""]
    parts.append(
        f"{st['model']}{' + SFT' if st['sft'] else ''} aligned with {st['algo'].upper()} ({st['peft']}, beta "
        f"{st['beta']}, lr {st['learning_rate']} {st['lr_scheduler_type']}, {st['max_steps']} steps of "
        f"{st['batch']} pairs) on preference pairs built from {s['ed_description']}; both models answer "
        f"{s.get('n_dialogues', '?')} test dialogues ({st['generate']}). Every number below comes from this run "
        f"(`{s['out']}`)."
    )
    parts += ["", "## Result", ""]
    if s.get("rows") or s.get("mmlu"):
        parts.append(
            _table(
                ["metric", "reference (human)", "base", "aligned", "aligned - base", "better"],
                headline_rows(s),
            )
        )
    parts += ["", "![base vs aligned](metrics.png)", ""]
    parts += ["## Targets", ""]
    te = s.get("target_empathy")
    if te:
        pr = s.get("diff_paired")
        unc = f" (paired over {pr['n']} dialogues: {pr['mean']:+.3f} ± {pr['se']:.3f} se)" if pr else ""
        parts.append(
            f"- Empathy: aligned mean diff-Epitome lower than base: **{'met' if te['met'] else 'NOT met'}**: "
            f"{te['base']:.3f} -> {te['aligned']:.3f}{unc}."
        )
    else:
        parts.append("- Empathy: not measured (no identifiers or no eval stage; see the notes).")
    tm = s.get("target_mmlu")
    if tm:
        m = s["mmlu"]
        pr = m.get("paired")
        unc = (
            f"; paired over the same {pr['n']} questions: {pr['mean'] * 100:+.1f} ± {pr['se'] * 100:.1f} points (se), "
            f"{m.get('answers_changed', 0)} answers changed"
            if pr
            else ""
        )
        parts.append(
            f"- MMLU within 2 points of base: **{'met' if tm['met'] else 'NOT met'}**: "
            f"{tm['base'] * 100:.1f}% -> {tm['aligned'] * 100:.1f}% ({tm['delta_points']:+.1f} points{unc}). "
            f"With {m['base']['n']} questions the accuracy itself has a standard error of about "
            f"{(m['base']['stderr'] or 0) * 100:.1f} points: this catches a collapse, not a 1-point change"
            + (f"; {noise_note(tm)}." if noise_note(tm) else ".")
        )
    else:
        parts.append(f"- MMLU: **not run**: {s.get('mmlu_skip') or 'no results'}.")

    parts += ["", "## Training", "", "![training curve](training.png)", ""]
    c = s.get("curve", {})
    if c.get("step"):

        def first_last(key: str) -> str:
            vals = [v for v in c[key] if v is not None]
            return f"{fmt(vals[0])} -> {fmt(vals[-1])}" if vals else "—"

        rows = [
            ["loss", first_last("loss")],
            ["reward margin", first_last("margin")],
            ["reward accuracy", first_last("accuracy")],
        ]
        for e in c.get("eval", [])[-1:]:
            rows.append(
                [
                    f"valid (step {e['step']}): loss / margin / accuracy",
                    f"{fmt(e['loss'])} / {fmt(e['margin'])} / {fmt(e['accuracy'])}",
                ]
            )
        t = s.get("align_timing", {})
        if t.get("seconds_per_step_median") is not None:
            rows.append(
                [
                    "time",
                    f"{t.get('steps_timed')} steps, {fmt(t.get('seconds_per_step_median'), 1)} s/step (median), "
                    f"reference log-probs {fmt(t.get('precompute_ref_seconds'), 1)} s",
                ]
            )
        parts.append(_table(["training (first logged step -> last)", "value"], rows))
    else:
        parts.append("No training log (the align stage has not run).")

    ex = s.get("examples", [])
    if ex:
        parts += [
            "",
            f"## Examples: the first {len(ex)} test dialogues (file order, not picked)",
            "",
            "Levels are ER/IP/EX (0-2) from the empathy identifiers.",
        ]
        for i, e in enumerate(ex, 1):
            parts += [
                "",
                f"**{i}. {e['conv_id']}** ({e.get('emotion') or '?'}): *speaker:* {_cell(e['seeker'])}",
                "",
            ]
            rows = [
                [who, _cell(e[who]), e["levels"].get(who) or "—"] for who in ("reference", "base", "aligned")
            ]
            parts.append(_table(["", "listener's reply", "ER/IP/EX"], rows))

    parts += ["", "## Stages and timing", ""]
    rows = []
    total = cpu = 0.0
    for name in s.get("unit_order") or list(s["units"]):
        u = s["units"].get(name)
        if u is None or name == "report":
            continue
        secs, cs = u.get("seconds"), u.get("cpu_seconds")
        if u.get("status") == "done":
            total += secs or 0.0
            cpu += cs or 0.0
        load = ""
        if u.get("load_start") and u.get("load_end"):
            load = f"{u['load_start'][0]} -> {u['load_end'][0]}"
        note = "reused from an earlier run" if u.get("reused") else (u.get("note") or "")
        rows.append(
            [
                name,
                u.get("status", ""),
                fmt(secs, 1) if secs is not None else "",
                fmt(cs, 1) if cs is not None else "",
                load,
                _cell(note) if note else "",
            ]
        )
    parts.append(_table(["unit", "status", "wall s", "CPU s", "load avg (1 min)", "note"], rows))
    threads = (s.get("machine") or {}).get("threads") or 1
    parts += [
        "",
        f"Sum of the stage times: {total:.0f} s wall ({total / 60:.1f} min), {cpu:.0f} s of CPU time. Machine: "
        f"{_load_text(s)}. Wall times taken while other jobs share the machine grow with the load average; the CPU "
        f"time does not, and on an idle machine the wall time is about the CPU time / {threads} threads "
        f"({cpu / threads / 60:.1f} min) or a little more.",
    ]

    parts += ["", "## Data and settings", ""]
    pairs = s.get("pairs")
    pairs_text = ", ".join(f"{k} {v}" for k, v in pairs.items()) if pairs else ""
    parts.append(
        f"- Data: {s['ed_description']}" + (f"; preference pairs: {pairs_text}" if pairs else "") + "."
    )
    for k in ("prefs", "generate", "mmlu"):
        parts.append(f"- {k}: {st[k]}")
    if s.get("identifiers"):
        parts.append(f"- identifiers: {s['identifiers']}")
    parts.append(
        "- Full settings: `recipe.yaml`; per-emotion breakdown: `eval/comparison.md`; stage records: "
        "`reproduce.json`; every number of this page: `report.json`."
    )
    if s.get("command") or s.get("git_sha"):
        parts.append(
            f"- Command: `{s.get('command') or 'empo reproduce'}`; git {str(s.get('git_sha') or '?')[:12]}"
        )
    if s["notes"]:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in s["notes"]]
    return "\n".join(parts) + "\n"


def write_report(pipe: Pipeline) -> dict[str, Any]:
    """Write ``report.md``, the charts and ``report.json`` into the run folder; return the gathered numbers."""
    from empo.io import write_json

    s = gather(pipe)
    out = pipe.out
    for name, fn in (("metrics.png", metrics_chart), ("training.png", training_chart)):
        tmp = out / f".{name}.tmp-{os.getpid()}.png"
        if fn(s, tmp):
            os.replace(tmp, out / name)
        else:
            (out / name).unlink(missing_ok=True)
    md = markdown(s)
    tmp = out / f".report.md.tmp-{os.getpid()}"
    tmp.write_text(md, encoding="utf-8")
    os.replace(tmp, out / "report.md")
    write_json(out / "report.json", s)
    log.info("report: %s (+ metrics.png, training.png, report.json)", out / "report.md")
    return s


def summary_table(s: dict[str, Any]):
    """The result as a rich table (printed by the CLI)."""
    from rich.table import Table

    t = Table(title=f"empo reproduce: base vs aligned ({s.get('n_dialogues', '?')} test dialogues)")
    for col in ("metric", "reference", "base", "aligned", "aligned - base", "better"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for row in headline_rows(s, short=True):
        t.add_row(*row)
    return t


def verdict_lines(s: dict[str, Any]) -> list[str]:
    out = []
    te = s.get("target_empathy")
    if te:
        out.append(
            f"empathy target (aligned diff-Epitome < base): {'met' if te['met'] else 'NOT met'} "
            f"({te['base']:.3f} -> {te['aligned']:.3f})"
        )
    tm = s.get("target_mmlu")
    if tm:
        out.append(
            f"MMLU target (within 2 points): {'met' if tm['met'] else 'NOT met'} "
            f"({tm['base'] * 100:.1f}% -> {tm['aligned'] * 100:.1f}%, {tm['delta_points']:+.1f} points"
            + (f"; {noise_note(tm)})" if noise_note(tm) else ")")
        )
    elif s.get("mmlu_skip"):
        out.append(f"MMLU: not run: {s['mmlu_skip']}")
    return out
