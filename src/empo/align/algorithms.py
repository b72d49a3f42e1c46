"""The alignment algorithms: one small adapter per algorithm, in a registry (no if/elif chain).

An adapter says which recipe block it reads (``section``), which row format it trains on (``data_format``:
``paired``, ``unpaired`` or ``prompt``), and how to build its TRL config and trainer from the shared
:class:`TrainContext`. Adding an algorithm (e.g. GRPO or RLOO) is one class here, or in another module listed in
:data:`ALGORITHM_MODULES`, plus its recipe block in :mod:`empo.recipe`::

    @register_algorithm("grpo")
    class GRPO(Algorithm):
        section = "grpo"
        data_format = "prompt"
        summary = "Group Relative Policy Optimisation with empathy rewards"

        def make_config(self, ctx): ...
        def make_trainer(self, ctx, config, train_dataset, eval_dataset): ...

Nothing here imports torch or TRL at import time (``empo align --help`` stays instant).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from empo.registry import Registry

if TYPE_CHECKING:
    from empo.align.data import Format
    from empo.recipe import Recipe


@dataclass
class TrainContext:
    """What every adapter gets: the resolved recipe, the tokenizer, the (not yet PEFT-wrapped) model, the LoRA
    config (None for full fine-tuning), the TrainingArguments keywords shared by all TRL configs, callbacks."""

    recipe: Recipe
    tokenizer: Any
    model: Any
    peft_config: Any
    common_args: dict[str, Any]
    callbacks: list[Any] = field(default_factory=list)


class Algorithm:
    """Base adapter. Subclasses set the class attributes and implement the two ``make_*`` methods."""

    name: ClassVar[str] = ""
    section: ClassVar[str] = ""
    data_format: ClassVar[Format] = "paired"
    summary: ClassVar[str] = ""
    # Reads train.group_by_length (KTO must keep its sequential sampler).
    length_grouping: ClassVar[bool] = True

    def block(self, recipe: Recipe) -> Any:
        """This algorithm's recipe block (e.g. ``recipe.dpo``)."""
        return getattr(recipe, self.section)

    def hyperparameters(self, recipe: Recipe) -> dict[str, Any]:
        """The block as a dict (for the model card and metrics)."""
        return self.block(recipe).model_dump(mode="json")

    def check(self, recipe: Recipe) -> None:
        """Recipe checks that need no model: run before anything is loaded or written (raise RecipeError)."""
        return None

    def make_config(self, ctx: TrainContext) -> Any:
        raise NotImplementedError

    def make_trainer(self, ctx: TrainContext, config: Any, train_dataset: Any, eval_dataset: Any) -> Any:
        raise NotImplementedError


ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")

# Modules whose import registers more algorithms (e.g. "empo.rl.algorithms" for GRPO/RLOO).
ALGORITHM_MODULES: list[str] = ["empo.align.online"]
_loaded = False


def _load_modules() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in ALGORITHM_MODULES:
            importlib.import_module(module)


def register_algorithm(name: str):
    """Class decorator: register an :class:`Algorithm` subclass under ``name`` (and set its ``name``)."""

    def deco(cls: type[Algorithm]) -> type[Algorithm]:
        cls.name = name
        ALGORITHMS.add(name, cls)
        return cls

    return deco


def get_algorithm(name: str) -> Algorithm:
    """An adapter instance by name (``dpo``, ``ipo``, ``orpo``, ``kto``, ``simpo``, ...)."""
    _load_modules()
    return ALGORITHMS.get(name)()


def algorithm_names() -> list[str]:
    _load_modules()
    return ALGORITHMS.names()


def _max_completion(ctx: TrainContext) -> int:
    train = ctx.recipe.train
    return train.max_completion_length or train.max_length // 2


@register_algorithm("dpo")
class DPO(Algorithm):
    section = "dpo"
    data_format = "paired"
    summary = "Direct Preference Optimisation (sigmoid loss; other TRL loss types via dpo.loss_type)"

    def loss(self, recipe: Recipe) -> dict[str, Any]:
        block = recipe.dpo
        loss_type = block.loss_type if isinstance(block.loss_type, list) else [block.loss_type]
        return {
            "beta": block.beta,
            "loss_type": loss_type,
            "loss_weights": block.loss_weights,
            "label_smoothing": block.label_smoothing,
        }

    def make_config(self, ctx: TrainContext) -> Any:
        from trl import DPOConfig

        train = ctx.recipe.train
        return DPOConfig(
            **ctx.common_args,
            **self.loss(ctx.recipe),
            max_length=train.max_length,
            truncation_mode="keep_start",
            precompute_ref_log_probs=train.precompute_ref,
            precompute_ref_batch_size=train.precompute_batch_size,
        )

    def make_trainer(self, ctx: TrainContext, config: Any, train_dataset: Any, eval_dataset: Any) -> Any:
        from empo.align.packed import EmpoDPOTrainer

        ref_model = None
        if ctx.peft_config is None and not config.precompute_ref_log_probs:
            # Full fine-tuning with an in-memory reference: TRL would reload the reference from the model's
            # name_or_path, which is wrong when the policy was merged from an SFT adapter. Copy it instead.
            import copy

            ref_model = copy.deepcopy(ctx.model).eval()
        return EmpoDPOTrainer(
            model=ctx.model,
            ref_model=ref_model,
            args=config,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=ctx.tokenizer,
            peft_config=ctx.peft_config,
            callbacks=ctx.callbacks,
            packed=ctx.recipe.train.prefix_sharing,
        )


