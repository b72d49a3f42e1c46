"""``empo generate``: a thin Typer wrapper over :func:`empo.generate.core.run_generate`."""

from __future__ import annotations

from pathlib import Path

import typer

from empo.cli import guarded


@guarded
def generate_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output GEN.jsonl (one JSON line per dialogue)."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Hub name, local folder, empo run folder (base + LoRA) or alias `smollm2-135m` [recipe: model.name_or_path].",
    ),
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="ED folder (CSV splits or the official tar.gz) [default: data root]."
    ),
    split: str | None = typer.Option(None, "--split", help="ED split to answer [default: test]."),
    prompts: Path | None = typer.Option(
        None,
        "--prompts",
        help="Answer a JSONL of prompts instead of ED: each line has `context` (a list of messages); other fields are kept.",
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N dialogues."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", min=1, help="[default: 64]"),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="Prompts per batch [default: 32]."
    ),
    do_sample: bool | None = typer.Option(
        None, "--do-sample/--greedy", help="Sample instead of greedy decoding [default: greedy]."
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", help="Sampling temperature [default: 1.0]."
    ),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus sampling mass [default: 1.0]."),
    seed: int | None = typer.Option(None, "--seed", help="Sampling seed [default: 0]."),
    system_prompt: str | None = typer.Option(
        None,
        "--system-prompt",
        help='System message [default: the one build-prefs trains with; "" for none].',
    ),
    max_context_turns: int | None = typer.Option(
        None, "--max-context-turns", min=1, help="Keep only the last N turns of context [default: all]."
    ),
    plugin: str | None = typer.Option(
        None,
        "--plugin",
        help='Prompt plug-in from empo.generate.plugins: hef (emotion classifier + cause words, README "HEF") or oracle-emotion (the gold ED label, an upper bound).',
    ),
    reasoning: str | None = typer.Option(
        None,
        "--reasoning",
        help="plain, or structured (PEER): ask for `<analysis><emotion><strategy><reply>`, keep the reply in "
        "`response` and the rest in `reasoning` [default: plain].",
    ),
    recipe: Path | None = typer.Option(None, "--recipe", help="Recipe YAML (sections model, generate, ...)."),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Override a recipe key, e.g. --set generate.max_prompt_tokens=512 (repeatable)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Answer held-out dialogues: each ED dialogue of a split at its LAST listener turn, batched.

    Writes one JSON line per dialogue (`conv_id`, `emotion`, `context` = the prompt messages, `reference` = the real
    listener turn, `response`, `model`) and the settings, timing and versions in a `.meta.json` sidecar. Greedy by
    default; prompts are sorted by length, left-padded and batched, and the output keeps the input order.

    Example: `empo generate --model smollm2-135m --split test --limit 32 --out runs/gen/base.jsonl`
    """
    import shlex
    import sys

    from empo.generate.core import run_generate
    from empo.recipe import load_recipe

    r = load_recipe(
        recipe,
        overrides,
        {
            "model.name_or_path": model,
            "generate.data_dir": data_dir,
            "generate.split": split,
            "generate.limit": limit,
            "generate.max_new_tokens": max_new_tokens,
            "generate.batch_size": batch_size,
            "generate.do_sample": do_sample,
            "generate.temperature": temperature,
            "generate.top_p": top_p,
            "generate.seed": seed,
            "generate.system_prompt": system_prompt,
            "generate.max_context_turns": max_context_turns,
            "generate.plugin": plugin,
            "generate.reasoning": reasoning,
        },
    )
    run_generate(
        r, out, prompts_file=prompts, overwrite=overwrite, command=shlex.join(["empo", *sys.argv[1:]])
    )
