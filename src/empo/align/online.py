"""On-policy alignment with empathy rewards: GRPO and RLOO adapters for the algorithm registry.

EmpRL (Ma et al. 2024) trains with PPO; TRL 1.16 removed PPO, and its maintained on-policy trainers are GRPO and
RLOO, which stand in for it here. Both sample ``num_generations`` completions per prompt, score them with the
rewards of :mod:`empo.rl.rewards` (a weighted sum: TRL's ``reward_weights``), and use the group of a prompt as the
baseline (GRPO: rewards normalised within the group; RLOO: each completion against the mean of the others), with a
KL penalty ``beta`` to the reference policy.

Data: the same prefs folder as DPO. Each distinct prompt is one row; its real reply (the ``chosen`` response)
arrives in the reward functions as ``reference``, with ``emotion`` and ``conv_id``. In structured mode (PEER) the
system message of every prompt gets :data:`empo.reasoning.STRUCTURED_INSTRUCTION`, and the rewards that judge the
reply see only its ``<reply>`` section.

LoRA, QLoRA, CPU/GPU precision and the run folder come from the shared path in :mod:`empo.align.train`. With LoRA
the reference is the adapter-disabled model (one copy of the weights); with full fine-tuning and ``beta > 0`` it is
a frozen copy of the starting policy (TRL would reload it from the base checkpoint, which is wrong when the policy
was merged from an SFT run).
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, ClassVar

from empo.align.algorithms import Algorithm, TrainContext, register_algorithm
from empo.errors import RecipeError
from empo.log import get_logger

log = get_logger(__name__)


class OnlineAlgorithm(Algorithm):
    """Shared GRPO/RLOO adapter: config keywords, checks, rewards, structured prompts, the reference model."""

    data_format = "prompt"
    # TRL's GRPO/RLOO use their own sampler (each prompt repeated num_generations times).
    length_grouping = False
    trl_module: ClassVar[str] = ""
    config_class: ClassVar[str] = ""
    trainer_class: ClassVar[str] = ""

    def check(self, recipe: Any) -> None:
        """GRPO/RLOO sample whole groups: the batch must hold complete groups of ``num_generations``."""
        block, t = self.block(recipe), recipe.train
        k = block.num_generations
        per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps
        if per_step % k:
            raise RecipeError(
                f"{self.name}: train.per_device_train_batch_size * train.gradient_accumulation_steps = {per_step} "
                f"must be a multiple of {self.section}.num_generations = {k} (whole groups of samples per prompt); "
                f"e.g. --set train.per_device_train_batch_size={k * max(1, per_step // k)}"
            )
        if t.do_eval and t.per_device_eval_batch_size % k:
            raise RecipeError(
                f"{self.name}: train.per_device_eval_batch_size = {t.per_device_eval_batch_size} must be a multiple "
                f"of {self.section}.num_generations = {k}; e.g. --set train.per_device_eval_batch_size={k}"
            )

    def extra_args(self, block: Any) -> dict[str, Any]:
        """Algorithm-specific config keywords."""
        return {}

    def make_config(self, ctx: TrainContext) -> Any:
        import importlib

        from empo.rl.rewards import parse_reward_specs

        self.check(ctx.recipe)
        block = self.block(ctx.recipe)
        config_cls = getattr(importlib.import_module(self.trl_module), self.config_class)
        return config_cls(
            **ctx.common_args,
            beta=block.beta,
            num_generations=block.num_generations,
            temperature=block.temperature,
            top_p=block.top_p,
            max_completion_length=block.max_completion_length,
            num_iterations=block.num_iterations,
            epsilon=block.epsilon,
            reward_weights=[w for _, w in parse_reward_specs(block.rewards)],
            **self.extra_args(block),
        )

    def reward_funcs(self, ctx: TrainContext) -> list[Any]:
        from empo.rl.rewards import RewardContext, make_reward_funcs

        block = self.block(ctx.recipe)
        rctx = RewardContext(
            structured=block.reasoning == "structured",
            identifiers=Path(block.identifiers).expanduser() if block.identifiers else None,
        )
        funcs, _ = make_reward_funcs(block.rewards, rctx)
        return funcs

    def prepare(self, ctx: TrainContext, dataset: Any) -> Any:
        """Structured mode: the PEER instruction goes into each prompt's system message."""
        if dataset is None or self.block(ctx.recipe).reasoning != "structured":
            return dataset
        from empo.reasoning import with_structured_instruction

        return dataset.map(lambda row: {"prompt": with_structured_instruction(row["prompt"])})

    def make_trainer(self, ctx: TrainContext, config: Any, train_dataset: Any, eval_dataset: Any) -> Any:
        import importlib

        module = importlib.import_module(self.trl_module)
        trainer_cls = getattr(module, self.trainer_class)
        funcs = self.reward_funcs(ctx)
        block = self.block(ctx.recipe)
        log.info(
            "%s: %d completions per prompt, rewards %s, beta %g, %s reasoning",
            self.name,
            block.num_generations,
            ", ".join(block.rewards),
            block.beta,
            block.reasoning,
        )
        kwargs = dict(
            model=ctx.model,
            reward_funcs=funcs,
            args=config,
            train_dataset=self.prepare(ctx, train_dataset),
            eval_dataset=self.prepare(ctx, eval_dataset),
            processing_class=ctx.tokenizer,
            peft_config=ctx.peft_config,
            callbacks=ctx.callbacks,
        )
        if ctx.peft_config is None and block.beta > 0:
            with _reference_is_a_copy_of(ctx.model, module):
                return trainer_cls(**kwargs)
        return trainer_cls(**kwargs)


@contextlib.contextmanager
def _reference_is_a_copy_of(policy: Any, trainer_module: Any):
    """While the trainer is built, its reference model is a frozen deep copy of ``policy`` (not a reload).

    TRL's GRPO/RLOO build the reference with ``create_model_from_path(policy.config._name_or_path)``; after an SFT
    run was merged into the base, that path names the base, not the policy. The policy is passed as an object, so
    this is the only call of that function during construction.
    """
    original = trainer_module.create_model_from_path

    def copy_policy(*args: Any, **kwargs: Any) -> Any:
        ref = copy.deepcopy(policy).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref

    trainer_module.create_model_from_path = copy_policy
    try:
        yield
    finally:
        trainer_module.create_model_from_path = original


@register_algorithm("grpo")
class GRPO(OnlineAlgorithm):
    section = "grpo"
    summary = "Group Relative Policy Optimisation (GRPOTrainer) with empathy rewards (--reward); stands in for EmpRL's PPO"
    trl_module = "trl.trainer.grpo_trainer"
    config_class = "GRPOConfig"
    trainer_class = "GRPOTrainer"

    def extra_args(self, block: Any) -> dict[str, Any]:
        return {"loss_type": block.loss_type, "scale_rewards": block.scale_rewards}


@register_algorithm("rloo")
class RLOO(OnlineAlgorithm):
    section = "rloo"
    summary = (
        "REINFORCE Leave-One-Out (RLOOTrainer) with empathy rewards (--reward); stands in for EmpRL's PPO"
    )
    trl_module = "trl.trainer.rloo_trainer"
    config_class = "RLOOConfig"
    trainer_class = "RLOOTrainer"

    def extra_args(self, block: Any) -> dict[str, Any]:
        return {"normalize_advantages": block.normalize_advantages}
