"""`empo reproduce` end to end on the embedded ED sample with the tiny fixture model: 2 DPO steps, 4 test
dialogues, fake identifiers and BERTScore, a tiny MMLU written here; then reuse, partial re-runs and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from empo.cli import app
from empo.errors import EmpoError, RecipeError
from empo.recipe import load_recipe

runner = CliRunner()


class FakeIdentifiers:
    """Deterministic levels from the text (enough to exercise diff-Epitome end to end)."""

    path = "fake-identifiers"

    def predict(self, seekers, responses, batch_size=32):
        n = np.array([len(t.split()) for t in responses])
        return {"ER": n % 3, "IP": (n // 2) % 3, "EX": np.array([2 if "?" in t else 0 for t in responses])}


class FakeBertScore:
    """Word-overlap precision/recall/F1 in place of a BERT model."""

    def score(self, cands, refs):
        p, r, f = [], [], []
        for c, g in zip(cands, refs, strict=True):
            a, b = set(c.lower().split()), set(g.lower().split())
            inter = len(a & b)
            pp, rr = inter / max(len(a), 1), inter / max(len(b), 1)
            p.append(pp)
            r.append(rr)
            f.append(2 * pp * rr / (pp + rr) if pp + rr else 0.0)
        return np.array(p), np.array(r), np.array(f)

    def describe(self):
        return {"model": "fake-overlap"}


def write_mmlu(root: Path, subject: str = "anatomy", n: int = 3) -> Path:
    words = ["dog", "cat", "job", "exam", "friend", "home", "work", "day"]
    folder = root / "hf_format" / subject
    folder.mkdir(parents=True, exist_ok=True)

    def q(i: int) -> dict:
        return {
            "question": f"what {words[i % 8]} {words[(i + 3) % 8]} ?",
            "subject": subject,
            "choices": [words[(i + k) % 8] for k in range(4)],
            "answer": i % 4,
        }

    (folder / "dev.jsonl").write_text("".join(json.dumps(q(100 + i)) + "\n" for i in range(5)))
    (folder / "test.jsonl").write_text("".join(json.dumps(q(i)) + "\n" for i in range(n)))
    return root


def tiny_recipe(path: Path, model: Path, **extra) -> Path:
    data = {
        "model": {"name_or_path": str(model)},
        "peft": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"},
        "prefs": {"pairs_per_dialogue": 1, "max_context_turns": 3},
        "train": {
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "per_device_eval_batch_size": 4,
            "learning_rate": 1e-3,
            "max_length": 96,
            "eval_max_samples": 4,
            "max_train_samples": 8,
            "save_steps": 100,
        },
        "generate": {"limit": 4, "max_new_tokens": 4, "batch_size": 4, "max_context_turns": 3},
        "eval": {"bertscore_model": "minilm"},
        "suite": {"subjects": ["anatomy"], "limit": 2, "log_samples": True, "batch_size": 4},
        "reproduce": {"data_dir": "sample", "examples": 2},
    }
    for dotted, value in extra.items():
        sec, key = dotted.split("__")
        data.setdefault(sec, {})[key] = value  # e.g. sft__max_steps=1
    path.write_text(yaml.safe_dump(data))
    return path


def test_end_to_end_then_reuse(tiny_model_dir: Path, data_dir_env: Path, tmp_path: Path):
    from empo.reproduce.pipeline import run_reproduce

    write_mmlu(data_dir_env / "mmlu")
    rfile = tiny_recipe(tmp_path / "r.yaml", tiny_model_dir)
    out = tmp_path / "run"
    fakes = {"identifiers": FakeIdentifiers(), "bertscorer": FakeBertScore()}
    res = run_reproduce(load_recipe(rfile), out, **fakes)

    units = res.state["units"]
    for name in ("prefs", "align", "generate:base", "generate:aligned", "eval", "mmlu:base", "mmlu:aligned"):
        assert units[name]["status"] == "done" and units[name]["seconds"] > 0, name
    assert "sft" not in units  # reproduce.sft is off
    assert units["align"]["details"]["final_step"] == 2

    md = (out / "report.md").read_text()
    for section in (
        "## Result",
        "## Targets",
        "## Training",
        "## Examples",
        "## Stages and timing",
        "## Data",
    ):
        assert section in md, section
    assert "embedded ED sample" in md and "diff-Epitome mean" in md and "MMLU accuracy" in md
    for png in ("metrics.png", "training.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The report's numbers are the stages' own outputs.
    s = json.loads((out / "report.json").read_text())
    ev = json.loads((out / "eval" / "aligned" / "metrics.json").read_text())
    row = next(r for r in s["rows"] if r["metric"] == "diff-mean")
    assert row["aligned"] == ev["metrics"]["diff-mean"]
    mm = json.loads((out / "mmlu" / "base" / "metrics.json").read_text())
    assert s["mmlu"]["base"]["accuracy"] == mm["overall"]["value"] and s["mmlu"]["base"]["n"] == 2
    assert s["mmlu"]["paired"]["n"] == 2
    assert s["target_empathy"]["met"] == (row["aligned"] < row["base"])
    assert len(s["curve"]["step"]) >= 2 and len(s["examples"]) == 2
    gen = [json.loads(x) for x in (out / "generate" / "aligned.jsonl").read_text().splitlines()]
    assert len(gen) == 4 and gen[0]["model"] == str(out / "align")
    assert res.summary["rows"]

    # Same recipe again: every unit is reused; the identifiers are not even needed.
    res2 = run_reproduce(load_recipe(rfile), out, **fakes)
    u2 = res2.state["units"]
    assert all(u2[n].get("reused") for n in ("prefs", "align", "generate:base", "eval", "mmlu:aligned"))
    assert u2["identifiers"]["status"] == "not needed"
    assert u2["align"]["finished"] == units["align"]["finished"]

    # A generation setting changed: generation and eval run again, training and MMLU are reused.
    res3 = run_reproduce(load_recipe(rfile, ["generate.max_new_tokens=3"]), out, **fakes)
    u3 = res3.state["units"]
    assert not u3["generate:aligned"].get("reused") and not u3["eval"].get("reused")
    assert u3["align"].get("reused") and u3["mmlu:base"].get("reused")


def test_cli_sft_then_dpo(tiny_model_dir: Path, data_dir_env: Path, tmp_path: Path):
    """SFT first: DPO starts from the SFT run, and MMLU evaluates the chain merged into one folder."""
    write_mmlu(data_dir_env / "mmlu")
    rfile = tiny_recipe(
        tmp_path / "r.yaml", tiny_model_dir, sft__max_steps=1, reproduce__sft_train={"max_length": 128}
    )
    out = tmp_path / "run"
    args = [
        "reproduce",
        "--recipe",
        str(rfile),
        "--out",
        str(out),
        "--sft",
        "--stages",
        "prefs,sft,align,mmlu,report",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith(str(out / "report.md"))
    state = json.loads((out / "reproduce.json").read_text())
    assert state["units"]["sft"]["status"] == "done" and state["units"]["sft"]["details"]["final_step"] == 1
    info = json.loads((out / "align" / "empo_run.json").read_text())
    assert info["base_model"] == str(out / "sft")
    mm = json.loads((out / "mmlu" / "aligned" / "metrics.json").read_text())
    assert mm["model"]["base"] == str(out / "aligned-merged") and mm["model"]["adapter"] is None
    md = (out / "report.md").read_text()
    assert "+ SFT aligned with DPO" in md and "eval: no metrics (the eval stage has not run)" in md


def test_mmlu_absent_is_skipped(tiny_model_dir: Path, data_dir_env: Path, tmp_path: Path):
    from empo.reproduce.pipeline import run_reproduce

    rfile = tiny_recipe(tmp_path / "r.yaml", tiny_model_dir)
    res = run_reproduce(load_recipe(rfile), tmp_path / "run", stages=["prefs", "mmlu", "report"])
    md = res.report.read_text()
    assert "MMLU: **not run**: MMLU data not found at" in md
    assert res.state["units"]["mmlu:base"]["status"] == "skipped"
    assert "align" not in res.state["units"]  # not selected, never run


def test_errors(tiny_model_dir: Path, data_dir_env: Path, tmp_path: Path):
    from empo.reproduce.pipeline import run_reproduce

    rfile = tiny_recipe(tmp_path / "r.yaml", tiny_model_dir)
    res = runner.invoke(
        app, ["reproduce", "--recipe", str(rfile), "--out", str(tmp_path / "a"), "--stages", "dpo"]
    )
    assert res.exit_code == 1 and "unknown stage(s) dpo" in res.output
    with pytest.raises(EmpoError, match=r"stage generate needs the output of align .* add align to --stages"):
        run_reproduce(load_recipe(rfile), tmp_path / "b", stages=["generate"])
    other = tmp_path / "c"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    with pytest.raises(EmpoError, match="is not an `empo reproduce` folder"):
        run_reproduce(load_recipe(rfile), other)
    with pytest.raises(RecipeError, match=r"reproduce\.sft_train: max_lenght: unknown key"):
        run_reproduce(
            load_recipe(rfile, ["reproduce.sft=true", "reproduce.sft_train={max_lenght: 5}"]), tmp_path / "d"
        )
