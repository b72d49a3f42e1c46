"""empo generate: batched generation with the tiny fixture model (left padding, order restored, CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from empo.cli import app
from empo.errors import DataError, EmpoError

runner = CliRunner()

CONVERSATIONS = [
    [{"role": "user", "content": "my dog died"}],
    [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "i felt so proud of my friend today when she did great on her exam"},
        {"role": "assistant", "content": "wow that is great"},
        {"role": "user", "content": "yes i am so happy for her"},
    ],
    [
        {"role": "user", "content": "i am nervous"},
        {"role": "assistant", "content": "why"},
        {"role": "user", "content": "exam"},
    ],
    [{"role": "user", "content": "i was angry at work this week and i did not know what to do"}],
    [{"role": "user", "content": "oh no"}],
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    from empo.models.resolve import load_causal_lm, load_tokenizer

    return load_causal_lm(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir), padding_side="left")


def test_batched_equals_one_at_a_time_and_keeps_order(tiny):
    from empo.generate.core import generate_texts

    model, tok = tiny
    one = generate_texts(model, tok, CONVERSATIONS, max_new_tokens=8, batch_size=1, sort_by_length=False)
    batched = generate_texts(model, tok, CONVERSATIONS, max_new_tokens=8, batch_size=3)
    # prompts of very different lengths share a left-padded batch, sorted by length; outputs come back in order
    assert batched.texts == one.texts
    assert batched.new_tokens == one.new_tokens
    assert all(0 < n <= 8 for n in batched.new_tokens)
    assert batched.prompt_tokens == one.prompt_tokens
    assert len(set(batched.prompt_tokens)) > 1
    assert batched.tokens_per_s > 0


def test_generation_config_gets_pad_and_eos(tiny):
    from empo.generate.core import make_generation_config

    model, tok = tiny
    model.generation_config.pad_token_id = None
    cfg = make_generation_config(model, tok, max_new_tokens=5)
    assert model.generation_config.pad_token_id == tok.pad_token_id
    assert cfg.pad_token_id == tok.pad_token_id and cfg.eos_token_id == tok.eos_token_id
    assert cfg.do_sample is False and cfg.max_new_tokens == 5


def test_sampling_is_seeded(tiny):
    from empo.generate.core import generate_texts

    model, tok = tiny
    kw = dict(max_new_tokens=6, batch_size=2, do_sample=True, temperature=1.5, top_p=0.95)
    a = generate_texts(model, tok, CONVERSATIONS, seed=1, **kw).texts
    b = generate_texts(model, tok, CONVERSATIONS, seed=1, **kw).texts
    assert a == b


def test_left_truncation_keeps_the_end(tiny):
    from empo.generate.core import render_prompts

    _, tok = tiny
    full = render_prompts(tok, CONVERSATIONS[1:2])[0]
    cut = render_prompts(tok, CONVERSATIONS[1:2], max_prompt_tokens=10)[0]
    assert cut == full[-10:]


def test_records_from_ed_cut_at_last_listener_turn():
    from empo.data.chat import DEFAULT_SYSTEM_PROMPT
    from empo.generate.core import records_from_ed

    recs = records_from_ed("sample", "test", limit=3)
    assert len(recs) == 3
    for r in recs:
        assert r["context"][0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
        assert r["context"][-1]["role"] == "user"
        assert r["reference"] and r["emotion"] and r["conv_id"]
    none = records_from_ed("sample", "test", limit=1, system_prompt="")
    assert none[0]["context"][0]["role"] == "user"


def test_records_from_jsonl_errors(tmp_path: Path):
    from empo.generate.core import records_from_jsonl

    p = tmp_path / "p.jsonl"
    p.write_text('{"context": [{"role": "user", "content": "hi"}]}\n{"context": "oops"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2"):
        records_from_jsonl(p)
    p.write_text("")
    with pytest.raises(DataError, match="empty"):
        records_from_jsonl(p)


def test_plugin_registry_and_example():
    from empo.generate.plugins import PLUGINS, get_plugin

    assert "oracle-emotion" in PLUGINS
    plugin = get_plugin("oracle-emotion")
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]
    plugin.setup([{"emotion": "sad"}])
    new, meta = plugin.apply(msgs, {"emotion": "sad"})
    assert meta == {"emotion": "sad"} and "sad" in new[0]["content"] and msgs[0]["content"] == "S"
    with pytest.raises(EmpoError, match="unknown prompt plug-in"):
        get_plugin("nope")


def test_cli_generate_ed_sample(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "gen" / "g.jsonl"
    args = [
        "generate",
        "--model",
        str(tiny_model_dir),
        "--data-dir",
        "sample",
        "--split",
        "test",
        "--limit",
        "4",
        "--max-new-tokens",
        "5",
        "--batch-size",
        "3",
        "--plugin",
        "oracle-emotion",
        "--out",
        str(out),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 4
    for row in lines:
        assert {"conv_id", "emotion", "context", "reference", "response", "model", "plugin", "prompt"} <= set(
            row
        )
        assert isinstance(row["response"], str)
        assert row["plugin"]["emotion"] == row["emotion"]
        assert row["prompt"] != row["context"]  # context keeps the real dialogue
    meta = json.loads((tmp_path / "gen" / "g.meta.json").read_text())
    assert meta["n"] == 4 and meta["generate"]["max_new_tokens"] == 5 and meta["tokens_per_s"] > 0
    # refuses to overwrite unless asked; a bad flag value is one line
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "--overwrite" in res.output
    assert not list(out.parent.glob(".g.jsonl.tmp*"))


def test_cli_generate_prompts_file(tiny_model_dir: Path, tmp_path: Path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(json.dumps({"context": c, "tag": i}) for i, c in enumerate(CONVERSATIONS)) + "\n"
    )
    out = tmp_path / "g.jsonl"
    res = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--prompts",
            str(prompts),
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["tag"] for r in rows] == list(range(len(CONVERSATIONS)))
