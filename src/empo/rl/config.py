"""Recipe sections ``grpo`` and ``rloo`` (pydantic only: imported by :mod:`empo.recipe` at start-up).

Both on-policy algorithms share the same knobs: the KL coefficient, how many completions are sampled per prompt,
the sampling temperature, the completion length, the rewards (``NAME`` or ``NAME=WEIGHT`` from
:data:`empo.rl.rewards.REWARDS`) and the reasoning mode (``plain`` replies, or PEER's ``structured`` reasoning whose
reply alone is scored by empathy-match, length and redundancy).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from empo.config import Section

Reasoning = Literal["plain", "structured"]


class OnlineSection(Section):
    """Settings shared by GRPO and RLOO (TRL ``GRPOConfig`` / ``RLOOConfig``)."""

    # KL coefficient to the reference policy (the adapter-disabled base with LoRA, a frozen copy otherwise).
    # 0 drops the reference model altogether (less memory, no KL term). EmpRL trains with a KL penalty.
    beta: float = Field(0.04, ge=0.0)
    # Completions sampled per prompt (the group). train.per_device_train_batch_size *
    # train.gradient_accumulation_steps must be a multiple of it.
    num_generations: int = Field(4, ge=2)
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # New tokens per sampled completion (structured reasoning needs more room than a plain reply).
    max_completion_length: int = Field(64, ge=1)
    # Rewards summed with weights: "NAME" or "NAME=WEIGHT" (empathy-match, structure, redundancy, length).
    rewards: list[str] = Field(default_factory=lambda: ["empathy-match"])
    # "structured": prompts get the PEER instruction (empo.reasoning.STRUCTURED_INSTRUCTION) and the rewards that
    # judge the reply (empathy-match, length, redundancy) see only its <reply> section.
    reasoning: Reasoning = "plain"
    # Empathy identifiers folder for empathy-match (null: ~/.cache/empo/identifiers/default).
    identifiers: str | None = None
    # PPO-style updates per generated batch (1 = strictly on-policy) and the clipping range.
    num_iterations: int = Field(1, ge=1)
    epsilon: float = Field(0.2, gt=0.0)

    @field_validator("rewards")
    @classmethod
    def _known_rewards(cls, v: list[str]) -> list[str]:
        from empo.errors import EmpoError
        from empo.rl.rewards import parse_reward_specs

        try:
            parse_reward_specs(v)  # unknown name, bad weight or an empty list
        except EmpoError as exc:
            raise ValueError(str(exc)) from None
        return v


class GRPOSection(OnlineSection):
    """Group Relative Policy Optimisation: advantages are rewards normalised within each prompt's group."""

    # TRL loss aggregation: dapo (TRL's default, token-level), grpo (per-sequence mean), dr_grpo, bnpo, ...
    loss_type: str = "dapo"
    # Divide advantages by the group's ("group"), the batch's ("batch") or no ("none") standard deviation.
    scale_rewards: Literal["group", "batch", "none"] = "group"


class RLOOSection(OnlineSection):
    """REINFORCE Leave-One-Out: each completion's baseline is the mean reward of the others of its group."""

    beta: float = Field(0.05, ge=0.0)
    normalize_advantages: bool = False
