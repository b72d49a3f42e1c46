"""``empo export``: turn a run folder into a standalone model folder that transformers loads by itself.

With ``--merge`` (the default) the base model is loaded in its own dtype (not 4-bit, even for a QLoRA run), the
adapters of the run's chain (e.g. the SFT run it started from) and the run's own adapter are merged into it, and
the result is saved with the run's tokenizer and chat template. ``--no-merge`` copies the adapter alone, with
``base_model_name_or_path`` pointing at the resolved base (only for runs trained directly on a base model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer

from empo.cli import guarded
from empo.errors import EmpoError
from empo.log import get_logger

log = get_logger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)


def _base_dtype(base: str):
    import torch
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(base)
    dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def export_run(
    run_dir: Path | str,
    out: Path | str,
    *,
    merge: bool = True,
    dtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out``: the merged model (``merge``) or the adapter alone, with the tokenizer and provenance."""
    import torch

    from empo.io import atomic_dir, write_json
    from empo.models.resolve import RUN_MARKER, load_tokenizer, read_run_info, resolve_model

    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / RUN_MARKER).is_file():
        raise EmpoError(
            f"{run_dir} is not an empo run folder (no {RUN_MARKER}); pass the --out of empo sft/align"
        )
    resolved = resolve_model(run_dir)
    info = read_run_info(run_dir)
    if resolved.adapter is None:
        if merge:
            log.info("%s holds a full model (no adapter): exporting it as is", run_dir)
        merge = True
    provenance: dict[str, Any] = {
        "exported_from": str(run_dir.resolve()),
        "base_model": info.get("base_model"),
        "resolved_base": resolved.base,
        "merged_adapters": [
            str(p) for p in (*resolved.merged, *([resolved.adapter] if resolved.adapter else []))
        ],
        "algo": info.get("algo"),
        "kind": info.get("kind"),
        "merge": merge,
    }
    with atomic_dir(out, overwrite=overwrite) as tmp:
        tokenizer = load_tokenizer(resolved)
        if merge:
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            torch_dtype = getattr(torch, dtype) if dtype else _base_dtype(resolved.base)
            model = AutoModelForCausalLM.from_pretrained(resolved.base, dtype=torch_dtype)
            for adapter in provenance["merged_adapters"]:
                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            model.generation_config.pad_token_id = tokenizer.pad_token_id
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.save_pretrained(tmp)
            provenance["dtype"] = str(torch_dtype).removeprefix("torch.")
        else:
            if resolved.merged:
                raise EmpoError(
                    f"{run_dir} was trained on top of earlier LoRA runs ({len(resolved.merged)}); an adapter alone "
                    "cannot carry them: export with --merge"
                )
            for name in ADAPTER_FILES:
                shutil.copy2(run_dir / name, tmp / name)
            cfg = json.loads((tmp / "adapter_config.json").read_text(encoding="utf-8"))
            cfg["base_model_name_or_path"] = resolved.base
            (tmp / "adapter_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        tokenizer.save_pretrained(tmp)
        for extra in ("README.md",):
            if (run_dir / extra).is_file():
                shutil.copy2(run_dir / extra, tmp / extra)
        write_json(tmp / "empo_export.json", provenance)
    log.info("exported %s -> %s (%s)", run_dir, out, "merged model" if merge else "adapter")
    return out


@guarded
def export_command(
    run_dir: Path = typer.Argument(..., help="An empo run folder (from empo sft / empo align)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (refused if it exists)."),
    merge: bool = typer.Option(
        True,
        "--merge/--no-merge",
        help="Merge the adapter(s) into the base (default) or copy the adapter alone.",
    ),
    dtype: str | None = typer.Option(
        None, "--dtype", help="float32, bfloat16 or float16 (default: the base model's own dtype)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """Export a run as a standalone model folder: `AutoModelForCausalLM.from_pretrained(DIR)` loads it.

    With --merge the base is loaded in its own dtype (full precision even for a QLoRA run), the run's chain of
    adapters (e.g. SFT, then DPO) is merged in, and the tokenizer with its chat template is saved beside it,
    with empo_export.json (provenance) and the run's model card.

    Example:

        empo export runs/dpo --merge --out runs/dpo-merged

    then `AutoModelForCausalLM.from_pretrained("runs/dpo-merged")`.
    """
    if dtype is not None and dtype not in ("float32", "bfloat16", "float16"):
        raise EmpoError(f"--dtype {dtype}: choose float32, bfloat16 or float16")
    typer.echo(str(export_run(run_dir, out, merge=merge, dtype=dtype, overwrite=overwrite)))
