"""`empo eval --suite` / `--compare` through lm-eval: offline data, task counts, results, LoRA runs, comparison.

Everything runs offline on the tiny fixture model and a tiny MMLU-layout folder written here (a few seconds).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from empo.errors import DataError, EmpoError, RecipeError

SUBJECTS = ["abstract_algebra", "anatomy"]
WORDS = [
    *("i", "you", "feel", "so", "happy", "sad", "the", "dog", "cat"),
    *("job", "exam", "friend", "family", "home", "work", "day", "night"),
]


def _q(i: int, subject: str) -> dict:
    w = WORDS
    return {
        "question": f"{w[i % len(w)]} {w[(i + 3) % len(w)]} {w[(i + 5) % len(w)]} ?",
        "subject": subject,
        "choices": [w[(i + k) % len(w)] for k in range(4)],
        "answer": i % 4,
    }


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_mmlu(root: Path, subjects=SUBJECTS, n_test: int = 4) -> Path:
    """A folder in the shared layout: <root>/hf_format/<subject>/{dev,test}.jsonl (cais/mmlu schema)."""
    for s in subjects:
        _jsonl(root / "hf_format" / s / "dev.jsonl", [_q(100 + i, s) for i in range(5)])
        _jsonl(root / "hf_format" / s / "test.jsonl", [_q(i, s) for i in range(n_test)])
    return root


def _words(i: int, k: int) -> list[str]:
    return [WORDS[(i + j) % len(WORDS)] for j in range(k)]


def write_openllm_rest(root: Path, n: int = 30) -> None:
    """Tiny copies, in the hub schemas, of the Open LLM Leaderboard v1 data sets other than MMLU.

    ``n`` rows each: the few-shot samplers need more rows than shots (ARC takes 25).
    """
    arc = [
        {
            "id": f"a{i}",
            "question": f"what is {WORDS[i % len(WORDS)]} ?",
            "choices": {"text": _words(i, 4), "label": ["A", "B", "C", "D"]},
            "answerKey": "ABCD"[i % 4],
        }
        for i in range(n)
    ]
    _jsonl(root / "arc_challenge" / "train.jsonl", arc)
    _jsonl(root / "arc_challenge" / "test.jsonl", arc)
    hs = [
        {
            "ind": i,
            "activity_label": "work",
            "ctx_a": f"i feel {WORDS[i % len(WORDS)]}.",
            "ctx_b": "so",
            "ctx": "",
            "endings": _words(i, 4),
            "source_id": "x",
            "split": "val",
            "split_type": "indomain",
            "label": str(i % 4),
        }
        for i in range(n)
    ]
    _jsonl(root / "hellaswag" / "train.jsonl", hs)
    _jsonl(root / "hellaswag" / "validation.jsonl", hs)
    tqa = [
        {
            "question": f"why {WORDS[i % len(WORDS)]} ?",
            "mc1_targets": {"choices": _words(i, 3), "labels": [1, 0, 0]},
            "mc2_targets": {"choices": _words(i, 4), "labels": [1, 1, 0, 0]},
        }
        for i in range(n)
    ]
    _jsonl(root / "truthfulqa" / "validation.jsonl", tqa)
    wg = [
        {
            "sentence": f"the {WORDS[i % len(WORDS)]} _ is happy .",
            "option1": "dog",
            "option2": "cat",
            "answer": "12"[i % 2],
        }
        for i in range(n)
    ]
    _jsonl(root / "winogrande" / "train.jsonl", wg)
    _jsonl(root / "winogrande" / "validation.jsonl", wg)
    gsm = [
        {"question": f"how many {WORDS[i % len(WORDS)]} ?", "answer": f"so {i}\n#### {i}"} for i in range(n)
    ]
    _jsonl(root / "gsm8k" / "train.jsonl", gsm)
    _jsonl(root / "gsm8k" / "test.jsonl", gsm)


def write_metrics(folder: Path, tasks: dict[str, tuple[float, float, int]], overall=(0.5, 0.02, 200)) -> Path:
    """A hand-made suite result folder (only metrics.json)."""
    folder.mkdir(parents=True)
    doc = {
        "suite": "mmlu",
        "limit": None,
        "num_fewshot": None,
        "overall": {
            "name": "mmlu",
            "metric": "acc",
            "value": overall[0],
            "stderr": overall[1],
            "n": overall[2],
        },
        "groups": {"mmlu": {"metric": "acc", "value": overall[0], "stderr": overall[1], "n": overall[2]}},
        "categories": {},
        "tasks": {
            name: {"metric": "acc", "value": v, "stderr": se, "n": n} for name, (v, se, n) in tasks.items()
        },
    }
    (folder / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")
    return folder


@pytest.fixture()
def mmlu_dir(tmp_path: Path) -> Path:
    return write_mmlu(tmp_path / "mmlu")


@pytest.fixture()
def cache_env(monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


SUBSET = [f"suite.subjects=[{','.join(SUBJECTS)}]"]


# ------------------------------------------------------------------------------------------- the registry


def test_registry_suites_and_few_shot_counts():
    from empo.suites.data import mmlu_subjects
    from empo.suites.registry import SUITES

    assert set(SUITES.names()) == {"mmlu", "openllm", "leaderboard"}
    assert len(mmlu_subjects()) == 57
    assert [(t.name, t.num_fewshot) for t in SUITES.get("mmlu").tasks] == [("mmlu", 5)]
    shots = {t.name: t.num_fewshot for t in SUITES.get("openllm").tasks}
    assert shots == {
        "arc_challenge": 25,
        "hellaswag": 10,
        "truthfulqa_mc2": 0,
        "mmlu": 5,
        "winogrande": 5,
        "gsm8k": 5,
    }
    assert SUITES.get("leaderboard").builtin_group == "leaderboard"
    with pytest.raises(EmpoError, match="unknown suite 'mmlu-pro'"):
        SUITES.get("mmlu-pro")


def test_recipe_suite_section_is_strict():
    from empo.recipe import load_recipe

    r = load_recipe(None, ["suite.limit=3", "suite.subjects=[anatomy]"])
    assert r.suite.limit == 3 and r.suite.subjects == ["anatomy"]
    with pytest.raises(RecipeError, match=r"suite\.limt: unknown key"):
        load_recipe(None, ["suite.limt=3"])


def test_unknown_subject_is_named():
    from empo.suites.data import choose_subjects

    with pytest.raises(EmpoError, match="anatomyy"):
        choose_subjects(["anatomyy"])


# ------------------------------------------------------------------------------------------- a real run


def test_mmlu_offline_two_subjects(tiny_model_dir: Path, mmlu_dir: Path, tmp_path: Path, cache_env: Path):
    from empo.suites.cli import suite_main

    out = tmp_path / "res"
    m = suite_main(
        suite="mmlu",
        model=str(tiny_model_dir),
        out=out,
        limit=3,
        tasks_data=mmlu_dir,
        overrides=[*SUBSET, "suite.log_samples=true"],
    )
    assert m["requested_tasks"] == m["evaluated_tasks"] == 2
    assert set(m["tasks"]) == {"mmlu_abstract_algebra", "mmlu_anatomy"}
    for t in m["tasks"].values():
        assert t["n"] == 3 and t["n_total"] == 4 and t["num_fewshot"] == 5
        assert 0.0 <= t["value"] <= 1.0 and t["stderr"] is not None
    o = m["overall"]
    assert o["name"] == "mmlu" and o["n"] == 6
    mean = sum(t["value"] for t in m["tasks"].values()) / 2  # equal sizes: weighted = plain mean
    assert math.isclose(o["value"], mean)
    assert m["data"]["mode"] == "local" and m["data"]["sources"]["mmlu"] == str(
        (mmlu_dir / "hf_format").resolve()
    )
    assert m["model"]["model_args"].startswith(f"pretrained={tiny_model_dir}")
    assert "peft=" not in m["model"]["model_args"] and m["model"]["dtype"] == "float32"
    assert m["timing"]["questions"] == 6 and m["timing"]["seconds_per_question"] > 0
    assert m["timing"]["requests_computed"] == 6 * 4  # 4 answer choices per question

    # The files: lm-eval's full JSON, metrics.json, the generated task YAMLs, samples.
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["overall"] == o
    full = json.loads((out / "lm_eval_results.json").read_text())
    assert full["n-shot"]["mmlu_anatomy"] == 5 and "mmlu" in full["groups"]
    assert full["configs"]["mmlu_anatomy"]["dataset_path"] == "json"
    yaml_text = (out / "lm_eval_tasks" / "mmlu_anatomy.yaml").read_text()
    assert "include: " in yaml_text and "mmlu/default/mmlu_anatomy.yaml" in yaml_text

    # lm-eval's own prompt: its description, 5 dev examples ("first_n"), the question, "Answer:".
    sample = json.loads((out / "samples_mmlu_anatomy.jsonl").read_text().splitlines()[0])
    prompt = (
        sample["arguments"][0][0]
        if isinstance(sample["arguments"][0], list)
        else sample["arguments"]["gen_args_0"]["arg_0"]
    )
    assert prompt.startswith("The following are multiple choice questions (with answers) about anatomy.\n\n")
    assert prompt.count("Answer:") == 6 and prompt.endswith("Answer:")
    assert _q(100, "anatomy")["question"] in prompt

    # A second run answers from lm-eval's request cache and replaces the previous result folder.
    m2 = suite_main(
        suite="mmlu", model=str(tiny_model_dir), out=out, limit=3, tasks_data=mmlu_dir, overrides=SUBSET
    )
    assert m2["timing"]["requests_computed"] == 0
    assert m2["overall"]["value"] == o["value"]


def test_openllm_offline_with_every_data_set(tiny_model_dir: Path, tmp_path: Path, cache_env: Path):
    """The v1 group runs from local files when all six data sets are there (tiny copies in the hub schemas)."""
    from empo.suites.cli import suite_main

    root = tmp_path / "data"
    write_mmlu(root / "mmlu", ["anatomy"])
    write_openllm_rest(root)
    m = suite_main(
        suite="openllm",
        model=str(tiny_model_dir),
        out=tmp_path / "res",
        limit=1,
        tasks_data=root,
        overrides=["suite.subjects=[anatomy]", "suite.bootstrap_iters=0"],
    )
    assert m["requested_tasks"] == m["evaluated_tasks"] == 6
    shots = {k: v["num_fewshot"] for k, v in m["tasks"].items()}
    # HellaSwag's and ARC's few-shot pools hold only 3 rows here, so lm-eval takes what there is.
    assert shots["mmlu_anatomy"] == 5 and shots["truthfulqa_mc2"] == 0 and shots["gsm8k"] == 5
    assert shots["arc_challenge"] == 25 and shots["hellaswag"] == 10 and shots["winogrande"] == 5
    assert m["tasks"]["gsm8k"]["metric"] == "exact_match (strict-match)"
    assert m["tasks"]["arc_challenge"]["metric"] == "acc_norm"
    assert m["overall"]["name"] == "mean of members" and m["overall"]["tasks"] == 6


def test_task_count_check(tiny_model_dir: Path, mmlu_dir: Path, tmp_path: Path, cache_env: Path, monkeypatch):
    """If lm-eval builds fewer tasks than asked for (it can build none, silently), the run stops."""
    from empo.suites import runner
    from empo.suites.cli import suite_main

    real = runner._load_tasks

    def drop_one(tm, top, suite, mode):
        loaded = real(tm, top, suite, mode)
        loaded["tasks"].pop("mmlu_anatomy")
        return loaded

    monkeypatch.setattr(runner, "_load_tasks", drop_one)
    with pytest.raises(EmpoError, match=r"built 1 of the 2 tasks asked for \(missing: mmlu_anatomy\)"):
        suite_main(
            suite="mmlu",
            model=str(tiny_model_dir),
            out=tmp_path / "res",
            limit=1,
            tasks_data=mmlu_dir,
            overrides=SUBSET,
        )
    assert not (tmp_path / "res").exists()


# ------------------------------------------------------------------------------------------- missing data


def test_missing_subjects_fail_at_once_naming_the_data_set(mmlu_dir: Path, tmp_path: Path):
    from empo.suites.cli import suite_main

    # The model does not exist: the data check must fail first.
    with pytest.raises(DataError) as exc:
        suite_main(suite="mmlu", model="./no-such-model", out=tmp_path / "res", tasks_data=mmlu_dir)
    msg = str(exc.value)
    assert "MMLU" in msg and "cais/mmlu" in msg and "lacks 55 of the 57 subjects" in msg
    assert "suite.subjects" in msg and "astronomy" in msg

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"MMLU \[hub: cais/mmlu\].*no subject folders found"):
        suite_main(suite="mmlu", model="./no-such-model", out=tmp_path / "res", tasks_data=tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        suite_main(suite="mmlu", model="./no-such-model", out=tmp_path / "res", tasks_data=tmp_path / "nope")


def test_offline_default_folder_is_data_root_mmlu(data_dir_env: Path, tmp_path: Path):
    """With HF_HUB_OFFLINE=1 (set for all tests) and no --tasks-data, MMLU is read from $EMPO_DATA_DIR/mmlu."""
    from empo.suites.data import choose_subjects
    from empo.suites.registry import SUITES
    from empo.suites.runner import plan_data

    with pytest.raises(DataError, match=str(data_dir_env / "mmlu")):
        plan_data(SUITES.get("mmlu"), None, choose_subjects(None))
    write_mmlu(data_dir_env / "mmlu")
    plan = plan_data(SUITES.get("mmlu"), None, SUBJECTS)
    assert plan.mode == "local" and set(plan.local["mmlu"].files) == {f"mmlu_{s}" for s in SUBJECTS}


def test_openllm_offline_names_every_missing_data_set(tmp_path: Path):
    """The shared data's shape: MMLU, GSM8K test only, TruthfulQA in its generation CSV; no ARC/HellaSwag/Winogrande."""
    from empo.suites.registry import SUITES
    from empo.suites.runner import plan_data

    root = tmp_path / "data"
    write_mmlu(root / "mmlu")
    _jsonl(root / "benchmarks" / "gsm8k" / "test.jsonl", [{"question": "q", "answer": "a #### 1"}])
    (root / "benchmarks" / "truthfulqa").mkdir(parents=True)
    (root / "benchmarks" / "truthfulqa" / "TruthfulQA.csv").write_text("Type,Category,Question\n")
    with pytest.raises(DataError) as exc:
        plan_data(SUITES.get("openllm"), root, SUBJECTS)
    msg = str(exc.value)
    assert "5 data sets are not available" in msg
    for name in ("ARC-Challenge", "HellaSwag", "Winogrande", "allenai/ai2_arc", "Rowan/hellaswag"):
        assert name in msg
    assert "GSM8K" in msg and "lacks train.jsonl" in msg and "few-shot" in msg
    assert "TruthfulQA" in msg and "GENERATION format" in msg
    assert "MMLU [" not in msg  # MMLU itself is there


