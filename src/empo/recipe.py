"""The recipe: one YAML per run, in sections, each a strict pydantic model owned by its stage.

Every command reads the sections it needs from the same schema, so one file (e.g.
``recipes/smollm2-135m/reproduce.yaml``) can drive the whole pipeline, and a typo anywhere is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from empo.align.config import (
    AlignSection,
    DPOSection,
    IPOSection,
    KTOSection,
    ORPOSection,
    SFTSection,
    SimPOSection,
    TrainSection,
)
from empo.config import Section, apply_overrides, load_yaml, set_if_given, validate
from empo.evaluation.config import EvalConfig
from empo.generate.config import GenerateConfig
from empo.identifiers.config import IdentifiersConfig
from empo.models.config import ModelConfig, PeftSection, QuantizationConfig
from empo.prefs.config import PrefsConfig
from empo.reproduce.config import ReproduceConfig
from empo.rl.config import GRPOSection, RLOOSection
from empo.suites.config import SuiteConfig


class Recipe(Section):
    """All sections of a run. Each stage reads its own; the rest keep their defaults."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    peft: PeftSection = Field(default_factory=PeftSection)
    train: TrainSection = Field(default_factory=TrainSection)
    sft: SFTSection = Field(default_factory=SFTSection)
    align: AlignSection = Field(default_factory=AlignSection)
    dpo: DPOSection = Field(default_factory=DPOSection)
    ipo: IPOSection = Field(default_factory=IPOSection)
    orpo: ORPOSection = Field(default_factory=ORPOSection)
    kto: KTOSection = Field(default_factory=KTOSection)
    simpo: SimPOSection = Field(default_factory=SimPOSection)
    grpo: GRPOSection = Field(default_factory=GRPOSection)
    rloo: RLOOSection = Field(default_factory=RLOOSection)
    prefs: PrefsConfig = Field(default_factory=PrefsConfig)
    suite: SuiteConfig = Field(default_factory=SuiteConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    identifiers: IdentifiersConfig = Field(default_factory=IdentifiersConfig)
    reproduce: ReproduceConfig = Field(default_factory=ReproduceConfig)


def load_recipe(
    path: Path | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> Recipe:
    """Defaults < ``path`` (YAML) < ``overrides`` (``dotted.key=value``) < ``flags`` (dedicated CLI flags).

    ``flags`` maps dotted keys to values; ``None`` values (flags not given) are skipped.
    """
    data = load_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    for dotted, value in (flags or {}).items():
        set_if_given(data, dotted, value)
    source = str(path) if path is not None else "recipe"
    return validate(Recipe, data, source)
