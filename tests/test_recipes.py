"""Every recipe loads through the strict schema, so recipes cannot rot (alignment-handbook's did)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from empo.align.algorithms import algorithm_names
from empo.paths import REPO_ROOT
from empo.recipe import load_recipe

RECIPES = REPO_ROOT / "recipes"
ACCELERATE = RECIPES / "accelerate"
ALL = sorted(p for p in RECIPES.rglob("*.yaml") if ACCELERATE not in p.parents)


def test_there_are_recipes():
    names = {p.relative_to(RECIPES).as_posix() for p in ALL}
    assert {
        "smollm2-135m/dpo.yaml",
        "smollm2-135m/sft.yaml",
        "zephyr-7b/dpo.yaml",
        "zephyr-7b/sft.yaml",
    } <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_recipe_loads(path: Path):
    recipe = load_recipe(path)
    assert recipe.align.algo in algorithm_names()


def test_smollm2_recipes_name_their_algorithm():
    for algo in ("dpo", "ipo", "orpo", "kto", "simpo"):
        recipe = load_recipe(RECIPES / "smollm2-135m" / f"{algo}.yaml")
        assert recipe.align.algo == algo
        assert recipe.model.name_or_path == "smollm2-135m" and recipe.peft.enabled


def test_zephyr_recipes_are_empos_setting():
    dpo = load_recipe(RECIPES / "zephyr-7b" / "dpo.yaml")
    assert dpo.quantization.load_in_4bit and dpo.peft.enabled
    assert dpo.align.algo == "dpo" and dpo.dpo.loss_type == "sigmoid" and dpo.dpo.beta == 0.05
    assert dpo.train.learning_rate == 1e-6 and dpo.train.lr_scheduler_type == "cosine"
    assert dpo.train.warmup_ratio == 0.1
    assert dpo.train.per_device_train_batch_size * dpo.train.gradient_accumulation_steps == 64
    sft = load_recipe(RECIPES / "zephyr-7b" / "sft.yaml")
    assert sft.model.name_or_path == "alignment-handbook/zephyr-7b-sft-full" and sft.quantization.load_in_4bit
    assert dpo.model.name_or_path == "runs/zephyr-7b/sft"  # SFT first


@pytest.mark.parametrize("path", sorted(ACCELERATE.glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_parse(path: Path):
    cfg = yaml.safe_load(path.read_text())
    assert cfg["distributed_type"] in {"MULTI_GPU", "FSDP", "DEEPSPEED"}
    assert cfg["mixed_precision"] == "bf16" and cfg["num_processes"] >= 2
