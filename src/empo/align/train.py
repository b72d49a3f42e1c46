"""The core of ``empo align`` and ``empo sft``: plain functions from a resolved recipe to a finished run folder.

Both share one path: check the data and the tokenizer, write the recipe, load the model (merging the adapters of
the run it starts from, 4-bit for QLoRA), build the TRL config and trainer (through the algorithm registry for
align), train (or resume), save the adapter/model with its tokenizer, evaluate on the validation split, write
``metrics.json`` and the model card, and mark the run complete.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from empo.align import run as runlib
from empo.align.data import convert, fit_to_length, log_fit, read_prefs
from empo.errors import EmpoError, RecipeError
from empo.log import get_logger
from empo.recipe import Recipe

log = get_logger(__name__)

GC_AUTO_THRESHOLD = 1_000_000_000


@dataclass
class TrainResult:
    """A finished run: its folder and what ``metrics.json`` holds."""

    run_dir: Path
    metrics: dict[str, Any]
    log_history: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------- the model


@dataclass
class Policy:
    model: Any
    tokenizer: Any
    peft_config: Any
    quantized: bool
    device: str
    gradient_checkpointing: bool
    base_model: str
    chain: list[dict[str, Any]]


def precision_args(device: str) -> dict[str, Any]:
    """bf16 autocast on a GPU that has it, fp16 on older GPUs, fp32 on CPU: no recipe edit between machines."""
    import torch

    if device == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": not bf16, "use_cpu": False}
    return {"bf16": False, "fp16": False, "use_cpu": True}


def load_checked_tokenizer(recipe: Recipe) -> tuple[Any, Any]:
    """The resolved model spec and its tokenizer, checked (chat template, EOS, pad) before any weight is loaded."""
    from empo.align.data import check_tokenizer
    from empo.models.resolve import load_tokenizer, resolve_model

    spec = recipe.model.name_or_path
    resolved = resolve_model(spec)
    tokenizer = load_tokenizer(resolved)
    check_tokenizer(tokenizer, spec)
    if recipe.quantization.load_in_4bit and not recipe.peft.enabled:
        raise RecipeError(
            "quantization.load_in_4bit needs peft.enabled: true (a 4-bit base cannot be fine-tuned)"
        )
    return resolved, tokenizer


def load_policy(recipe: Recipe, resolved: Any = None, tokenizer: Any = None) -> Policy:
    """The model to train (not yet wrapped in LoRA) and its tokenizer.

    A LoRA run folder as the starting point is merged into its base first (the new adapter is trained on the
    merged weights, the reference is the merged model). With ``quantization.load_in_4bit`` the base is loaded in
    4-bit NF4 and prepared for k-bit training (QLoRA).
    """
    from empo.models.resolve import load_causal_lm, pick_device

    spec = recipe.model.name_or_path
    if resolved is None or tokenizer is None:
        resolved, tokenizer = load_checked_tokenizer(recipe)
    device = pick_device(recipe.model.device)
    quantized = recipe.quantization.load_in_4bit
    if quantized and device != "cuda":
        log.warning("quantization.load_in_4bit on CPU: bitsandbytes runs, slowly; QLoRA is meant for a GPU")
    model = load_causal_lm(
        resolved, recipe.model, recipe.quantization if quantized else None, merge_adapter=True
    )
    if resolved.adapter is not None or resolved.merged:
        log.info("started from %s: its LoRA adapter(s) are merged into the base before training", spec)
    model.config.use_cache = False
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id

    gc_setting = recipe.train.gradient_checkpointing
    gc = model.num_parameters() > GC_AUTO_THRESHOLD if gc_setting == "auto" else bool(gc_setting)
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gc)
    peft_config = None
    if recipe.peft.enabled:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=recipe.peft.r,
            lora_alpha=recipe.peft.lora_alpha,
            lora_dropout=recipe.peft.lora_dropout,
            target_modules=recipe.peft.target_modules,
            task_type="CAUSAL_LM",
        )
    n = model.num_parameters()
    log.info(
        "model %s: %s parameters on %s (%s%s), %s, gradient checkpointing %s",
        spec,
        f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}",
        device,
        str(next(model.parameters()).dtype).removeprefix("torch."),
        ", 4-bit NF4" if quantized else "",
        f"LoRA r={recipe.peft.r}" if peft_config else "full fine-tuning",
        "on" if gc else "off",
    )
    return Policy(
        model=model,
        tokenizer=tokenizer,
        peft_config=peft_config,
        quantized=quantized,
        device=device,
        gradient_checkpointing=gc,
        base_model=runlib.base_model_spec(spec),
        chain=runlib.chain_of(spec),
    )


def common_args(
    recipe: Recipe,
    run_dir: Path,
    policy: Policy,
    *,
    has_eval: bool,
    length_grouping: bool,
    learning_rate: float | None = None,
    num_train_epochs: float | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """TrainingArguments keywords shared by every TRL config."""
    t = recipe.train
    steps = max_steps or t.max_steps
    args: dict[str, Any] = {
        "output_dir": str(run_dir / runlib.CHECKPOINTS),
        "seed": t.seed,
        "data_seed": t.seed,
        "learning_rate": learning_rate if learning_rate is not None else t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler_type,
        "warmup_steps": t.warmup_ratio,  # a float below 1 is a ratio of the total steps (transformers 5)
        "num_train_epochs": num_train_epochs if num_train_epochs is not None else t.num_train_epochs,
        "max_steps": steps if steps else -1,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "per_device_eval_batch_size": t.per_device_eval_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "optim": t.optim,
        "logging_steps": t.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit,
        "eval_strategy": "steps" if (has_eval and t.eval_steps) else "no",
        "eval_steps": t.eval_steps,
        # transformers 5 name for gradient checkpointing (TRL's configs default it to on)
        "activation_checkpointing": policy.gradient_checkpointing,
        "report_to": "none",
        "dataloader_num_workers": t.dataloader_num_workers,
        "train_sampling_strategy": "group_by_length" if (t.group_by_length and length_grouping) else "random",
        "length_column_name": "length",
        **precision_args(policy.device),
    }
    return args


# ------------------------------------------------------------------------------------------------------- data


def _sample(rows: list[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    if n is None or n >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


TRAIN_COLUMNS = {
    "paired": ("prompt", "chosen", "rejected", "length"),
    "unpaired": ("prompt", "completion", "label"),
    # on-policy: the reply of the data and its metadata reach the reward functions
    "prompt": ("prompt", "reference", "emotion", "conv_id"),
}
OPTIONAL_COLUMNS = {"length", "reference", "emotion", "conv_id"}


def _dataset(rows: list[dict[str, Any]], fmt: str):
    from datasets import Dataset

    cols = TRAIN_COLUMNS[fmt]
    keep = [c for c in cols if c not in OPTIONAL_COLUMNS or (rows and c in rows[0])]
    return Dataset.from_list([{c: r[c] for c in keep} for r in rows])


# ------------------------------------------------------------------------------------------------ the run


def _finish(
    trainer: Any,
    run_dir: Path,
    policy: Policy,
    info: dict[str, Any],
    recipe_yaml: str,
    hyper: dict[str, Any],
    extra: dict[str, Any],
    timer: runlib.StepTimer,
    train_metrics: dict[str, Any],
    has_eval: bool,
) -> TrainResult:
    trainer.save_model(str(run_dir))
    policy.tokenizer.save_pretrained(str(run_dir))
    eval_metrics: dict[str, Any] = {}
    if has_eval:
        eval_metrics = trainer.evaluate()
    logs = runlib.read_logs(run_dir)
    tokens = max((row.get("num_tokens", 0) for row in logs), default=0)
    timing = timer.summary()
    if getattr(trainer, "precompute_seconds", None) is not None:
        timing["precompute_ref_seconds"] = trainer.precompute_seconds
    if tokens and timing.get("train_seconds"):
        timing["train_tokens_per_second"] = tokens / timing["train_seconds"]
    metrics = {
        "kind": info["kind"],
        "algo": info["algo"],
        "final_step": trainer.state.global_step,
        "hyperparameters": hyper,
        "train": train_metrics,
        "eval": eval_metrics,
        "timing": timing,
        **extra,
    }
    runlib.write_json(run_dir / runlib.METRICS_FILE, metrics)
    info["status"] = "complete"
    (run_dir / "README.md").write_text(runlib.model_card(info, recipe_yaml, metrics, hyper), encoding="utf-8")
    runlib.write_run_info(run_dir, info)
    log.info("run complete: %s", run_dir)
    return TrainResult(run_dir=run_dir, metrics=metrics, log_history=list(trainer.state.log_history))


def _train(trainer: Any, run_dir: Path, resume: bool) -> dict[str, Any]:
    ckpt = runlib.last_checkpoint(run_dir) if resume else None
    if resume:
        runlib.trim_logs(run_dir, runlib.checkpoint_step(ckpt))
        if ckpt is None:
            log.info("--resume: no checkpoint yet in %s, training from the start", run_dir)
        else:
            log.info("--resume: continuing from %s", ckpt)
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    return dict(result.metrics)


def _start(
    recipe: Recipe, run_dir: Path, *, overwrite: bool, resume: bool, info: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Create the run folder and write recipe.yaml and empo_run.json BEFORE training (kept as is on resume)."""
    from empo.config import to_yaml

    recipe_yaml = to_yaml(recipe)
    runlib.start_run_dir(run_dir, overwrite=overwrite, resume=resume)
    if resume and (run_dir / runlib.RUN_INFO).is_file():
        old = runlib.read_run_info(run_dir)
        info = {**info, "created": old.get("created", info["created"]), "status": "running"}
        info["resumed"] = [*old.get("resumed", []), runlib.utc_now()]
    else:
        (run_dir / runlib.RECIPE_FILE).write_text(recipe_yaml, encoding="utf-8")
    runlib.write_run_info(run_dir, info)
    return recipe_yaml, info