def test_wrong_schema_is_named(tmp_path: Path):
    from empo.suites.registry import SUITES
    from empo.suites.runner import plan_data

    root = write_mmlu(tmp_path / "mmlu")
    _jsonl(root / "hf_format" / "anatomy" / "test.jsonl", [{"question": "q", "options": ["a"], "label": 0}])
    with pytest.raises(DataError, match=r"anatomy/test\.jsonl:1 lacks the field\(s\) choices, answer"):
        plan_data(SUITES.get("mmlu"), root, ["anatomy"])


def test_leaderboard_offline_says_it_needs_the_hub(tmp_path: Path, tiny_model_dir: Path, cache_env: Path):
    from empo.suites.cli import suite_main

    with pytest.raises(DataError, match=r"no local-data layout.*TIGER-Lab/MMLU-Pro"):
        suite_main(suite="leaderboard", model=str(tiny_model_dir), out=tmp_path / "r", tasks_data=tmp_path)
    # HF_HUB_OFFLINE=1 and nothing in the HF datasets cache: lm-eval cannot build the tasks.
    with pytest.raises(EmpoError, match="leaderboard"):
        suite_main(suite="leaderboard", model=str(tiny_model_dir), out=tmp_path / "r")


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path, mmlu_dir: Path):
    from empo.suites.cli import suite_main

    out = tmp_path / "run"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")
    with pytest.raises(EmpoError, match="not an `empo eval --suite` result folder"):
        suite_main(suite="mmlu", model="./x", out=out, tasks_data=mmlu_dir, overrides=SUBSET)
    assert (out / "adapter_config.json").is_file()


