"""Turn lm-eval's results into ``metrics.json`` (headline number per task, group and overall, with stderr) and a table."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from empo.suites.data import MMLU, mmlu_category


def finite_float(x: Any) -> float | None:
    """A finite float, or None (lm-eval writes "N/A" where a stderr cannot be computed, e.g. n=1)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


_num = finite_float


def stderr_key(metric: str) -> str:
    """``acc,none`` -> ``acc_stderr,none`` (lm-eval's naming)."""
    name, _, filt = metric.partition(",")
    return f"{name}_stderr,{filt}" if filt else f"{name}_stderr"


def metric_label(metric: str) -> str:
    """``exact_match,strict-match`` -> ``exact_match (strict-match)``; ``acc,none`` -> ``acc``."""
    name, _, filt = metric.partition(",")
    return name if filt in ("", "none") else f"{name} ({filt})"


def pick_metric(entry: dict[str, Any], preferred: str | None) -> str | None:
    """The headline metric key of a result entry: ``preferred`` if present, else acc/acc_norm/exact_match."""
    keys = [k for k in entry if "," in k and "_stderr" not in k and _num(entry[k]) is not None]
    if preferred and preferred in keys:
        return preferred
    for name in ("acc", "acc_norm", "exact_match", "prompt_level_strict_acc"):
        for k in keys:
            if k.split(",")[0] == name:
                return k
    return keys[0] if keys else None


def _entry(res: dict[str, Any], metric: str | None, n: int | None) -> dict[str, Any]:
    return {
        "metric": metric_label(metric) if metric else None,
        "metric_key": metric,
        "value": _num(res.get(metric)) if metric else None,
        "stderr": _num(res.get(stderr_key(metric))) if metric else None,
        "n": n,
    }


def _pooled(values: list[float], stderrs: list[float | None], sizes: list[int]) -> tuple[float, float | None]:
    """Size-weighted mean and lm-eval's pooled stderr (as its groups with ``weight_by_size`` compute them)."""
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr

    value = aggregate_subtask_metrics(values, sizes, weight_by_size=True)
    if any(s is None for s in stderrs) or any(n < 2 for n in sizes):
        return value, None
    return value, pooled_sample_stderr([float(s) for s in stderrs if s is not None], sizes)


def binomial_stderr(value: float | None, n: int | None) -> float | None:
    """Sample stderr of a mean of 0/1 scores, sqrt(p (1 - p) / (n - 1)) (lm-eval's ``sample_stderr`` for acc).

    Used for a group or category of accuracy tasks when lm-eval's pooled stderr cannot be computed (a member with
    fewer than 2 questions, e.g. ``--limit 1``): it treats the questions as one sample, ignoring the strata (the
    subjects), which makes it a little conservative."""
    if value is None or n is None or n < 2 or not 0.0 <= value <= 1.0:
        return None
    return math.sqrt(value * (1.0 - value) / (n - 1))