def run_align(
    recipe: Recipe,
    out: Path | str,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: list[str] | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train ``recipe.model`` on the prefs folder ``recipe.align.prefs_dir`` with ``recipe.align.algo``.

    Trains on ``train.parquet``, evaluates on ``valid.parquet`` (never ``test.parquet``) and writes the run folder
    ``out`` (see :mod:`empo.align.run`). ``resume`` continues ``out`` from its last checkpoint.
    """
    from empo.align.algorithms import TrainContext, get_algorithm

    run_dir = Path(out)
    algo = get_algorithm(recipe.align.algo)
    if not recipe.align.prefs_dir:
        raise RecipeError("no preference data: pass --prefs PREFS_DIR (or set align.prefs_dir in the recipe)")
    algo.check(recipe)  # before anything is loaded or written: a bad batch leaves no half-made run folder
    runlib.check_run_dir(run_dir, overwrite=overwrite, resume=resume)

    data = read_prefs(recipe.align.prefs_dir, with_valid=recipe.train.do_eval)
    train_rows = convert(data.train, data.format, algo.data_format, str(data.folder / "train.parquet"))
    valid_rows = (
        convert(data.valid, data.format, algo.data_format, str(data.folder / "valid.parquet"))
        if data.valid
        else None
    )
    if data.format != algo.data_format:
        log.info(
            "%s trains on %s rows: converted %d %s rows",
            algo.name,
            algo.data_format,
            len(data.train),
            data.format,
        )

    resolved, tokenizer = load_checked_tokenizer(recipe)
    t = recipe.train
    comp_keys = {"paired": ("chosen", "rejected"), "unpaired": ("completion",), "prompt": ()}[
        algo.data_format
    ]
    train_rows = _sample(train_rows, t.max_train_samples, t.seed)
    train_rows, train_fit = fit_to_length(
        train_rows, tokenizer, comp_keys, t.max_length, t.max_completion_length, t.truncate_context
    )
    log_fit("train", train_fit, t.max_length)
    valid_fit = None
    if valid_rows:
        valid_rows = _sample(valid_rows, t.eval_max_samples, t.seed)
        valid_rows, valid_fit = fit_to_length(
            valid_rows, tokenizer, comp_keys, t.max_length, t.max_completion_length, t.truncate_context
        )
        log_fit("valid", valid_fit, t.max_length)
    policy = load_policy(recipe, resolved, tokenizer)
    if algo.data_format == "unpaired":
        # KTO keeps its batches in order (sequential sampler): shuffle once, with the seed.
        random.Random(t.seed).shuffle(train_rows)

    info = runlib.new_run_info(
        kind="align",
        algo=algo.name,
        base_model=policy.base_model,
        peft=policy.peft_config is not None,
        quantized=policy.quantized,
        data_hashes=data.hashes,
        data_source=str(data.folder.resolve()),
        chain=policy.chain,
        command=command,
    )
    recipe_yaml, info = _start(recipe, run_dir, overwrite=overwrite, resume=resume, info=info)

    has_eval = bool(valid_rows)
    timer = runlib.StepTimer()
    ctx = TrainContext(
        recipe=recipe,
        tokenizer=policy.tokenizer,
        model=policy.model,
        peft_config=policy.peft_config,
        common_args=common_args(
            recipe, run_dir, policy, has_eval=has_eval, length_grouping=algo.length_grouping
        ),
        callbacks=[runlib.JsonlLogger(run_dir / runlib.LOGS_FILE), timer, *(callbacks or [])],
    )
    config = algo.make_config(ctx)
    trainer = algo.make_trainer(
        ctx,
        config,
        _dataset(train_rows, algo.data_format),
        _dataset(valid_rows, algo.data_format) if has_eval else None,
    )
    train_metrics = _train(trainer, run_dir, resume)
    extra = {
        "data": {
            "prefs_dir": str(data.folder.resolve()),
            "file_format": data.format,
            "trained_format": algo.data_format,
            "train": train_fit.as_dict(),
            "valid": valid_fit.as_dict() if valid_fit else None,
        },
        "packed_pairs": bool(getattr(trainer, "_packed", False)),
    }
    hyper = {**algo.hyperparameters(recipe), "learning_rate": t.learning_rate}
    return _finish(trainer, run_dir, policy, info, recipe_yaml, hyper, extra, timer, train_metrics, has_eval)


def run_sft(
    recipe: Recipe,
    out: Path | str,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: list[str] | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Supervised fine-tuning on EmpatheticDialogues (``recipe.sft.data_dir``), loss on listener turns only."""
    from datasets import Dataset
    from trl import SFTConfig

    from empo.align.sft_data import sft_rows
    from empo.data.ed import load_ed

    run_dir = Path(out)
    runlib.check_run_dir(run_dir, overwrite=overwrite, resume=resume)
    s, t = recipe.sft, recipe.train
    splits = ["train", "valid"] if t.do_eval else ["train"]
    dialogues = load_ed(s.data_dir, splits)
    resolved, tokenizer = load_checked_tokenizer(recipe)
    train_dialogues = _sample(dialogues["train"], s.max_train_dialogues, t.seed)
    train_rows, train_rep = sft_rows(train_dialogues, tokenizer, s.system_prompt, t.max_length, s.reasoning)
    if not train_rows:
        raise EmpoError(f"no SFT example fits train.max_length={t.max_length}; raise it")
    log.info(
        "sft train: %d dialogues -> %d sequences, %d listener turns trained, %d cut to fit, dropped %s",
        train_rep.dialogues,
        train_rep.examples,
        train_rep.listener_turns,
        train_rep.truncated_dialogues,
        train_rep.dropped or "none",
    )
    valid_rows, valid_rep = [], None
    if dialogues.get("valid"):
        valid_d = _sample(dialogues["valid"], t.eval_max_samples, t.seed)
        valid_rows, valid_rep = sft_rows(valid_d, tokenizer, s.system_prompt, t.max_length, s.reasoning)
    policy = load_policy(recipe, resolved, tokenizer)

    from empo.data.ed import resolve_ed_source
    from empo.io import sha256_file

    source = resolve_ed_source(s.data_dir)
    files = [source] if source.is_file() else [source / f"{sp}.csv" for sp in splits]
    hashes = {f.name: sha256_file(f) for f in files if f.is_file()}
    info = runlib.new_run_info(
        kind="sft",
        algo="sft",
        base_model=policy.base_model,
        peft=policy.peft_config is not None,
        quantized=policy.quantized,
        data_hashes=hashes,
        data_source=str(source.resolve()),
        chain=policy.chain,
        command=command,
    )
    recipe_yaml, info = _start(recipe, run_dir, overwrite=overwrite, resume=resume, info=info)
    has_eval = bool(valid_rows)
    timer = runlib.StepTimer()
    args = common_args(
        recipe,
        run_dir,
        policy,
        has_eval=has_eval,
        length_grouping=True,
        learning_rate=s.learning_rate,
        num_train_epochs=s.num_train_epochs,
        max_steps=s.max_steps,
    )
    config = SFTConfig(**args, max_length=t.max_length, packing=False, shuffle_dataset=False)

    def as_dataset(rows):
        return Dataset.from_list([{k: r[k] for k in ("input_ids", "labels", "length")} for r in rows])

    trainer = _sft_trainer_class()(
        model=policy.model,
        args=config,
        train_dataset=as_dataset(train_rows),
        eval_dataset=as_dataset(valid_rows) if has_eval else None,
        processing_class=policy.tokenizer,
        peft_config=policy.peft_config,
        callbacks=[runlib.JsonlLogger(run_dir / runlib.LOGS_FILE), timer, *(callbacks or [])],
    )
    train_metrics = _train(trainer, run_dir, resume)
    extra = {
        "data": {
            "ed_source": str(source.resolve()),
            "train": train_rep.as_dict(),
            "valid": valid_rep.as_dict() if valid_rep else None,
        }
    }
    hyper = {
        "learning_rate": s.learning_rate if s.learning_rate is not None else t.learning_rate,
        "system_prompt": s.system_prompt,
        "max_length": t.max_length,
        "reasoning": s.reasoning,
    }
    return _finish(trainer, run_dir, policy, info, recipe_yaml, hyper, extra, timer, train_metrics, has_eval)


def _sft_trainer_class():
    from trl import SFTTrainer

    class EmpoSFTTrainer(SFTTrainer):
        """SFTTrainer that keeps the ``length`` column for length-grouped batches."""

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if self._signature_columns is not None and "length" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "length"]

    return EmpoSFTTrainer
