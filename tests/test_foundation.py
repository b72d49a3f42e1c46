"""The foundation: CLI start-up, recipes, overrides, atomic output, model specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from empo.cli import app
from empo.config import apply_overrides, parse_override
from empo.errors import EmpoError, RecipeError
from empo.io import atomic_dir
from empo.recipe import load_recipe

runner = CliRunner()


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    assert "empathetic" in res.output


def test_help_does_not_import_torch():
    code = "import sys; from empo.cli import app; assert 'torch' not in sys.modules, 'torch imported at start-up'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_command_help_is_instant_and_explains():
    from empo.cli import COMMANDS

    for name, _, _ in COMMANDS:
        res = runner.invoke(app, [name, "--help"])
        assert res.exit_code == 0, (name, res.output)
        assert len(res.output) > 200, name


def test_parse_override_types():
    assert parse_override("dpo.beta=0.05") == (["dpo", "beta"], 0.05)
    assert parse_override("peft.target_modules=[q_proj, v_proj]") == (
        ["peft", "target_modules"],
        ["q_proj", "v_proj"],
    )
    with pytest.raises(RecipeError):
        parse_override("nokey")


def test_overrides_nest_and_copy():
    base = {"model": {"name_or_path": "a"}}
    out = apply_overrides(base, ["model.name_or_path=b", "peft.r=8"])
    assert out == {"model": {"name_or_path": "b"}, "peft": {"r": 8}}
    assert base == {"model": {"name_or_path": "a"}}


def test_recipe_precedence_and_typos(tmp_path: Path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  name_or_path: from-recipe\npeft:\n  r: 4\n")
    r = load_recipe(path, ["peft.r=8"], {"model.name_or_path": "from-flag", "peft.lora_alpha": None})
    assert r.model.name_or_path == "from-flag"
    assert r.peft.r == 8
    assert r.peft.lora_alpha == 32
    path.write_text("peft:\n  rr: 4\n")
    with pytest.raises(RecipeError, match=r"peft\.rr: unknown key"):
        load_recipe(path)


def test_recipe_bad_yaml_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  name: [unclosed\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml:\d+"):
        load_recipe(path)


def test_atomic_dir_leaves_nothing_on_error(tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "done.txt").write_text("x")
    assert (out / "done.txt").is_file()
    with pytest.raises(EmpoError), atomic_dir(out, overwrite=False):
        pass


def test_resolve_model_specs(tiny_model_dir: Path, tmp_path: Path):
    from empo.models.resolve import resolve_model

    assert resolve_model(tiny_model_dir).base == str(tiny_model_dir)
    assert resolve_model("org/some-hub-name").base == "org/some-hub-name"
    with pytest.raises(EmpoError, match="does not exist"):
        resolve_model("./no/such/dir")
    with pytest.raises(EmpoError, match="holds no model"):
        resolve_model(tmp_path)


def test_load_tiny_model_and_tokenizer(tiny_model_dir: Path):
    from empo.models.resolve import load_causal_lm, load_tokenizer

    tok = load_tokenizer(tiny_model_dir, padding_side="left")
    model = load_causal_lm(tiny_model_dir)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "i feel sad"}], add_generation_prompt=True, return_dict=True
    )
    assert len(ids["input_ids"]) > 3
    assert model.config.vocab_size == len(tok)
