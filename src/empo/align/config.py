"""Recipe sections for training: ``train`` (shared by sft and align), ``align``, ``sft`` and one block per algorithm.

Each algorithm reads its own block (``dpo``, ``ipo``, ``orpo``, ``kto``, ``simpo``); the registry in
:mod:`empo.align.algorithms` names the block. Defaults are general; ``recipes/`` holds the tuned settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from empo.config import Section

# The same system prompt as build-prefs and generate, so SFT, preference training and evaluation see one context.
from empo.data.chat import DEFAULT_SYSTEM_PROMPT


class TrainSection(Section):
    """Optimisation and batching, shared by ``empo sft`` and ``empo align``."""

    seed: int = 42
    learning_rate: float = 5e-6
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    num_train_epochs: float = 1.0
    # A positive number overrides num_train_epochs (as in transformers).
    max_steps: int | None = Field(None, ge=1)
    per_device_train_batch_size: int = Field(8, ge=1)
    per_device_eval_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    optim: str = "adamw_torch"
    # Tokens of the prompt plus ONE completion. Longer examples first lose their oldest dialogue turns
    # (truncate_context), and are dropped (with a logged count) if they still do not fit.
    max_length: int = Field(512, ge=8)
    truncate_context: bool = True
    # Completions longer than this many tokens are dropped (None: max_length // 2).
    max_completion_length: int | None = Field(None, ge=1)
    # "auto": on for models above 1B parameters (memory), off below (speed); the same on CPU and GPU.
    gradient_checkpointing: Literal["auto"] | bool = "auto"
    # DPO/IPO: compute the reference log-probs once before training (one no-grad pass, batches sorted by length).
    precompute_ref: bool = True
    # DPO/IPO: run prompt, chosen and rejected as ONE sequence (the prompt is computed once per pair) and score only
    # completion tokens. Off, or under FSDP/DeepSpeed/flash-attention, TRL's own forward is used.
    prefix_sharing: bool = True
    # Batches of similar length (less padding), in a seeded random order.
    group_by_length: bool = True
    precompute_batch_size: int | None = Field(None, ge=1)
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    save_total_limit: int | None = Field(2, ge=1)
    # Evaluate on valid.parquet every eval_steps (None: once, at the end); eval_max_samples caps that split.
    eval_steps: int | None = Field(None, ge=1)
    eval_max_samples: int | None = Field(256, ge=1)
    do_eval: bool = True
    max_train_samples: int | None = Field(None, ge=1)
    dataloader_num_workers: int = Field(0, ge=0)


class AlignSection(Section):
    """Which algorithm and which preference folder (``empo build-prefs`` output)."""

    algo: str = "dpo"
    prefs_dir: str | None = None


class DPOSection(Section):
    """Direct Preference Optimisation (TRL ``DPOConfig``); ``loss_type`` may list several losses."""

    beta: float = Field(0.1, gt=0.0)
    loss_type: str | list[str] = "sigmoid"
    loss_weights: list[float] | None = None
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)


class IPOSection(Section):
    """Identity Preference Optimisation (``DPOConfig(loss_type="ipo")``); ``beta`` is the paper's tau."""

    beta: float = Field(0.1, gt=0.0)


class ORPOSection(Section):
    """Odds-Ratio Preference Optimisation (``trl.experimental.orpo``): no reference model; ``beta`` is lambda."""

    beta: float = Field(0.1, gt=0.0)


class KTOSection(Section):
    """Kahneman-Tversky Optimisation (TRL ``KTOTrainer``) on unpaired rows (paired prefs are unpaired first)."""

    beta: float = Field(0.1, gt=0.0)
    desirable_weight: float = Field(1.0, gt=0.0)
    undesirable_weight: float = Field(1.0, gt=0.0)


class SimPOSection(Section):
    """SimPO (``CPOConfig(loss_type="simpo", cpo_alpha=0.0)``): length-normalised, reference-free."""

    beta: float = Field(2.0, gt=0.0)
    simpo_gamma: float = Field(0.5, ge=0.0)


class SFTSection(Section):
    """``empo sft``: supervised fine-tuning on EmpatheticDialogues, loss on listener turns only."""

    # Folder with EmpatheticDialogues' train.csv/valid.csv (None: $EMPO_DATA_DIR/empatheticdialogues).
    data_dir: str | None = None
    # The same system message as build-prefs (null or "" = none), so SFT and preference training share a context.
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    # "structured" (PEER): one row per listener turn, target <analysis><emotion><strategy><reply> built from ED
    # (empo.reasoning.structured_target), with the structured instruction in the system message.
    reasoning: Literal["plain", "structured"] = "plain"
    # Dialogues used from the train split (None: all; a seeded sample otherwise).
    max_train_dialogues: int | None = Field(None, ge=1)
    # Per-stage overrides of the train section (None: use train.*).
    learning_rate: float | None = None
    num_train_epochs: float | None = None
    max_steps: int | None = Field(None, ge=1)

    @field_validator("system_prompt")
    @classmethod
    def _empty_is_none(cls, v: str | None) -> str | None:
        return v or None
