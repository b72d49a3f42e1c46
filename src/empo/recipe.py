"""The recipe: one YAML per run, in sections, each a strict pydantic model owned by its stage.

Every command reads the sections it needs from the same schema, so one file (e.g.
``recipes/smollm2-135m/reproduce.yaml``) can drive the whole pipeline, and a typo anywhere is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from empo.config import Section, apply_overrides, load_yaml, set_if_given, validate
from empo.models.config import ModelConfig, PeftSection, QuantizationConfig


class Recipe(Section):
    """All sections of a run. Each stage reads its own; the rest keep their defaults."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    peft: PeftSection = Field(default_factory=PeftSection)


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
