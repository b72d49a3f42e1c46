"""``empo eval``: response metrics over GEN.jsonl files, or (``--suite`` / ``--compare``) lm-eval suites."""

from __future__ import annotations

from pathlib import Path

import typer

from empo.cli import guarded


@guarded
def eval_command(
    inputs: list[Path] = typer.Argument(
        None,
        help="GEN.jsonl files to score (or, with --compare, two suite result folders).",
        show_default=False,
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder."),
    identifiers: str | None = typer.Option(
        None,
        "--identifiers",
        help="Empathy identifiers folder [default: the cache's, trained on first need].",
    ),
    no_identifiers: bool = typer.Option(
        False, "--no-identifiers", help="Skip diff-Epitome, levels and Emp-F1."
    ),
    no_train_identifiers: bool = typer.Option(
        False,
        "--no-train-identifiers",
        help="Skip (do not train) the default identifiers when they are missing.",
    ),
    bertscore_model: str | None = typer.Option(
        None,
        "--bertscore-model",
        help="`minilm` (offline default), a local folder or a hub name (e.g. roberta-large); `none` disables it.",
    ),
    bertscore_layer: int | None = typer.Option(
        None, "--bertscore-layer", min=0, help="Layer for BERTScore (e.g. 17 for roberta-large)."
    ),
    bertscore_rescale: bool | None = typer.Option(
        None,
        "--bertscore-rescale/--no-bertscore-rescale",
        help="Rescale BERTScore with a baseline [default: no].",
    ),
    bertscore_baseline: str | None = typer.Option(
        None, "--bertscore-baseline", help="Baseline CSV (LAYER,P,R,F) for --bertscore-rescale."
    ),
    nrc_vad: str | None = typer.Option(
        None,
        "--nrc-vad",
        help="NRC-VAD lexicon file [default: $EMPO_DATA_DIR/valence/NRC-VAD-Lexicon.txt if present].",
    ),
    no_per_emotion: bool = typer.Option(False, "--no-per-emotion", help="No per-emotion breakdown."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda [default: auto]."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="BERTScore batch size; with --suite, lm-eval's batch size."
    ),
    suite: str | None = typer.Option(
        None, "--suite", help="Run an lm-eval suite (mmlu, openllm, leaderboard) on --model instead."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="With --suite: model or empo run folder."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="With --suite: questions per task."),
    num_fewshot: int | None = typer.Option(
        None, "--num-fewshot", min=0, help="With --suite: few-shot examples."
    ),
    tasks_data: Path | None = typer.Option(
        None, "--tasks-data", help="With --suite: local task data folder."
    ),
    compare: bool = typer.Option(False, "--compare", help="Compare two suite result folders (the INPUTS)."),
    recipe: Path | None = typer.Option(
        None, "--recipe", help="Recipe YAML (sections eval, suite, model, ...)."
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Override a recipe key, e.g. --set eval.nrc_vad_agg=mean (repeatable)."
    ),
) -> None:
    """Score generated responses: diff-Epitome (ER/IP/EX), Emp-F1, BERTScore, diversity, valence, length.

    `empo eval GEN.jsonl [GEN2.jsonl ...] --out DIR` writes `DIR/<name>/metrics.json` (overall and per ED
    emotion) and `DIR/<name>/scores.jsonl` (per response) for each input, then `DIR/comparison.md`,
    `DIR/comparison.png` and `DIR/summary.json` across inputs.

    `empo eval --suite mmlu --model M --out DIR` runs an lm-eval suite instead; `empo eval --compare A B` compares
    two suite result folders.
    """
    import shlex
    import sys

    from empo.errors import EmpoError
    from empo.recipe import load_recipe

    paths = list(inputs or [])
    if compare:
        from empo.suites.cli import compare_main

        compare_main(paths)
        return
    if suite is not None:
        from empo.suites.cli import suite_main

        suite_main(
            suite=suite,
            model=model,
            out=out,
            limit=limit,
            num_fewshot=num_fewshot,
            tasks_data=tasks_data,
            batch_size=batch_size,
            recipe=recipe,
            overrides=overrides,
        )
        return
    if not paths:
        raise EmpoError(
            "give GEN.jsonl file(s) to score (or --suite NAME, or --compare A B); see `empo eval --help`"
        )
    if out is None:
        raise EmpoError("--out DIR is required: where metrics.json and the comparison go")
    if model is not None or limit is not None or num_fewshot is not None or tasks_data is not None:
        raise EmpoError(
            "--model/--limit/--num-fewshot/--tasks-data go with --suite; GEN files already hold responses"
        )

    from empo.evaluation.scoring import evaluate_files

    bs_model: str | None = bertscore_model
    r = load_recipe(
        recipe,
        overrides,
        {
            "eval.identifiers": identifiers,
            "eval.use_identifiers": False if no_identifiers else None,
            "eval.train_identifiers": False if no_train_identifiers else None,
            "eval.bertscore_model": None if bs_model is None or bs_model.lower() == "none" else bs_model,
            "eval.bertscore_layer": bertscore_layer,
            "eval.bertscore_rescale": bertscore_rescale,
            "eval.bertscore_baseline": bertscore_baseline,
            "eval.bertscore_batch_size": batch_size,
            "eval.nrc_vad": nrc_vad,
            "eval.per_emotion": False if no_per_emotion else None,
            "eval.device": device,
        },
    )
    cfg = r.eval
    if bs_model is not None and bs_model.lower() == "none":
        cfg.bertscore_model = None
    evaluate_files(paths, out, cfg, command=shlex.join(["empo", *sys.argv[1:]]))
