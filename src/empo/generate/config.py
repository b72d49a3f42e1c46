"""The ``generate`` recipe section (kept light: pydantic only, imported by :mod:`empo.recipe` at start-up)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from empo.config import Section


class GenerateConfig(Section):
    """How ``empo generate`` answers held-out dialogues. Dedicated flags override these fields."""

    # ED folder (train/valid/test CSVs or the official tar.gz); null: $EMPO_DATA_DIR/empatheticdialogues.
    data_dir: str | None = None
    split: str = "test"
    # Answer only the first N dialogues of the split (file order); null: all.
    limit: int | None = Field(default=None, ge=1)
    max_new_tokens: int = Field(default=64, ge=1)
    # Prompts per forward pass. Prompts are sorted by length first, so a batch holds similar lengths.
    # 32: the fastest of 16/32/64 on 2 CPU cores with SmolLM2 (bench/generate.py, README); raise it on a GPU.
    batch_size: int = Field(default=32, ge=1)
    # Greedy by default (EmPO's evaluation); sampling uses temperature/top_p and the seed.
    do_sample: bool = False
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int = 0
    # null: empo.data.chat.DEFAULT_SYSTEM_PROMPT (the prompt build-prefs trains with); "": no system message.
    system_prompt: str | None = None
    # Keep only the last N turns of the context (as build-prefs does); null: the whole dialogue before the cut.
    max_context_turns: int | None = Field(default=None, ge=1)
    # Prompts longer than this (in tokens) keep their END (the latest turns); null: no limit.
    max_prompt_tokens: int | None = Field(default=None, ge=8)
    # "structured" (PEER): the system message asks for <analysis><emotion><strategy><reply>; the output keeps only
    # the reply in `response` (what empo eval scores) and the rest in `reasoning`. Give it more max_new_tokens.
    reasoning: Literal["plain", "structured"] = "plain"
    # A prompt plug-in from empo.generate.plugins.PLUGINS (e.g. HEF's emotion hints), and its options.
    plugin: str | None = None
    plugin_options: dict[str, Any] = Field(default_factory=dict)
