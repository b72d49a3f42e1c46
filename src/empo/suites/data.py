"""Where a suite's data comes from, and the task YAMLs that point lm-eval at it.

lm-eval's built-in tasks download their data from the hub. To run them without the hub we keep each built-in task
definition (prompt, few-shot split and sampler, metrics) and replace ONLY where the data comes from: for every task
we write a small YAML that ``include:``s lm-eval's own task file and sets ``dataset_path: json`` with the local
files as ``data_files``. With the hub, the same YAMLs are written without the data override (the include keeps the
hub data set), so both paths run the same generated tasks and the same group.

The YAMLs go to a folder that is given to ``TaskManager(include_path=..., include_defaults=False)``: lm-eval then
indexes only these files (not its 10 s index of every built-in task).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from empo.errors import DataError, EmpoError
from empo.suites.registry import DATASETS, MMLU, LocalDataset, Suite, TaskSpec

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
SPLIT_KEYS = {"train": "training_split", "validation": "validation_split", "test": "test_split"}


def hub_offline() -> bool:
    """True when the environment forbids the hub (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` set to 1)."""
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"} for v in OFFLINE_VARS)


def lm_eval_tasks_dir() -> Path:
    """The folder of lm-eval's built-in task YAMLs, found without importing lm_eval (its import is slow)."""
    import importlib.util

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise EmpoError("lm-eval is not installed; run `make install` (it pins lm-eval==0.4.13)")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


@cache
def mmlu_subjects() -> tuple[str, ...]:
    """The 57 MMLU subjects, as lm-eval's built-in ``mmlu/default`` folder defines them."""
    folder = lm_eval_tasks_dir() / "mmlu" / "default"
    return tuple(sorted(p.stem.removeprefix("mmlu_") for p in folder.glob("mmlu_*.yaml")))


@cache
def mmlu_category(subject: str) -> str:
    """stem / humanities / social_sciences / other, from the built-in subject YAML's tag."""
    import yaml

    text = (lm_eval_tasks_dir() / "mmlu" / "default" / f"mmlu_{subject}.yaml").read_text(encoding="utf-8")
    tag = str(yaml.safe_load(text).get("tag", ""))
    return tag.removeprefix("mmlu_").removesuffix("_tasks") or "other"


def choose_subjects(subjects: list[str] | None) -> list[str]:
    """Validate a subject list (``None``: all 57)."""
    known = mmlu_subjects()
    if not subjects:
        return list(known)
    unknown = [s for s in subjects if s not in known]
    if unknown:
        raise EmpoError(
            f"unknown MMLU subject(s) {', '.join(unknown)} in suite.subjects; known: {', '.join(known)}"
        )
    return list(dict.fromkeys(subjects))


# ----------------------------------------------------------------------------------------------- local data


@dataclass
class Located:
    """A local data set found on disk: for each task name, its split -> file mapping."""

    dataset: LocalDataset
    root: Path
    files: dict[str, dict[str, Path]] = field(default_factory=dict)


def _first_row_problem(path: Path, fields: tuple[str, ...]) -> str | None:
    try:
        with path.open(encoding="utf-8") as f:
            line = f.readline()
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror})"
    if not line.strip():
        return f"{path} is empty"
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return f"{path}:1 is not JSON (expected JSON lines in the hub schema)"
    missing = [k for k in fields if k not in row]
    if missing:
        return f"{path}:1 lacks the field(s) {', '.join(missing)} (expected {', '.join(fields)})"
    return None


def _locate_simple(ds: LocalDataset, base: Path, task: str) -> tuple[Located | None, str]:
    """Find a non-subject data set under ``base``; return (found, why-not)."""
    for place in ds.places:
        folder = (base / place).resolve()
        if not folder.is_dir():
            continue
        paths = {split: folder / name for split, name in ds.files.items()}
        missing = [p.name for p in paths.values() if not p.is_file()]
        if missing:
            seen = [name for name in ds.other_formats if (folder / name).is_file()]
            if seen:
                return None, f"{ds.other_formats[seen[0]]} (in {folder})"
            have = sorted(p.name for p in folder.iterdir() if p.is_file())
            return None, (
                f"{folder} lacks {', '.join(missing)}"
                + (f" (it has {', '.join(have)})" if have else "")
                + (f"; {ds.note}" if ds.note else "")
            )
        for p in paths.values():
            problem = _first_row_problem(p, ds.fields)
            if problem:
                return None, problem
        return Located(ds, folder, {task: paths}), ""
    places = ", ".join(f"{base / p}" for p in ds.places)
    return None, f"not found (looked in {places})"


def _locate_mmlu(ds: LocalDataset, base: Path, subjects: list[str]) -> tuple[Located | None, str]:
    """Find the MMLU subject folders under ``base``: the first place holding any subject folder wins."""
    for place in ds.places:
        folder = (base / place).resolve()
        if not folder.is_dir() or not any((folder / s).is_dir() for s in mmlu_subjects()):
            continue
        files: dict[str, dict[str, Path]] = {}
        missing: list[str] = []
        for s in subjects:
            paths = {split: folder / s / name for split, name in ds.files.items()}
            if all(p.is_file() for p in paths.values()):
                files[f"mmlu_{s}"] = paths
            else:
                missing.append(s)
        if missing:
            shown = ", ".join(missing[:8]) + (f", ... ({len(missing)} in all)" if len(missing) > 8 else "")
            hint = (
                "; to run a subset, pass --set suite.subjects=[subject,...]"
                if len(missing) < len(subjects)
                else ""
            )
            return None, (
                f"{folder} lacks {len(missing)} of the {len(subjects)} subjects asked for ({shown}): each needs "
                f"<subject>/test.jsonl and <subject>/dev.jsonl{hint}"
            )
        first = next(iter(files.values()))
        for p in first.values():
            problem = _first_row_problem(p, ds.fields)
            if problem:
                return None, problem
        return Located(ds, folder, files), ""
    places = ", ".join(f"{base / p}" for p in ds.places)
    return None, f"no subject folders found (looked in {places}); {ds.note}"


def locate_local(suite: Suite, base: Path, subjects: list[str]) -> dict[str, Located]:
    """Find every data set ``suite`` needs under ``base``; raise ONE error naming all that are missing."""
    base = Path(base).expanduser()
    if not base.is_dir():
        raise DataError(
            f"task data folder {base} does not exist; pass --tasks-data DIR (for MMLU: a folder with one "
            f"<subject>/{{test,dev}}.jsonl folder per subject, e.g. $EMPO_DATA_DIR/mmlu) or run with the hub"
        )
    found: dict[str, Located] = {}
    problems: list[str] = []
    for spec in suite.tasks:
        ds = DATASETS[spec.dataset or ""]
        if spec.name == MMLU:
            loc, why = _locate_mmlu(ds, base, subjects)
        else:
            loc, why = _locate_simple(ds, base, spec.name)
        if loc is None:
            problems.append(f"{ds.title} [hub: {ds.hub}] for {spec.name}: {why}")
        else:
            found[spec.name] = loc
    if problems:
        what = "data set is" if len(problems) == 1 else f"{len(problems)} data sets are"
        raise DataError(
            f"suite {suite.name!r} cannot run offline: its {what} not available under {base}: "
            + " | ".join(problems)
            + ". Supply each as JSON lines in the hub schema under --tasks-data DIR (one folder per data set, "
            "<split>.jsonl per split; MMLU: <subject>/{test,dev}.jsonl), or run with the hub (unset HF_HUB_OFFLINE)"
        )
    return found


# --------------------------------------------------------------------------------------------- task YAMLs


@dataclass
class TaskPlan:
    """The generated lm-eval tasks of one run: leaf task names, the top group, and their YAML folder."""

    top: str
    leaves: list[str]
    include_dir: Path
    metric: dict[str, str]  # leaf task -> headline metric key
    group_of: dict[str, str]  # leaf task -> its member name in the suite (mmlu subjects -> "mmlu")
    data: dict[str, str]  # leaf task -> where its data comes from (hub name or local folder)


@cache
def _builtin_index(folder: str) -> dict[str, Path]:
    """task name -> YAML path, for the built-in tasks in ``lm_eval/tasks/<folder>`` (a fast, local index)."""
    from lm_eval.tasks._index import TaskIndex

    index = TaskIndex.build([lm_eval_tasks_dir() / folder])
    return {
        name: e.yaml_path for name, e in index.items() if e.yaml_path is not None and "task" in (e.cfg or {})
    }


def builtin_yaml(spec_dir: str, task: str) -> Path:
    try:
        return _builtin_index(spec_dir)[task]
    except KeyError:
        raise EmpoError(
            f"lm-eval has no built-in task {task!r} in lm_eval/tasks/{spec_dir}; is lm-eval 0.4.13 installed?"
        ) from None


def _dump(path: Path, obj: dict[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _task_yaml(
    spec: TaskSpec, task: str, files: dict[str, Path] | None, extra: dict[str, Any]
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "include": str(builtin_yaml(spec.builtin_dir, task)),
        "task": task,
        "num_fewshot": spec.num_fewshot,
        **spec.overrides,
        **extra,
    }
    if files is not None:
        # Only the data source changes: lm-eval reads these files with the `json` builder of `datasets`.
        cfg["dataset_path"] = "json"
        cfg["dataset_name"] = None
        cfg["dataset_kwargs"] = {"data_files": {split: str(p) for split, p in files.items()}}
        # A split the built-in task declares but does not read (e.g. ARC's validation when scoring test with
        # few-shot from train) is not required offline; unset it so `datasets` is not asked for it.
        for split, key in SPLIT_KEYS.items():
            if split not in files:
                cfg[key] = None
    return cfg


def write_task_yamls(
    suite: Suite, subjects: list[str], local: dict[str, Located] | None, out_dir: Path
) -> TaskPlan:
    """Write the suite's task and group YAMLs into ``out_dir``; ``local`` is None for hub data."""
    out_dir.mkdir(parents=True, exist_ok=True)
    leaves: list[str] = []
    metric: dict[str, str] = {}
    group_of: dict[str, str] = {}
    data: dict[str, str] = {}
    members: list[str] = []
    for spec in suite.tasks:
        loc = local.get(spec.name) if local is not None else None
        ds = DATASETS.get(spec.dataset or "")
        names = [f"mmlu_{s}" for s in subjects] if spec.name == MMLU else [spec.name]
        for task in names:
            files = loc.files[task] if loc is not None else None
            _dump(out_dir / f"{task}.yaml", _task_yaml(spec, task, files, {}))
            leaves.append(task)
            metric[task] = spec.metric
            group_of[task] = spec.name
            data[task] = str(loc.root) if loc is not None else (ds.hub if ds else "hub")
        if spec.name == MMLU:
            # The MMLU group: accuracy over all questions (weighted by subject size), as lm-eval's own
            # `mmlu` group reports it.
            _dump(
                out_dir / "_mmlu_group.yaml",
                {
                    "group": MMLU,
                    "task": names,
                    "aggregate_metric_list": [{"metric": "acc", "weight_by_size": True}],
                    "metadata": {"version": 2},
                },
            )
        members.append(spec.name)
    top = MMLU
    if members != [MMLU]:
        top = suite.name
        _dump(out_dir / f"_{suite.name}_group.yaml", {"group": suite.name, "task": members})
    return TaskPlan(top=top, leaves=leaves, include_dir=out_dir, metric=metric, group_of=group_of, data=data)