# ------------------------------------------------------------------------------------------- LoRA runs


def _lora_run(tiny_model_dir: Path, run: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(run)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(run)
    (run / "empo_run.json").write_text(json.dumps({"base_model": str(tiny_model_dir)}))
    return run


def test_lora_run_folder_gives_peft_model_args(tiny_model_dir: Path, tmp_path: Path):
    from empo.models.resolve import resolve_model
    from empo.suites.runner import lm_eval_model_args, model_args_string

    run = _lora_run(tiny_model_dir, tmp_path / "run")
    args = lm_eval_model_args(resolve_model(str(run)), device="cpu", dtype="float32")
    assert args["pretrained"] == str(tiny_model_dir) and args["peft"] == str(run)
    assert args["tokenizer"] == str(run)
    assert model_args_string(args).startswith(f"pretrained={tiny_model_dir},peft={run},")


def test_lora_run_evaluates_through_lm_eval_peft(
    tiny_model_dir: Path, mmlu_dir: Path, tmp_path: Path, cache_env: Path
):
    from empo.suites.cli import suite_main

    run = _lora_run(tiny_model_dir, tmp_path / "run")
    m = suite_main(
        suite="mmlu",
        model=str(run),
        out=tmp_path / "res",
        limit=1,
        tasks_data=mmlu_dir,
        overrides=["suite.subjects=[anatomy]"],
    )
    assert m["model"]["adapter"] == str(run) and f"peft={run}" in m["model"]["model_args"]
    full = json.loads((tmp_path / "res" / "lm_eval_results.json").read_text())
    assert full["n-samples"]["mmlu_anatomy"]["effective"] == 1
    # A different model gets its own request cache file.
    assert "run-" in m["timing"]["request_cache"]


# ------------------------------------------------------------------------------------------- --compare


def test_compare_difference_uncertainty_and_flags(tmp_path: Path, capsys):
    from empo.suites.cli import compare_main
    from empo.suites.compare import compare_dirs

    base = write_metrics(tmp_path / "base", {"mmlu_a": (0.50, 0.03, 100), "mmlu_b": (0.40, 0.05, 80)})
    aligned = write_metrics(
        tmp_path / "aligned",
        {"mmlu_a": (0.35, 0.04, 100), "mmlu_b": (0.42, 0.05, 80)},
        overall=(0.48, 0.02, 200),
    )
    rows = {r.name: r for r in compare_dirs(base, aligned).rows}
    a = rows["mmlu_a"]
    assert math.isclose(a.diff, -0.15) and math.isclose(a.se, 0.05) and math.isclose(a.z, -3.0)
    assert a.flagged
    b = rows["mmlu_b"]
    assert math.isclose(b.diff, 0.02) and math.isclose(b.se, math.sqrt(2) * 0.05) and not b.flagged
    o = rows["overall (mmlu)"]
    assert math.isclose(o.diff, -0.02) and math.isclose(o.se, math.sqrt(0.0008)) and not o.flagged
    assert "mmlu" not in rows  # the overall group is not repeated

    text = compare_main([base, aligned])
    assert "mmlu_a" in text and "-15.0" in text and "*" in text
    assert "1 of 3 rows differ by more than 2 se" in text
    assert "mmlu_a" in capsys.readouterr().out
    assert "no paired test" in text  # no samples logged


def test_compare_is_paired_when_samples_were_logged(tmp_path: Path):
    import json as _json

    from empo.suites.compare import compare_dirs

    base = write_metrics(tmp_path / "base", {"mmlu_a": (0.50, 0.03, 4)})
    aligned = write_metrics(tmp_path / "aligned", {"mmlu_a": (0.75, 0.03, 4)})
    # per question (doc 0..3): base 1,0,1,0; aligned 1,1,1,0 -> differences 0,1,0,0: mean 0.25, sd 0.5, se 0.25
    for folder, accs in ((base, [1, 0, 1, 0]), (aligned, [1, 1, 1, 0])):
        (folder / "samples_mmlu_a.jsonl").write_text(
            "".join(_json.dumps({"doc_id": i, "acc": a}) + "\n" for i, a in enumerate(accs))
        )
    comp = compare_dirs(base, aligned)
    assert comp.paired == {"n": 4, "mean": 0.25, "se": pytest.approx(0.25), "changed": 1}
    assert "paired over the 4 questions both answered" in comp.text and "+25.0 ± 25.0" in comp.text


def test_compare_errors(tmp_path: Path):
    from empo.suites.cli import compare_main

    base = write_metrics(tmp_path / "base", {"mmlu_a": (0.5, 0.03, 100)})
    with pytest.raises(EmpoError, match="exactly two"):
        compare_main([base])
    with pytest.raises(EmpoError, match=r"holds no metrics\.json"):
        compare_main([base, tmp_path])
    other = write_metrics(tmp_path / "other", {"mmlu_z": (0.5, 0.03, 100)})
    text = compare_main([base, other])
    assert "tasks in one run only" in text


# ------------------------------------------------------------------------------------------- with the hub


def test_hub_mode_keeps_lm_eval_data_sources(tmp_path: Path, monkeypatch):
    """Without HF_HUB_OFFLINE and --tasks-data, the generated tasks keep lm-eval's hub data sets."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    from empo.suites.data import write_task_yamls
    from empo.suites.registry import SUITES
    from empo.suites.runner import plan_data

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    suite = SUITES.get("openllm")
    assert plan_data(suite, None, ["anatomy"]).mode == "hub"
    plan = write_task_yamls(suite, ["anatomy"], None, tmp_path / "tasks")
    assert plan.top == "openllm" and len(plan.leaves) == 6
    cfg = {t: load_yaml(tmp_path / "tasks" / f"{t}.yaml", resolve_func=False) for t in plan.leaves}
    assert cfg["mmlu_anatomy"]["dataset_path"] == "cais/mmlu" and cfg["mmlu_anatomy"]["num_fewshot"] == 5
    assert cfg["arc_challenge"]["dataset_path"] == "allenai/ai2_arc"
    assert cfg["arc_challenge"]["fewshot_split"] == "train" and cfg["arc_challenge"]["num_fewshot"] == 25
    assert cfg["truthfulqa_mc2"]["dataset_name"] == "multiple_choice"
    assert cfg["gsm8k"]["dataset_path"] == "openai/gsm8k" and cfg["gsm8k"]["fewshot_split"] == "train"
    tm = TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False)
    assert set(plan.leaves) <= set(tm.all_subtasks) and {"openllm", "mmlu"} <= set(tm.all_groups)


# ------------------------------------------------------------------------------------------- through `empo eval`


def test_cli_suite_and_compare(
    tiny_model_dir: Path, mmlu_dir: Path, tmp_path: Path, cache_env: Path, data_dir_env: Path
):
    from typer.testing import CliRunner

    from empo.cli import app

    runner = CliRunner()
    args = ["eval", "--suite", "mmlu", "--model", str(tiny_model_dir), "--limit", "2"]
    args += ["--tasks-data", str(mmlu_dir), "--set", "suite.subjects=[anatomy]"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["tasks"]["mmlu_anatomy"]["n"] == 2
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--num-fewshot", "0"])
    assert res.exit_code == 0, res.output
    assert (
        json.loads((tmp_path / "b" / "metrics.json").read_text())["tasks"]["mmlu_anatomy"]["num_fewshot"] == 0
    )

    res = runner.invoke(app, ["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "mmlu_anatomy" in res.output and "num_fewshot differs" in res.output

    # A user error is one red line and exit status 1.
    res = runner.invoke(app, ["eval", "--suite", "mmlu", "--model", "x", "--out", str(tmp_path / "c")])
    assert res.exit_code == 1
    assert "error:" in res.output and "MMLU" in res.output and str(data_dir_env / "mmlu") in res.output
    res = runner.invoke(app, [*args, "--model", "no-such/model", "--out", str(tmp_path / "c")])
    assert res.exit_code == 1
    assert "error: cannot load model 'pretrained=no-such/model" in res.output
    assert not (tmp_path / "c").exists()