def _fill_stderr(entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("stderr") is None and str(entry.get("metric", "")).split(",")[0] in ("acc", "acc_norm"):
        se = binomial_stderr(entry.get("value"), entry.get("n"))
        if se is not None:
            entry["stderr"], entry["stderr_source"] = (
                se,
                "binomial (lm-eval's pooled stderr needs >= 2 per task)",
            )
    return entry


def summarise(
    results: dict[str, Any],
    leaves: list[str],
    metric_of: dict[str, str],
    group_of: dict[str, str],
    overall_group: str | None,
) -> dict[str, Any]:
    """Per-task headline metric, per-group/category aggregates and one overall number from lm-eval's results.

    ``overall_group``: the group whose number is "overall" (MMLU: the size-weighted accuracy). Without one
    (openllm, leaderboard), overall is the unweighted mean of the member scores, as the leaderboards averaged
    them (stderr: sqrt(sum se^2) / k, the members being independent samples).
    """
    res = results.get("results", {})
    nsamp = results.get("n-samples", {})
    nshot = results.get("n-shot", {})
    tasks: dict[str, Any] = {}
    for name in leaves:
        if name not in res:
            continue
        r = res[name]
        n = nsamp.get(name, {})
        entry = _entry(r, pick_metric(r, metric_of.get(name)), n.get("effective"))
        entry.update(
            alias=r.get("alias", name),
            n_total=n.get("original"),
            num_fewshot=nshot.get(name),
            member=group_of.get(name, name),
            all={k: _num(v) for k, v in r.items() if "," in k and _num(v) is not None},
        )
        if name.startswith("mmlu_") and group_of.get(name) == MMLU:
            entry["category"] = mmlu_category(name.removeprefix("mmlu_"))
        tasks[name] = entry

    groups: dict[str, Any] = {}
    subtasks = results.get("group_subtasks", {})
    for g, r in results.get("groups", {}).items():
        members = [t for t in _leaves_of(g, subtasks) if t in tasks]
        n = sum(tasks[t]["n"] or 0 for t in members) or None
        preferred = metric_of.get(members[0]) if members else None
        groups[g] = _fill_stderr({**_entry(r, pick_metric(r, preferred), n), "tasks": len(members)})

    categories: dict[str, Any] = {}
    for cat in sorted({t["category"] for t in tasks.values() if "category" in t}):
        members = [t for t in tasks.values() if t.get("category") == cat and t["value"] is not None]
        sizes = [t["n"] or 0 for t in members]
        value, se = _pooled([t["value"] for t in members], [t["stderr"] for t in members], sizes)
        categories[cat] = _fill_stderr(
            {"metric": "acc", "value": value, "stderr": se, "n": sum(sizes), "tasks": len(members)}
        )

    overall: dict[str, Any]
    if overall_group and overall_group in groups:
        overall = {"name": overall_group, **groups[overall_group]}
    else:
        # One score per suite member: a group's number (MMLU) or the task's own.
        scores = []
        for member in dict.fromkeys(group_of.get(t, t) for t in tasks):
            src = groups.get(member) or tasks.get(member)
            if src and src["value"] is not None:
                scores.append(src)
        ses = [s["stderr"] for s in scores]
        overall = {
            "name": "mean of members",
            "metric": "mean of headline metrics",
            "value": sum(s["value"] for s in scores) / len(scores) if scores else None,
            "stderr": (
                math.sqrt(sum(se * se for se in ses)) / len(ses)  # type: ignore[operator]
                if scores and all(se is not None for se in ses)
                else None
            ),
            "n": sum(t["n"] or 0 for t in tasks.values()),
            "tasks": len(scores),
        }
    return {"tasks": tasks, "groups": groups, "categories": categories, "overall": overall}


def _leaves_of(group: str, subtasks: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for child in subtasks.get(group, []):
        out.extend(_leaves_of(child, subtasks) if child in subtasks else [child])
    return out


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def summary_table(metrics: dict[str, Any], max_tasks: int = 80) -> Table:
    """A rich table: overall, groups, MMLU categories, then every task (scores in %)."""
    t = Table(
        title=f"{metrics['suite']}: {metrics['model']['spec']}"
        + (f" (limit {metrics['limit']} per task)" if metrics.get("limit") else ""),
        title_justify="left",
    )
    for col, just in (("task", "left"), ("metric", "left"), ("shots", "right"), ("n", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    t.add_column("score %", justify="right")
    t.add_column("± se", justify="right")
    o = metrics["overall"]
    t.add_row(
        f"[bold]overall ({o['name']})[/]",
        str(o["metric"]),
        "",
        str(o["n"]),
        f"[bold]{_fmt(o['value'])}[/]",
        _fmt(o["stderr"]),
    )
    for name, g in metrics["groups"].items():
        if name == o.get("name") or g["value"] is None:
            continue
        t.add_row(
            f"[bold]{name}[/] (group)", str(g["metric"]), "", str(g["n"]), _fmt(g["value"]), _fmt(g["stderr"])
        )
    for name, c in metrics["categories"].items():
        t.add_row(f"mmlu: {name}", "acc", "", str(c["n"]), _fmt(c["value"]), _fmt(c["stderr"]))
    t.add_section()
    for i, (name, r) in enumerate(metrics["tasks"].items()):
        if i == max_tasks:
            t.add_row(f"... {len(metrics['tasks']) - max_tasks} more in metrics.json", "", "", "", "", "")
            break
        t.add_row(
            name,
            str(r["metric"]),
            str(r.get("num_fewshot", "")),
            str(r["n"]),
            _fmt(r["value"]),
            _fmt(r["stderr"]),
        )
    return t
