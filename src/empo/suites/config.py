"""The ``suite`` recipe section (lm-eval suites: MMLU, Open LLM Leaderboard v1 and v2).

Kept light (pydantic only): :mod:`empo.recipe` imports it at CLI start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from empo.config import Section


class SuiteConfig(Section):
    """How ``empo eval --suite`` runs lm-eval. Dedicated flags (``--limit``, ...) override these fields."""

    # Which suite: mmlu, openllm (Open LLM Leaderboard v1) or leaderboard (v2).
    name: str = "mmlu"
    # MMLU subjects to run (mmlu and openllm suites); null: all 57.
    subjects: list[str] | None = None
    # Questions per task (per MMLU subject); null: all. A quick check on CPU uses 2-5.
    limit: int | None = Field(default=None, ge=1)
    # Few-shot examples for every task; null: each task's suite default (MMLU 5, ARC 25, HellaSwag 10, ...).
    num_fewshot: int | None = Field(default=None, ge=0)
    # Read task data from this folder instead of the hub (see the README); null: the hub, or, when
    # HF_HUB_OFFLINE=1, the suite's default folder under $EMPO_DATA_DIR.
    tasks_data: Path | None = None
    # lm-eval batch size; null: "auto" on a GPU, 8 on CPU.
    batch_size: int | Literal["auto"] | None = None
    max_batch_size: int = Field(default=64, ge=1)
    # Cache model answers in a sqlite file under $EMPO_CACHE_DIR/lm_eval (lm-eval's CachingLM).
    use_cache: bool = True
    # Write lm-eval's per-question samples (samples_<task>.jsonl) next to the results.
    log_samples: bool = False
    # Wrap prompts in the model's chat template (lm-eval --apply_chat_template); off for base-model numbers.
    apply_chat_template: bool = False
    # Bootstrap resamples for metrics without a closed-form stderr (lm-eval's default).
    bootstrap_iters: int = Field(default=100000, ge=0)
