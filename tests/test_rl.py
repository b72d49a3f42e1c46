"""GRPO / RLOO with empathy rewards on a tiny Llama, and PEER's structured reasoning mode (SFT rows, generation).

Rewards themselves are checked by hand in ``test_rewards.py``; here: a few on-policy steps change the parameters
with finite losses, the run folder is complete, the reference reaches the rewards, ``--reward`` parses, structured
generation keeps only the reply in ``response``, structured SFT rows train only the structured target.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from empo.align.data import to_prompt_only, unpair
from empo.align.train import run_align
from empo.cli import app
from empo.errors import RecipeError
from empo.reasoning import (
    FALLBACK_STRATEGY,
    STRATEGIES,
    STRUCTURED_INSTRUCTION,
    format_structured,
    parse_structured,
    strategy_for,
    structured_system_prompt,
    with_structured_instruction,
)
from empo.recipe import load_recipe
from test_align import assert_run_complete, lora_b_norm, make_pairs, step_losses, write_prefs
from test_rewards import FakeIdentifiers

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def fake_identifiers(monkeypatch):
    """empathy-match without trained identifiers: keyword-based level probabilities, and a record of the calls."""
    import empo.identifiers as ident_mod

    seen: dict[str, list] = {"responses": []}

    class Recording(FakeIdentifiers):
        def predict_proba(self, seekers, responses, batch_size=32):
            seen["responses"].extend(responses)
            return super().predict_proba(seekers, responses, batch_size)

    monkeypatch.setattr(ident_mod, "load_identifiers", lambda *a, **k: Recording())
    return seen


@pytest.fixture(scope="module")
def prefs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rl-prefs")
    return write_prefs(root, {"train": make_pairs(16), "valid": make_pairs(4, 1)})


def rl_recipe(model_dir: Path, prefs: Path, algo: str, *extra: str):
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
            f"{algo}.num_generations=2",
            f"{algo}.max_completion_length=8",
            f"{algo}.rewards=[empathy-match, length=0.5, structure=0.5]",
            *extra,
        ],
    )


def logged(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------------- data, checks


def test_prompt_rows_carry_the_reference_and_metadata():
    pairs = make_pairs(3)
    pairs.append({**pairs[0], "rejected": pairs[1]["rejected"], "pair": 1})  # the same prompt twice
    rows = to_prompt_only(pairs)
    assert len(rows) == 3
    assert rows[0]["reference"] == pairs[0]["chosen"][0]["content"]
    assert rows[0]["emotion"] == "sad" and rows[0]["conv_id"] == "c0"
    assert "chosen" not in rows[0] and "rejected" not in rows[0]
    # unpaired rows: the reference is the label=True completion, whatever the row order
    unpaired = unpair(make_pairs(2))
    rows = to_prompt_only([unpaired[1], unpaired[0], *unpaired[2:]])
    assert [r["reference"] for r in rows] == [p["chosen"][0]["content"] for p in make_pairs(2)]


def test_group_size_must_divide_the_batch(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    recipe = rl_recipe(tiny_model_dir, prefs_dir, "grpo", "grpo.num_generations=3")
    with pytest.raises(RecipeError, match=r"must be a multiple of grpo.num_generations = 3"):
        run_align(recipe, tmp_path / "g")
    # checked before the model loads or the run folder is made: a corrected re-run needs no --overwrite
    assert not (tmp_path / "g").exists()
    with pytest.raises(RecipeError, match=r"grpo.rewards: .*unknown reward 'empathy'"):
        rl_recipe(tiny_model_dir, prefs_dir, "grpo", "grpo.rewards=[empathy]")


# ---------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_online_algorithms_train_with_empathy_rewards(
    tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path, fake_identifiers, algo: str
):
    out = tmp_path / algo
    result = run_align(rl_recipe(tiny_model_dir, prefs_dir, algo), out)
    assert_run_complete(out, algo)
    losses = step_losses(out)
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values())
    assert lora_b_norm(out) > 0  # LoRA B starts at zero: any change is training
    rows = [r for r in logged(out) if "loss" in r]
    for name in ("empathy-match", "length", "structure"):
        assert all(math.isfinite(r[f"rewards/{name}/mean"]) for r in rows), name
    assert all(0.0 <= r["rewards/empathy-match/mean"] <= 1.0 for r in rows)
    # 3 steps x 4 completions (+ the final evaluation) went through the identifiers
    assert len(fake_identifiers["responses"]) >= 12
    hyper = result.metrics["hyperparameters"]
    assert (
        hyper["rewards"] == ["empathy-match", "length=0.5", "structure=0.5"] and hyper["num_generations"] == 2
    )
    assert result.metrics["data"]["trained_format"] == "prompt"
    assert result.metrics["data"]["train"]["rows_out"] == 16


def test_full_finetuning_structured_grpo(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    from safetensors.torch import load_file

    out = tmp_path / "full"
    recipe = rl_recipe(
        tiny_model_dir,
        prefs_dir,
        "grpo",
        "peft.enabled=false",
        "grpo.reasoning=structured",
        "grpo.rewards=[structure, redundancy=0.5, length]",
        "grpo.beta=0.1",
        "train.max_length=400",  # the structured instruction is long in the tiny tokenizer (one token per word)
    )
    run_align(recipe, out)
    assert_run_complete(out, "grpo", peft=False)
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = [r for r in logged(out) if "loss" in r]
    # beta > 0 with full fine-tuning: a frozen copy of the policy is the reference, the KL is logged and finite
    assert all(math.isfinite(r["kl"]) for r in rows) and rows[-1]["kl"] != 0.0
    assert load_recipe(out / "recipe.yaml").grpo.reasoning == "structured"


def test_structured_prompts_get_the_instruction(tiny_model_dir: Path, prefs_dir: Path):
    from datasets import Dataset

    from empo.align.algorithms import get_algorithm

    algo = get_algorithm("rloo")
    ds = Dataset.from_list([{"prompt": make_pairs(1)[0]["prompt"], "reference": "x"}])
    recipe = rl_recipe(tiny_model_dir, prefs_dir, "rloo", "rloo.reasoning=structured")

    class Ctx:
        pass

    ctx = Ctx()
    ctx.recipe = recipe
    prompt = algo.prepare(ctx, ds)[0]["prompt"]
    assert prompt[0]["role"] == "system" and prompt[0]["content"].endswith(STRUCTURED_INSTRUCTION)
    assert prompt[1:] == make_pairs(1)[0]["prompt"][1:]
    assert (
        with_structured_instruction([{"role": "user", "content": "hi"}])[0]["content"]
        == STRUCTURED_INSTRUCTION
    )
    assert (
        structured_system_prompt(structured_system_prompt("be kind")) == "be kind " + STRUCTURED_INSTRUCTION
    )


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_reward_flags(tmp_path: Path, tiny_model_dir: Path, prefs_dir: Path):
    common = [
        "align", "--model", str(tiny_model_dir), "--prefs", str(prefs_dir), "--max-steps", "1",
        "--set", "train.max_length=64", "--set", "train.per_device_train_batch_size=2",
        "--set", "train.do_eval=false", "--set", "grpo.num_generations=2", "--set", "grpo.max_completion_length=4",
    ]  # fmt: skip
    out = tmp_path / "cli"
    res = runner.invoke(
        app,
        [*common, "--algo", "grpo", "--reward", "length=0.5", "--reward", "redundancy", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    recipe = load_recipe(out / "recipe.yaml")
    assert recipe.grpo.rewards == ["length=0.5", "redundancy"] and recipe.grpo.reasoning == "plain"
    assert "rewards/length/mean" in logged(out)[0]
    res = runner.invoke(
        app, [*common, "--algo", "grpo", "--reward", "kindness", "--out", str(tmp_path / "a")]
    )
    assert res.exit_code == 1 and "unknown reward 'kindness'" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        app, [*common, "--algo", "grpo", "--reward", "length=x", "--out", str(tmp_path / "b")]
    )
    assert res.exit_code == 1 and "must be a number" in res.output
    res = runner.invoke(app, [*common, "--algo", "dpo", "--reward", "length", "--out", str(tmp_path / "c")])
    assert res.exit_code == 1 and "apply to --algo grpo or rloo" in res.output
    res = runner.invoke(
        app, [*common, "--algo", "rloo", "--reasoning", "fancy", "--out", str(tmp_path / "d")]
    )
    assert res.exit_code == 1 and "rloo.reasoning" in res.output
    res = runner.invoke(app, ["align", "--out", str(out), "--resume", "--reward", "length"])
    assert res.exit_code == 1 and "drop --reward" in res.output
    assert not any((tmp_path / n).exists() for n in "abcd")


# ---------------------------------------------------------------------------------------------- structured mode


def test_strategy_rule_on_hand_made_replies():
    assert strategy_for("Oh no, I'm so sorry to hear that.") == STRATEGIES["ER"]
    assert strategy_for("What happened then?") == STRATEGIES["EX"]
    assert strategy_for("I know how that feels, I had the same thing last year.") == STRATEGIES["IP"]
    assert strategy_for("That's awful. Did you call them?") == f"{STRATEGIES['ER']}; then {STRATEGIES['EX']}"
    assert strategy_for("Okay.") == FALLBACK_STRATEGY


def test_structured_sft_rows_train_only_the_structured_target(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    from empo.align.sft_data import IGNORE, sft_rows
    from empo.data.chat import listener_indices
    from empo.data.ed import SAMPLE_DIR, load_ed

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    dialogues = load_ed(SAMPLE_DIR, ["train"])["train"][:6]
    _, plain_rep = sft_rows(dialogues, tok, "be very good", 2048)
    rows, rep = sft_rows(dialogues, tok, "be very good", 2048, reasoning="structured")
    n_cuts = sum(len(listener_indices(d)) for d in dialogues)
    assert len(rows) == rep.examples == rep.listener_turns == n_cuts == plain_rep.listener_turns
    by_id = {d.conv_id: d for d in dialogues}
    for row in rows:
        d = by_id[row["conv_id"]]
        parsed = parse_structured(row["target"])
        assert parsed.order == ("analysis", "emotion", "strategy", "reply")
        assert parsed.reply == d.turns[row["cut"]].text.strip()
        assert d.emotion in parsed.sections["emotion"]
        assert parsed.sections["strategy"] == strategy_for(d.turns[row["cut"]].text)
        # only the final (structured) assistant turn is trained: one contiguous labelled span at the end
        labelled = [i for i, v in enumerate(row["labels"]) if v != IGNORE]
        assert labelled == list(range(labelled[0], len(row["input_ids"])))
        text = tok.decode([row["input_ids"][i] for i in labelled])
        assert "analysis" in text or "<unk>" in text  # the tiny vocabulary has no tag words
    first = rows[0]
    prompt_text = tok.decode(
        first["input_ids"][: next(i for i, v in enumerate(first["labels"]) if v != IGNORE)]
    )
    assert "be very good" in prompt_text


def test_structured_generation_keeps_only_the_reply(tmp_path: Path, tiny_model_dir: Path, monkeypatch):
    import empo.generate.core as core

    prompts_file = tmp_path / "prompts.jsonl"
    records = [
        {"conv_id": "a", "context": [{"role": "user", "content": "my dog died"}], "reference": "so sorry"},
        {
            "conv_id": "b",
            "context": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}],
        },
    ]
    prompts_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    outputs = [
        format_structured("Their dog died.", "sad", "comfort", "I'm so sorry."),
        "no tags at all",
    ]
    seen = {}

    def fake_generate(model, tok, conversations, **kwargs):
        seen["conversations"] = conversations
        return core.GenerationResult(texts=list(outputs), new_tokens=[5, 5], seconds=1.0)

    monkeypatch.setattr(core, "generate_texts", fake_generate)
    recipe = load_recipe(None, [f"model.name_or_path={tiny_model_dir}", "generate.reasoning=structured"])
    out = tmp_path / "gen.jsonl"
    core.run_generate(recipe, out, prompts_file=prompts_file)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["response"] == "I'm so sorry."
    assert (
        rows[0]["reasoning"].startswith("<analysis>Their dog died.</analysis>")
        and "<reply>" not in rows[0]["reasoning"]
    )
    assert rows[1]["response"] == "no tags at all" and rows[1]["reasoning"] is None
    assert [c[0]["content"] for c in seen["conversations"]] == [
        STRUCTURED_INSTRUCTION,
        "be kind " + STRUCTURED_INSTRUCTION,
    ]
    assert rows[1]["context"] == records[1]["context"] and rows[1]["prompt"] == seen["conversations"][1]
    # the CLI flag reaches the recipe
    res = runner.invoke(
        app,
        ["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts_file), "--reasoning", "bogus",
         "--out", str(tmp_path / "x.jsonl")],
    )  # fmt: skip
    assert res.exit_code == 1 and "generate.reasoning" in res.output


def test_structured_sft_flag_reaches_the_recipe(tmp_path: Path):
    res = runner.invoke(app, ["sft", "--out", str(tmp_path / "s"), "--reasoning", "bogus"])
    assert res.exit_code == 1 and "sft.reasoning" in res.output


def test_an_empty_reward_list_is_a_recipe_error():
    with pytest.raises(RecipeError, match="at least one --reward"):
        load_recipe(None, ["grpo.rewards=[]"])
