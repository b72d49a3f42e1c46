"""``empo align`` and ``empo sft``: thin Typer wrappers over :func:`empo.align.train.run_align` / ``run_sft``.

Only typer and pydantic are imported here; torch, transformers and TRL load inside the command bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from empo.align.algorithms import ALGORITHMS, algorithm_names
from empo.cli import guarded

_ALGOS = ", ".join(algorithm_names())


def _summaries() -> str:
    return "\n".join(f"- `{name}`: {ALGORITHMS.get(name).summary}" for name in algorithm_names())


def _recipe(run_kind: str, out: Path, recipe, sets, flags, resume: bool):
    from empo.errors import EmpoError
    from empo.recipe import load_recipe

    if resume:
        given = [name for name, value in flags.items() if value is not None]
        if recipe is not None or sets or given:
            raise EmpoError(
                f"--resume continues {out} with its recorded recipe.yaml; drop --recipe/--set/"
                + "/".join(f"--{k.split('.')[-1].replace('_', '-')}" for k in given or ["..."])
            )
        path = out / "recipe.yaml"
        if not path.is_file():
            raise EmpoError(
                f"--resume: {out} holds no started {run_kind} run (no recipe.yaml); drop --resume"
            )
        return load_recipe(path)
    return load_recipe(recipe, sets, flags)


_COMMON_EPILOG = (
    "Precedence: schema defaults < --recipe < --set section.key=value < dedicated flags. The run folder gets "
    "empo_run.json, recipe.yaml (written before training), logs.jsonl, metrics.json, README.md (model card), the "
    "LoRA adapter (or the full model with peft.enabled=false), the tokenizer and checkpoints/. On a GPU training "
    "runs in bf16 (fp16 on GPUs without bf16), on CPU in fp32: the same recipe works on both. More GPUs: "
    "`accelerate launch --config_file recipes/accelerate/fsdp.yaml -m empo.cli align ...` (README: Multi-GPU)."
)


def align_command(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to create (refused if it exists)."),
    algo: str | None = typer.Option(
        None, "--algo", "-a", help=f"Algorithm: {_ALGOS} (default: align.algo, dpo)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Hub name, local folder, empo run folder (e.g. an `empo sft` run) or alias `smollm2-135m`.",
    ),
    prefs: Path | None = typer.Option(
        None, "--prefs", "-p", help="Prefs folder from `empo build-prefs` (train.parquet, valid.parquet)."
    ),
    recipe: Path | None = typer.Option(
        None, "--recipe", "-r", help="Recipe YAML (e.g. recipes/smollm2-135m/dpo.yaml)."
    ),
    sets: list[str] = typer.Option(
        [], "--set", "-s", help="Override a recipe key: --set dpo.beta=0.05 (repeatable)."
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Stop after N optimiser steps (train.max_steps)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (train.seed)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run folder from its last checkpoint, with its recorded recipe."
    ),
    rewards: list[str] = typer.Option(
        [],
        "--reward",
        help="GRPO/RLOO reward NAME[=WEIGHT], repeatable: empathy-match, structure, redundancy, length "
        "(grpo.rewards / rloo.rewards; default: empathy-match).",
    ),
    reasoning: str | None = typer.Option(
        None,
        "--reasoning",
        help="GRPO/RLOO: plain replies or PEER's structured reasoning (rewards judge only `<reply>`) "
        "[default: plain].",
    ),
) -> None:
    """Align a model on preference pairs: DPO, IPO, ORPO, KTO or SimPO, with LoRA (default), QLoRA or full FT;
    or on-policy with empathy rewards: GRPO or RLOO (prompts from the same prefs folder).

    Trains on PREFS/train.parquet and evaluates on PREFS/valid.parquet (test.parquet is never read). KTO reads
    unpaired rows (prompt/completion/label) or unpairs the pairs itself. Starting from an `empo sft` run with
    LoRA merges its adapter into the base first; the run records the chain.

    Example (CPU, a few minutes):

        empo align --algo dpo --model smollm2-135m \\
          --prefs runs/prefs --out runs/dpo \\
          --recipe recipes/smollm2-135m/dpo.yaml \\
          --set dpo.beta=0.05 --max-steps 20

    GRPO with EmpRL's reward (the chosen response of each pair is the reference):

        empo align --algo grpo --model smollm2-135m --prefs runs/prefs --out runs/grpo \\
          --reward empathy-match --reward length=0.2 --set grpo.num_generations=4 --max-steps 20

    Continue an interrupted run: `empo align --out runs/dpo --resume`.
    """
    from empo.align.train import run_align
    from empo.errors import EmpoError

    flags = {
        "align.algo": algo,
        "model.name_or_path": model,
        "align.prefs_dir": str(prefs) if prefs is not None else None,
        "train.max_steps": max_steps,
        "train.seed": seed,
    }
    if resume and (rewards or reasoning):
        raise EmpoError(f"--resume continues {out} with its recorded recipe.yaml; drop --reward/--reasoning")
    for section in ("grpo", "rloo"):  # the algorithm may come from the recipe: set both, check below
        flags[f"{section}.rewards"] = list(rewards) or None
        flags[f"{section}.reasoning"] = reasoning
    cfg = _recipe("align", out, recipe, sets, flags, resume)
    if (rewards or reasoning) and cfg.align.algo not in ("grpo", "rloo"):
        raise EmpoError(f"--reward/--reasoning apply to --algo grpo or rloo, not {cfg.align.algo}")
    result = run_align(cfg, out, overwrite=overwrite, resume=resume, command=["empo", *sys.argv[1:]])
    typer.echo(str(result.run_dir))


def sft_command(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to create (refused if it exists)."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Hub name, local folder, empo run folder or alias `smollm2-135m`."
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        "-d",
        help="EmpatheticDialogues folder (train.csv, valid.csv) or the official .tar.gz "
        "(default: $EMPO_DATA_DIR/empatheticdialogues).",
    ),
    recipe: Path | None = typer.Option(
        None, "--recipe", "-r", help="Recipe YAML (e.g. recipes/smollm2-135m/sft.yaml)."
    ),
    sets: list[str] = typer.Option(
        [], "--set", "-s", help="Override a recipe key: --set sft.learning_rate=1e-4."
    ),
    max_steps: int | None = typer.Option(
        None, "--max-steps", help="Stop after N optimiser steps (sft.max_steps)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (train.seed)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run folder from its last checkpoint."),
    reasoning: str | None = typer.Option(
        None,
        "--reasoning",
        help="plain replies, or structured (PEER): `<analysis><emotion><strategy><reply>` targets built from ED "
        "[default: plain].",
    ),
) -> None:
    """Supervised fine-tuning on EmpatheticDialogues, the loss on the listener's turns only (EmPO's first stage).

    Each dialogue is one sequence (system prompt, then the turns, in the model's chat template); every listener
    turn, with its end-of-turn token, is trained, the speaker's turns are context. Dialogues longer than
    train.max_length keep their first turns. Evaluates on the valid split.

    Example, then DPO from the SFT run:

        empo sft --model smollm2-135m --out runs/sft \\
          --recipe recipes/smollm2-135m/sft.yaml --max-steps 30
        empo align --algo dpo --model runs/sft \\
          --prefs runs/prefs --out runs/sft-dpo

    """
    from empo.align.train import run_sft

    flags = {
        "model.name_or_path": model,
        "sft.data_dir": str(data_dir) if data_dir is not None else None,
        "sft.max_steps": max_steps,
        "sft.reasoning": reasoning,
        "train.seed": seed,
    }
    cfg = _recipe("sft", out, recipe, sets, flags, resume)
    result = run_sft(cfg, out, overwrite=overwrite, resume=resume, command=["empo", *sys.argv[1:]])
    typer.echo(str(result.run_dir))


align_command.__doc__ = (
    (align_command.__doc__ or "") + "\n\nAlgorithms:\n\n" + _summaries() + "\n\n" + _COMMON_EPILOG
)
sft_command.__doc__ = (sft_command.__doc__ or "") + "\n\n" + _COMMON_EPILOG
align_command = guarded(align_command)
sft_command = guarded(sft_command)