@register_algorithm("ipo")
class IPO(DPO):
    section = "ipo"
    summary = "Identity Preference Optimisation (DPOConfig(loss_type='ipo'), length-normalised squared loss)"

    def loss(self, recipe: Recipe) -> dict[str, Any]:
        return {"beta": recipe.ipo.beta, "loss_type": ["ipo"]}


@register_algorithm("orpo")
class ORPO(Algorithm):
    section = "orpo"
    data_format = "paired"
    summary = (
        "Odds-Ratio Preference Optimisation (trl.experimental.orpo): SFT + odds-ratio term, no reference"
    )

    def make_config(self, ctx: TrainContext) -> Any:
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig(
            **ctx.common_args,
            beta=ctx.recipe.orpo.beta,
            max_length=ctx.recipe.train.max_length,
            max_completion_length=_max_completion(ctx),
        )

    def make_trainer(self, ctx: TrainContext, config: Any, train_dataset: Any, eval_dataset: Any) -> Any:
        from trl.experimental.orpo import ORPOTrainer

        return ORPOTrainer(
            model=ctx.model,
            args=config,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=ctx.tokenizer,
            peft_config=ctx.peft_config,
            callbacks=ctx.callbacks,
        )


@register_algorithm("simpo")
class SimPO(Algorithm):
    section = "simpo"
    data_format = "paired"
    summary = "SimPO (CPOConfig(loss_type='simpo', cpo_alpha=0)): length-normalised margin loss, no reference"

    def make_config(self, ctx: TrainContext) -> Any:
        from trl.experimental.cpo import CPOConfig

        return CPOConfig(
            **ctx.common_args,
            loss_type="simpo",
            cpo_alpha=0.0,
            beta=ctx.recipe.simpo.beta,
            simpo_gamma=ctx.recipe.simpo.simpo_gamma,
            max_length=ctx.recipe.train.max_length,
            max_completion_length=_max_completion(ctx),
        )

    def make_trainer(self, ctx: TrainContext, config: Any, train_dataset: Any, eval_dataset: Any) -> Any:
        from trl.experimental.cpo import CPOTrainer

        return CPOTrainer(
            model=ctx.model,
            args=config,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=ctx.tokenizer,
            peft_config=ctx.peft_config,
            callbacks=ctx.callbacks,
        )


@register_algorithm("kto")
class KTO(Algorithm):
    section = "kto"
    data_format = "unpaired"
    summary = "Kahneman-Tversky Optimisation (KTOTrainer) on unpaired rows; paired prefs are unpaired first"
    # KTO's KL estimate pairs each example with its neighbours in a fixed-order batch: keep TRL's sequential
    # sampler (the rows are shuffled once, with the seed, before training).
    length_grouping = False

    def make_config(self, ctx: TrainContext) -> Any:
        from trl import KTOConfig

        block = ctx.recipe.kto
        if ctx.recipe.train.per_device_train_batch_size < 2:
            from empo.errors import RecipeError

            raise RecipeError(
                "kto needs train.per_device_train_batch_size >= 2 (its KL estimate uses the batch)"
            )
        args = {**ctx.common_args, "train_sampling_strategy": "sequential"}
        return KTOConfig(
            **args,
            beta=block.beta,
            desirable_weight=block.desirable_weight,
            undesirable_weight=block.undesirable_weight,
            max_length=ctx.recipe.train.max_length,
            precompute_ref_log_probs=False,
        )

    def make_trainer(self, ctx: TrainContext, config: Any, train_dataset: Any, eval_dataset: Any) -> Any:
        from trl import KTOTrainer

        return KTOTrainer(
            model=ctx.model,
            args=config,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=ctx.tokenizer,
            peft_config=ctx.peft_config,
            callbacks=ctx.callbacks,
        )
