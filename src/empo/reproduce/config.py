"""The ``reproduce`` recipe section: which stages `empo reproduce` runs and where (pydantic only, imported at start-up).

Every other setting of the pipeline lives in the ordinary sections of the same recipe (``prefs``, ``sft``,
``train``, ``dpo``, ``generate``, ``eval``, ``suite``, ...), read by the stage that owns them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from empo.config import Section

#: The stages, in order. ``sft`` runs only with ``reproduce.sft: true``; ``mmlu`` only when its data is found.
STAGES: tuple[str, ...] = (
    "prefs",
    "sft",
    "align",
    "generate",
    "identifiers",
    "eval",
    "mmlu",
    "report",
)

StageName = Literal["prefs", "sft", "align", "generate", "identifiers", "eval", "mmlu", "report"]


class ReproduceConfig(Section):
    """``empo reproduce``: build-prefs -> (sft) -> align -> generate (base, aligned) -> eval -> MMLU -> report."""

    # The run folder (``--out`` overrides it). Each stage writes a subfolder; reproduce.json records the stages.
    out: str = "runs/reproduce"
    # Stages to run (null: all). The others are not run; their earlier outputs are used when a later stage needs
    # them.
    stages: list[StageName] | None = None
    # EmpatheticDialogues for every stage (build-prefs, SFT, generation): a folder with train/valid/test.csv or the
    # official tar.gz; "sample" = the embedded sample; null = $EMPO_DATA_DIR/empatheticdialogues, else the sample.
    data_dir: str | None = None
    # Run supervised fine-tuning on ED before preference training (EmPO's first stage).
    sft: bool = False
    # Keys of the `train` section replaced for the SFT stage only (SFT and DPO share `train`), e.g.
    # {max_length: 512, per_device_train_batch_size: 8}.
    sft_train: dict[str, Any] = Field(default_factory=dict)
    # Keys of the `peft` section replaced for the SFT stage only (e.g. {r: 16, lora_alpha: 16} when DPO uses r=128).
    sft_peft: dict[str, Any] = Field(default_factory=dict)
    # MMLU on both models through lm-eval (settings in the `suite` section: limit, subjects, num_fewshot). Its data
    # comes from suite.tasks_data or $EMPO_DATA_DIR/mmlu; when absent the stage is skipped with a line in the report.
    mmlu: bool = True
    # Dialogues shown side by side in the report (the first ones of the test split, in file order: no picking).
    examples: int = Field(5, ge=0, le=100)
