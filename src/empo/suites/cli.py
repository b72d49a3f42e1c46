"""Plain entry functions behind ``empo eval --suite`` and ``empo eval --compare`` (the Typer command lives in
:mod:`empo.evaluation.cli` and dispatches here). Heavy imports happen inside the functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _batch_size(value: int | str | None) -> int | str | None:
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) > 0:
        return int(text)
    from empo.errors import EmpoError

    raise EmpoError(f"--batch-size {value!r}: expected a positive integer or 'auto'")


def suite_main(
    *,
    suite: str,
    model: str,
    out: Path,
    limit: int | None = None,
    num_fewshot: int | None = None,
    tasks_data: Path | None = None,
    batch_size: int | str | None = None,
    recipe: Path | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Run an lm-eval suite (mmlu, openllm, leaderboard) on a model spec; write ``out``; print a summary table.

    Precedence: recipe defaults < ``--recipe`` < ``--set`` < these arguments. Returns the ``metrics.json`` dict.
    """
    from empo.errors import EmpoError
    from empo.log import console
    from empo.recipe import load_recipe

    if out is None:
        raise EmpoError("--out DIR is required with --suite: where lm-eval's results and metrics.json go")
    from empo.suites.runner import run_suite
    from empo.suites.summary import summary_table

    r = load_recipe(
        recipe,
        overrides,
        {
            "model.name_or_path": model,
            "suite.name": suite,
            "suite.limit": limit,
            "suite.num_fewshot": num_fewshot,
            "suite.tasks_data": str(tasks_data) if tasks_data is not None else None,
            "suite.batch_size": _batch_size(batch_size),
        },
    )
    metrics = run_suite(r.suite, r.model, Path(out))
    console.print(summary_table(metrics))
    o, tm = metrics["overall"], metrics["timing"]
    console.print(
        f"{metrics['suite']} overall {o['value'] * 100 if o['value'] is not None else float('nan'):.1f}% "
        f"(± {(o['stderr'] or 0) * 100:.1f}), {tm['questions']} questions, "
        f"{tm['seconds_per_question']} s per question; results in {out}",
        highlight=False,
    )
    return metrics


def compare_main(inputs: list[Path]) -> str:
    """Print and return the per-task difference ``inputs[1]`` minus ``inputs[0]`` (aligned minus base).

    Each difference comes with its uncertainty sqrt(se_a^2 + se_b^2); rows beyond 2 of them are flagged.
    """
    from rich.console import Console

    from empo.errors import EmpoError
    from empo.suites.compare import compare_dirs

    if len(inputs) != 2:
        raise EmpoError(
            f"--compare takes exactly two result folders (BASE_DIR ALIGNED_DIR), got {len(inputs)}"
        )
    comp = compare_dirs(Path(inputs[0]), Path(inputs[1]))
    out = Console(highlight=False)
    out.print(comp.table)
    for note in comp.notes:
        out.print(note)
    return comp.text
