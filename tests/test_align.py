"""empo align / sft / export on a tiny Llama: every algorithm trains, the run folder is complete, a seeded DPO run
matches its golden losses, resume ends where an uninterrupted run ends, export merges exactly, bad input fails
clearly. The packed (prefix-sharing) DPO path is checked against separate sequences, the losses by hand.

Regenerate the golden file (only when the change of losses is intended):
    EMPO_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_align.py -k golden
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from conftest import WORDS
from empo.align.algorithms import algorithm_names, get_algorithm
from empo.align.data import check_rows, detect_format, fit_to_length, read_prefs, unpair
from empo.align.losses import combined_loss, preference_loss
from empo.align.train import run_align, run_sft
from empo.cli import app
from empo.errors import DataError, EmpoError, RecipeError
from empo.recipe import load_recipe

GOLDEN = Path(__file__).parent / "golden" / "dpo_tiny_losses.json"
runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models on 2 shared cores: one intra-op thread is ~100x faster than two threads fighting other jobs.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sent(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = [
            {"role": "system", "content": "you are good"},
            {"role": "user", "content": _sent(rng, rng.randint(3, 10))},
            {"role": "assistant", "content": _sent(rng, 4)},
            {"role": "user", "content": _sent(rng, 5)},
        ]
        rows.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": _sent(rng, rng.randint(2, 8))}],
                "rejected": [{"role": "assistant", "content": _sent(rng, rng.randint(2, 8))}],
                "conv_id": f"c{i}",
                "emotion": "sad",
                "rejected_emotion": "joyful",
                "strategy": "opposite",
            }
        )
    return rows


def write_prefs(folder: Path, rows_by_split: dict[str, list[dict]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in rows_by_split.items():
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{split}.parquet")
    (folder / "stats.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def prefs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prefs")
    return write_prefs(root, {"train": make_pairs(24), "valid": make_pairs(6, 1), "test": make_pairs(4, 2)})


def recipe_for(model_dir: Path, prefs: Path, algo: str = "dpo", *extra: str):
    return load_recipe(
        None,
        [
            f"model.name_or_path={model_dir}",
            f"align.prefs_dir={prefs}",
            f"align.algo={algo}",
            "train.max_steps=3",
            "train.per_device_train_batch_size=4",
            "train.per_device_eval_batch_size=4",
            "train.warmup_ratio=0",
            "train.learning_rate=1e-2",
            "train.max_length=64",
            "train.save_steps=2",
            *extra,
        ],
    )


def lora_b_norm(run_dir: Path) -> float:
    from safetensors.torch import load_file

    weights = load_file(run_dir / "adapter_model.safetensors")
    return sum(float(v.abs().sum()) for k, v in weights.items() if "lora_B" in k)


def step_losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "logs.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "loss" in row:
            out[row["step"]] = row["loss"]
    return out


def assert_run_complete(run_dir: Path, algo: str, peft: bool = True) -> None:
    names = {p.name for p in run_dir.iterdir()}
    needed = {"empo_run.json", "recipe.yaml", "logs.jsonl", "metrics.json", "README.md", "checkpoints"}
    needed |= {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
    needed |= (
        {"adapter_config.json", "adapter_model.safetensors"} if peft else {"config.json", "model.safetensors"}
    )
    assert needed <= names, needed - names
    info = json.loads((run_dir / "empo_run.json").read_text())
    for key in ("base_model", "algo", "peft", "created", "versions", "git_sha", "data_hashes", "command"):
        assert key in info, key
    assert info["status"] == "complete" and info["algo"] == algo and info["peft"] is peft
    assert "train.parquet" in info["data_hashes"] and "test.parquet" not in info["data_hashes"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["final_step"] == 3 and metrics["eval"]
    assert load_recipe(run_dir / "recipe.yaml").align.algo == algo


# ---------------------------------------------------------------------------------------------- pure pieces


def test_losses_by_hand():
    c, r = torch.tensor([-10.0]), torch.tensor([-12.0])
    rc, rr = torch.tensor([-11.0]), torch.tensor([-11.0])
    nc, nr = torch.tensor([4.0]), torch.tensor([2.0])
    # delta = (-10 + 11) - (-12 + 11) = 2
    assert preference_loss("sigmoid", c, r, rc, rr, nc, nr, beta=0.5).item() == pytest.approx(
        math.log1p(math.exp(-1.0))
    )
    assert preference_loss("hinge", c, r, rc, rr, nc, nr, beta=0.25).item() == pytest.approx(0.5)
    # ipo: 1/4 - (-1)/2 = 0.75; (0.75 - 1/(2*0.5))^2 = 0.0625
    assert preference_loss("ipo", c, r, rc, rr, nc, nr, beta=0.5).item() == pytest.approx(0.0625)
    assert preference_loss("sft", c, r, rc, rr, nc, nr, beta=0.5).item() == pytest.approx(2.5)
    both = combined_loss(["sigmoid", "sft"], [1.0, 0.1], c, r, rc, rr, nc, nr, beta=0.5)
    assert both.item() == pytest.approx(math.log1p(math.exp(-1.0)) + 0.25)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_pairs_equal_separate_sequences(impl):
    from conftest import build_tiny_model
    from empo.align.packed import PackedPairCollator, packed_logps

    model = build_tiny_model(90).eval()
    model.config._attn_implementation = impl
    examples = [
        {"prompt_ids": [5, 6, 7, 8], "chosen_ids": [9, 10, 11], "rejected_ids": [12, 13]},
        {"prompt_ids": [5, 6], "chosen_ids": [20], "rejected_ids": [21, 22, 23, 24]},
    ]
    chosen, rejected, n_c, n_r = packed_logps(model, PackedPairCollator(pad_token_id=0)(examples))

    def separate(prompt, completion):
        logits = model(torch.tensor([prompt + completion])).logits.log_softmax(-1)[0]
        return sum(logits[len(prompt) + k - 1, t].item() for k, t in enumerate(completion))

    for i, ex in enumerate(examples):
        assert chosen[i].item() == pytest.approx(separate(ex["prompt_ids"], ex["chosen_ids"]), abs=1e-5)
        assert rejected[i].item() == pytest.approx(separate(ex["prompt_ids"], ex["rejected_ids"]), abs=1e-5)
    assert n_c.tolist() == [3.0, 1.0] and n_r.tolist() == [2.0, 4.0]


def test_prefs_checks_name_file_row_and_field(tmp_path: Path):
    bad = write_prefs(tmp_path / "cols", {"train": [{"question": "x", "answer": "y"}]})
    with pytest.raises(DataError, match=r"train\.parquet: missing columns.*prompt, chosen, rejected"):
        read_prefs(bad)
    rows = make_pairs(3)
    rows[2]["chosen"] = rows[2]["chosen"] * 2
    with pytest.raises(DataError, match=r"row 2: chosen: expected exactly one assistant message"):
        check_rows(rows, "paired", "train.parquet")
    rows = make_pairs(2)
    rows[1]["prompt"] = rows[1]["prompt"][:-1]
    with pytest.raises(DataError, match=r"row 1: prompt must end with a user message"):
        check_rows(rows, "paired", "train.parquet")
    with pytest.raises(DataError, match="not found"):
        read_prefs(tmp_path / "nowhere")
    assert detect_format(["prompt", "completion", "label"], "x") == "unpaired"


def test_unpair_keeps_metadata_and_labels():
    rows = unpair(make_pairs(2))
    assert [r["label"] for r in rows] == [True, False, True, False]
    assert rows[0]["completion"] == make_pairs(2)[0]["chosen"]
    assert rows[1]["completion_emotion"] == "joyful" and rows[0]["completion_emotion"] == "sad"
    assert "chosen" not in rows[0] and rows[0]["conv_id"] == "c0"


def test_fit_to_length_truncates_context_from_the_left(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    row = make_pairs(1)[0]
    row["prompt"] = [
        row["prompt"][0],
        {"role": "user", "content": "i " * 40},
        {"role": "assistant", "content": "you " * 5},
        {"role": "user", "content": "we are sad"},
    ]
    row["chosen"] = [{"role": "assistant", "content": "so sad"}]
    rows, rep = fit_to_length([row], tok, ("chosen", "rejected"), max_length=40)
    assert rep.truncated_context == 1 and rep.rows_out == 1
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    assert rows[0]["prompt"][-1]["content"] == "we are sad" and rows[0]["length"] > 0
    long = {**row, "prompt": [row["prompt"][0], {"role": "user", "content": "i " * 60}]}
    rows, rep = fit_to_length([long], tok, ("chosen", "rejected"), max_length=40)
    assert rows == [] and rep.dropped == {"too_long": 1}


# ---------------------------------------------------------------------------------------------- training


def test_registry_has_the_five_algorithms():
    assert {"dpo", "ipo", "orpo", "kto", "simpo"} <= set(algorithm_names())
    assert get_algorithm("kto").data_format == "unpaired"
    with pytest.raises(EmpoError, match="unknown algorithm 'ppo'"):
        get_algorithm("ppo")


@pytest.mark.parametrize("algo", ["dpo", "ipo", "orpo", "kto", "simpo"])
def test_every_algorithm_trains(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path, algo: str):
    out = tmp_path / algo
    result = run_align(recipe_for(tiny_model_dir, prefs_dir, algo), out)
    assert_run_complete(out, algo)
    losses = step_losses(out)
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values())
    assert lora_b_norm(out) > 0  # LoRA B starts at zero: any change is training
    assert result.metrics["data"]["train"]["rows_out"] == (48 if algo == "kto" else 24)
    if algo in ("dpo", "ipo"):
        assert result.metrics["packed_pairs"] is True
        rows = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
        assert all("rewards/margins" in r and "learning_rate" in r for r in rows if "loss" in r)


def test_kto_reads_unpaired_files(tmp_path: Path, tiny_model_dir: Path):
    prefs = write_prefs(tmp_path / "kto", {"train": unpair(make_pairs(8)), "valid": unpair(make_pairs(2, 1))})
    out = tmp_path / "run"
    run_align(recipe_for(tiny_model_dir, prefs, "kto"), out)
    assert_run_complete(out, "kto")
    with pytest.raises(DataError, match="unpaired rows"):
        run_align(recipe_for(tiny_model_dir, prefs, "dpo"), tmp_path / "dpo")


def test_dpo_full_finetuning_and_unpacked_path(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    out = tmp_path / "full"
    recipe = recipe_for(
        tiny_model_dir,
        prefs_dir,
        "dpo",
        "peft.enabled=false",
        "train.prefix_sharing=false",
        "train.precompute_ref=false",
        "train.learning_rate=1e-3",
    )
    result = run_align(recipe, out)
    assert_run_complete(out, "dpo", peft=False)
    assert result.metrics["packed_pairs"] is False
    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(
        trained.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight
    )


def test_packed_path_trains_exactly_like_trl(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    # Reference log-probs inline in both (TRL's own precompute pass draws from the RNG and reorders the batches).
    extra = ("train.max_steps=2", "train.precompute_ref=false")
    packed = run_align(recipe_for(tiny_model_dir, prefs_dir, "dpo", *extra), tmp_path / "a")
    plain = run_align(
        recipe_for(tiny_model_dir, prefs_dir, "dpo", *extra, "train.prefix_sharing=false"), tmp_path / "b"
    )
    assert packed.metrics["packed_pairs"] and not plain.metrics["packed_pairs"]
    rows_a = [json.loads(line) for line in (tmp_path / "a" / "logs.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (tmp_path / "b" / "logs.jsonl").read_text().splitlines()]
    assert rows_a[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)  # LoRA starts as the identity
    for a, b in zip(rows_a, rows_b, strict=True):
        for key in (
            "loss",
            "grad_norm",
            "logps/chosen",
            "rewards/margins",
            "eval_loss",
            "eval_logps/rejected",
        ):
            if key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key


def test_seeded_dpo_matches_golden_losses(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    out = tmp_path / "golden"
    run_align(recipe_for(tiny_model_dir, prefs_dir, "dpo", "train.max_steps=5", "train.seed=7"), out)
    losses = {str(k): v for k, v in step_losses(out).items()}
    if os.environ.get("EMPO_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({"steps": losses}, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())["steps"]
    assert losses.keys() == golden.keys()
    for step, value in golden.items():
        assert losses[step] == pytest.approx(value, abs=1e-4), step


class Crash(Exception):
    pass


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    from transformers import TrainerCallback

    class CrashAfterCheckpoint(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise Crash

    recipe = recipe_for(tiny_model_dir, prefs_dir, "dpo", "train.max_steps=4")
    whole = tmp_path / "whole"
    run_align(recipe, whole)
    part = tmp_path / "part"
    with pytest.raises(Crash):
        run_align(recipe, part, callbacks=[CrashAfterCheckpoint()])
    assert json.loads((part / "empo_run.json").read_text())["status"] == "running"
    with pytest.raises(EmpoError, match="did not finish"):
        from empo.models.resolve import resolve_model

        resolve_model(part)
    with pytest.raises(EmpoError, match="already exists"):
        run_align(recipe, part)
    run_align(load_recipe(part / "recipe.yaml"), part, resume=True)
    assert step_losses(part) == pytest.approx(step_losses(whole), abs=1e-6)
    from safetensors.torch import load_file

    a, b = load_file(whole / "adapter_model.safetensors"), load_file(part / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    assert len(json.loads((part / "empo_run.json").read_text())["resumed"]) == 1


def test_export_merges_to_the_same_logits(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    from transformers import AutoModelForCausalLM

    from empo.export import export_run
    from empo.models.resolve import load_causal_lm

    run = tmp_path / "run"
    run_align(recipe_for(tiny_model_dir, prefs_dir, "dpo"), run)
    merged_dir = export_run(run, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with_adapter = load_causal_lm(run).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, with_adapter(ids).logits, atol=1e-5, rtol=1e-5)
    assert (merged_dir / "chat_template.jinja").is_file() and (merged_dir / "empo_export.json").is_file()
    adapter_only = export_run(run, tmp_path / "adapter", merge=False)
    cfg = json.loads((adapter_only / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir)


def test_sft_then_align_records_and_loads_the_chain(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    from empo.data.ed import SAMPLE_DIR
    from empo.models.resolve import load_causal_lm, resolve_model

    sft = tmp_path / "sft"
    recipe = load_recipe(
        None,
        [
            f"model.name_or_path={tiny_model_dir}",
            f"sft.data_dir={SAMPLE_DIR}",
            "sft.max_train_dialogues=16",
            "train.max_steps=2",
            "train.per_device_train_batch_size=4",
            "train.warmup_ratio=0",
            "train.learning_rate=1e-2",
            "train.max_length=96",
            "train.eval_max_samples=4",
        ],
    )
    result = run_sft(recipe, sft)
    assert result.metrics["data"]["train"]["listener_turns"] > 0
    assert json.loads((sft / "empo_run.json").read_text())["kind"] == "sft"
    dpo = tmp_path / "dpo"
    run_align(recipe_for(sft, prefs_dir, "dpo", "train.max_steps=1"), dpo)
    info = json.loads((dpo / "empo_run.json").read_text())
    assert info["base_model"] == str(sft.resolve()) and info["chain"][0]["run"] == str(sft.resolve())
    resolved = resolve_model(dpo)
    assert resolved.merged == (sft,) or [p.resolve() for p in resolved.merged] == [sft.resolve()]
    assert resolved.base == str(tiny_model_dir)
    load_causal_lm(dpo)  # base + merged SFT adapter + DPO adapter


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_align_and_its_errors(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    out = tmp_path / "cli"
    common = [
        "align", "--algo", "dpo", "--model", str(tiny_model_dir), "--max-steps", "1",
        "--set", "train.max_length=64", "--set", "train.per_device_train_batch_size=4", "--set", "train.do_eval=false",
    ]  # fmt: skip
    args = [*common, "--prefs", str(prefs_dir), "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "empo_run.json").read_text())["command"][0] == "empo"
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "already exists" in res.output and "--overwrite" in res.output
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["align", "--out", str(out), "--resume", "--set", "dpo.beta=1"])
    assert res.exit_code == 1 and "recorded recipe" in res.output
    bad = write_prefs(tmp_path / "bad", {"train": [{"text": "hello"}]})
    res = runner.invoke(app, [*common, "--prefs", str(bad), "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "missing columns" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app, ["align", "--algo", "ppo", "--prefs", str(prefs_dir), "--out", str(tmp_path / "y")]
    )
    assert res.exit_code == 1 and "unknown algorithm 'ppo'" in res.output
    res = runner.invoke(app, ["align", "--out", str(tmp_path / "z")])
    assert res.exit_code == 1 and "--prefs" in res.output


def test_kto_needs_a_batch_of_two(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    recipe = recipe_for(tiny_model_dir, prefs_dir, "kto", "train.per_device_train_batch_size=1")
    with pytest.raises(RecipeError, match="kto needs"):
        run_align(recipe, tmp_path / "k")
