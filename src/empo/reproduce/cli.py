"""``empo reproduce``: a thin Typer wrapper over :func:`empo.reproduce.pipeline.run_reproduce`."""

from __future__ import annotations

from pathlib import Path

import typer

from empo.cli import guarded


@guarded
def reproduce_command(
    recipe: Path = typer.Option(
        Path("recipes/smollm2-135m/reproduce.yaml"),
        "--recipe",
        "-r",
        help="Recipe YAML with every stage's sections (prefs, sft, train, dpo, generate, eval, suite, reproduce).",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run folder [default: reproduce.out, runs/reproduce]."
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", "-s", help="Override a recipe key, e.g. --set train.max_steps=10 (repeatable)."
    ),
    stages: str | None = typer.Option(
        None,
        "--stages",
        help="Comma-separated stages to run (prefs,sft,align,generate,identifiers,eval,mmlu,report) "
        "[default: all]; the others' earlier outputs are used.",
    ),
    force: bool = typer.Option(False, "--force", help="Re-run the selected stages even when up to date."),
    data_dir: str | None = typer.Option(
        None,
        "--data-dir",
        help="EmpatheticDialogues folder or tar.gz for every stage; `sample` for the embedded sample "
        "[default: $EMPO_DATA_DIR/empatheticdialogues, else the sample].",
    ),
    sft: bool | None = typer.Option(
        None, "--sft/--no-sft", help="Run SFT before DPO [recipe: reproduce.sft]."
    ),
) -> None:
    """Run the whole EmPO pipeline from one recipe and write a before/after report.

    build-prefs on EmpatheticDialogues -> optional SFT -> DPO with LoRA -> generate for the ED test dialogues
    with the base and the aligned model -> empo eval on both -> MMLU 5-shot on both (skipped, with a line in the
    report, when its data is absent) -> OUT/report.md + metrics.png + training.png (+ report.json), also printed
    as a table. Each stage prints its progress and time; re-running with an unchanged recipe reuses the finished
    stages (--force re-runs them), so an interrupted run continues where it stopped.

    Example: `empo reproduce --recipe recipes/smollm2-135m/reproduce.yaml --set train.max_steps=10`
    """
    import shlex
    import sys

    from empo.log import console
    from empo.recipe import load_recipe
    from empo.reproduce.pipeline import run_reproduce
    from empo.reproduce.report import summary_table, verdict_lines

    if not recipe.is_absolute() and not recipe.exists():
        from empo.paths import REPO_ROOT

        if (REPO_ROOT / recipe).is_file():  # the default recipe, run from outside the repository
            recipe = REPO_ROOT / recipe
    r = load_recipe(
        recipe,
        overrides,
        {
            "reproduce.out": str(out) if out is not None else None,
            "reproduce.data_dir": data_dir,
            "reproduce.sft": sft,
        },
    )
    chosen = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    res = run_reproduce(r, stages=chosen, force=force, command=shlex.join(["empo", *sys.argv[1:]]))
    if res.summary:
        console.print(summary_table(res.summary))
        for line in verdict_lines(res.summary):
            console.print(line, highlight=False)
    if res.report is not None:
        typer.echo(str(res.report))
