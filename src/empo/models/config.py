"""Recipe sections that say which model to load and how (shared by align, sft, generate, eval)."""

from __future__ import annotations

from typing import Literal

from empo.config import Section


class ModelConfig(Section):
    """Which model: a hub name, a local folder, an empo run folder, or an alias (``smollm2-135m``)."""

    name_or_path: str = "smollm2-135m"
    # "auto": bf16 on a GPU that supports it, fp32 on CPU (no recipe edit between CPU and GPU).
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # "auto": CUDA when available, else CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    trust_remote_code: bool = False
    attn_implementation: str | None = None


class QuantizationConfig(Section):
    """QLoRA: load the base model in 4-bit NF4 with bitsandbytes (a GPU path)."""

    load_in_4bit: bool = False
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    bnb_4bit_use_double_quant: bool = True


class PeftSection(Section):
    """LoRA settings; ``enabled: false`` means full fine-tuning."""

    enabled: bool = True
    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
