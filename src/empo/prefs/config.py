"""The ``prefs`` recipe section: how build-prefs turns EmpatheticDialogues into preference pairs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from empo.config import Section
from empo.data.chat import DEFAULT_SYSTEM_PROMPT


class PrefsConfig(Section):
    """Settings of ``empo build-prefs`` (recipe section ``prefs``)."""

    # An ED folder (train/valid/test.csv) or empatheticdialogues.tar.gz; null = $EMPO_DATA_DIR/empatheticdialogues
    # (the embedded sample when that is absent); "sample" = the embedded sample.
    data_dir: str | None = None
    # opposite | distance | hard (see empo.prefs.strategies).
    strategy: str = "opposite"
    # Rejected responses drawn per cut point (EmPO: about 3).
    pairs_per_dialogue: int = Field(3, ge=1, le=100)
    # "last": the last listener turn of each dialogue (EmPO); "all": every listener turn after a user turn.
    cuts: Literal["last", "all"] = "last"
    seed: int = Field(0, ge=0)
    # dpo: prompt/chosen/rejected; kto: prompt/completion/label (unpaired).
    format: Literal["dpo", "kto"] = "dpo"
    # null: empo.data.chat.DEFAULT_SYSTEM_PROMPT (the one `empo generate` uses too); "": no system message.
    system_prompt: str | None = None
    # Keep only the last N turns of the context (always starting with a user turn); null = all.
    max_context_turns: int | None = Field(None, ge=1)
    splits: list[Literal["train", "valid", "test"]] = Field(
        default_factory=lambda: ["train", "valid", "test"]
    )
    # Length filter: drop pairs above this percentile of length (EmPO: 95), computed on the train split, and/or
    # above max_tokens. Lengths are tokens of `tokenizer` (a model spec), or whitespace words when it is null.
    max_length_percentile: float | None = Field(None, gt=0, le=100)
    max_tokens: int | None = Field(None, ge=1)
    tokenizer: str | None = None
    # distance: P(rejected emotion) grows as distance ** distance_power.
    distance_power: float = Field(2.0, gt=0)
    # hard: candidates come from the emotions at least this quantile of distances away from the anchor's emotion
    # (0.75 = the farthest quarter, 8 of 31), plus its opposites; the rejected response is drawn among the hard_top_k most
    # similar ones.
    hard_min_distance_quantile: float = Field(0.75, ge=0, lt=1)
    hard_top_k: int = Field(8, ge=1)

    def system_message(self) -> str | None:
        """The system prompt actually used (``None``: no system message)."""
        return DEFAULT_SYSTEM_PROMPT if self.system_prompt is None else (self.system_prompt or None)
