"""Run a suite through lm-eval and write its results folder.

Order of work, so that a run that cannot succeed fails at once: suite and subjects, the output folder, the data
(local files checked, or lm-eval's tasks built, which loads their data), the task count; only then the model.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from empo.errors import DataError, EmpoError
from empo.io import atomic_dir, git_sha, versions, write_json
from empo.log import get_logger
from empo.paths import cache_dir
from empo.suites.data import (
    Located,
    choose_subjects,
    hub_offline,
    lm_eval_tasks_dir,
    locate_local,
    write_task_yamls,
)
from empo.suites.registry import SUITES, Suite
from empo.suites.summary import summarise

if TYPE_CHECKING:
    from empo.models.config import ModelConfig
    from empo.models.resolve import ResolvedModel
    from empo.suites.config import SuiteConfig

log = get_logger(__name__)

RESULTS_FILE = "lm_eval_results.json"
METRICS_FILE = "metrics.json"
TASKS_DIR = "lm_eval_tasks"
LEADERBOARD_EXTRAS = "pip install 'lm-eval[ifeval,math]==0.4.13'"


# ------------------------------------------------------------------------------------------------ the model


def lm_eval_model_args(
    resolved: ResolvedModel, *, device: str, dtype: str, trust_remote_code: bool = False
) -> dict[str, Any]:
    """lm-eval ``hf`` model arguments: ``pretrained=<base>`` plus ``peft=<adapter>`` for a LoRA run folder."""
    args: dict[str, Any] = {"pretrained": str(resolved.base)}
    if resolved.adapter is not None:
        args["peft"] = str(resolved.adapter)
        # The trainer saves the tokenizer with the adapter; empo's own loaders prefer it too.
        if (Path(resolved.adapter) / "tokenizer_config.json").is_file():
            args["tokenizer"] = str(resolved.adapter)
    args["device"] = device
    args["dtype"] = dtype
    if trust_remote_code:
        args["trust_remote_code"] = True
    return args


def model_args_string(args: dict[str, Any]) -> str:
    """The ``--model_args`` string lm-eval's own CLI would take for these arguments."""
    return ",".join(f"{k}={v}" for k, v in args.items())


def request_cache_path(resolved: ResolvedModel, dtype: str) -> Path:
    """A per-model prefix for lm-eval's sqlite request cache (lm-eval appends ``_rank0.db``).

    lm-eval keys cached answers by the request only, not by the model, so the file must be per model: the key
    hashes the base and adapter names, the dtype, and the size and mtime of their weight/tokenizer files (a
    retrained adapter in the same folder gets a fresh cache).
    """
    h = hashlib.sha256(f"{resolved.base}|{resolved.adapter or ''}|{dtype}".encode())
    for folder in (Path(str(resolved.base)), resolved.adapter):
        if folder is not None and folder.is_dir():
            for p in sorted(folder.iterdir()):
                if p.is_file() and p.suffix in {".safetensors", ".bin", ".json", ".gguf", ".model"}:
                    st = p.stat()
                    h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    name = Path(str(resolved.adapter or resolved.base)).name or "model"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:40]
    return cache_dir("lm_eval") / f"{slug}-{h.hexdigest()[:12]}"


def _cache_rows(prefix: Path) -> int:
    import sqlite3

    db = Path(f"{prefix}_rank0.db")
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db) as con:
            return int(con.execute("SELECT COUNT(*) FROM unnamed").fetchone()[0])
    except sqlite3.Error:
        return 0


# ------------------------------------------------------------------------------------------------- the data


@dataclass
class DataPlan:
    mode: str  # "hub", "local" or "hf-cache"
    local: dict[str, Located] | None
    folder: Path | None


def plan_data(suite: Suite, tasks_data: Path | None, subjects: list[str]) -> DataPlan:
    """Decide where the data comes from; for local data, check every file now (one error naming all missing).

    Offline means ``--tasks-data`` was given or ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is set.
    """
    if tasks_data is None and not hub_offline():
        return DataPlan("hub", None, None)
    if not suite.tasks:
        datasets = _builtin_datasets(suite)
        if tasks_data is not None:
            raise DataError(
                f"suite {suite.name!r} has no local-data layout: it reads its {len(datasets)} data sets "
                f"({', '.join(datasets)}) from the hub; run it with the hub, or with those data sets already in "
                "the HF datasets cache and HF_HUB_OFFLINE=1 (without --tasks-data)"
            )
        return DataPlan("hf-cache", None, None)
    folder = Path(tasks_data) if tasks_data is not None else suite.default_data()  # type: ignore[misc]
    return DataPlan("local", locate_local(suite, folder, subjects), folder)


def _builtin_datasets(suite: Suite) -> list[str]:
    import yaml

    found: list[str] = []
    for p in sorted((lm_eval_tasks_dir() / (suite.builtin_dir or "")).rglob("*yaml*")):
        m = re.search(r"^dataset_path:\s*(\S+)", p.read_text(encoding="utf-8"), re.M)
        if m:
            found.append(yaml.safe_load(m.group(1)))
    return sorted(dict.fromkeys(found))


def _load_tasks(tm: Any, top: str, suite: Suite, mode: str) -> dict[str, Any]:
    """Build lm-eval's tasks (this loads their data) and turn a data/package failure into one clear line."""
    try:
        return tm.load([top])
    except ModuleNotFoundError as exc:
        raise EmpoError(
            f"suite {suite.name!r}: an lm-eval task needs the package {exc.name!r}, which is not installed; "
            f"{LEADERBOARD_EXTRAS}"
        ) from None
    except (OSError, ValueError) as exc:  # datasets: ConnectionError, DatasetNotFoundError, FileNotFoundError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if mode == "local":
            raise DataError(
                f"suite {suite.name!r}: lm-eval could not read the local task data: {first}"
            ) from None
        names = ", ".join(_builtin_datasets(suite)) if not suite.tasks else ""
        how = (
            "run it with the hub, or with its data sets in the HF datasets cache"
            if not suite.tasks
            else "run it with the hub, or from local files with --tasks-data DIR (see the README)"
        )
        raise DataError(
            f"suite {suite.name!r}: a data set is not reachable ({first})"
            + (f"; it needs {names}" if names else "")
            + f"; {how}"
        ) from None


def _member_of(loaded: dict[str, Any], top: str) -> dict[str, str]:
    """leaf task -> the direct member of ``top`` it belongs to (a subgroup name, or itself)."""
    gmap: dict[str, list[str]] = loaded.get("group_map", {})

    def leaves(name: str) -> list[str]:
        return [x for c in gmap[name] for x in leaves(c)] if name in gmap else [name]

    return {leaf: child for child in gmap.get(top, []) for leaf in leaves(child)}


# ------------------------------------------------------------------------------------------------- the run


def _check_out(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise EmpoError(f"{out} exists and is not a folder; choose another --out")
    if any(out.iterdir()):
        try:
            ours = "suite" in json.loads((out / METRICS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise EmpoError(
                f"{out} exists and is not an `empo eval --suite` result folder; choose another --out "
                "(a previous suite result there would be replaced)"
            )
        log.info("replacing the previous suite result in %s", out)


def run_suite(cfg: SuiteConfig, model_cfg: ModelConfig, out: Path) -> dict[str, Any]:
    """Run ``cfg.name`` on ``model_cfg.name_or_path`` and write ``out``; return the ``metrics.json`` content.

    ``out`` receives lm-eval's full results (``lm_eval_results.json``), ``metrics.json`` (headline metric per
    task/group/category and overall, with stderr, n, timing, versions), the generated task YAMLs, the resolved
    config, and per-question samples when ``cfg.log_samples``.
    """
    from empo.models.resolve import pick_device, pick_dtype, resolve_model

    started = time.time()
    suite = SUITES.get(cfg.name)
    out = Path(out)
    subjects = choose_subjects(cfg.subjects) if suite.tasks else []
    _check_out(out)
    data = plan_data(suite, cfg.tasks_data, subjects)
    resolved = resolve_model(model_cfg.name_or_path)
    device = pick_device(model_cfg.device)
    dtype = str(pick_dtype(model_cfg.dtype, device)).removeprefix("torch.")
    batch_size: int | str = cfg.batch_size or ("auto" if device == "cuda" else 8)
    margs = lm_eval_model_args(
        resolved, device=device, dtype=dtype, trust_remote_code=model_cfg.trust_remote_code
    )
    if cfg.num_fewshot is not None and len(suite.tasks) > 1:
        log.warning(
            "--num-fewshot %d replaces every task's suite default (lm-eval keeps 0-shot tasks at 0)",
            cfg.num_fewshot,
        )

    from lm_eval.tasks import TaskManager

    with atomic_dir(out) as tmp:
        if suite.tasks:
            plan = write_task_yamls(suite, subjects, data.local, tmp / TASKS_DIR)
            tm = TaskManager(include_path=str(plan.include_dir), include_defaults=False)
            top, leaves, metric_of = plan.top, plan.leaves, plan.metric
        else:
            tm = TaskManager(
                include_path=str(lm_eval_tasks_dir() / (suite.builtin_dir or "")), include_defaults=False
            )
            top, leaves, metric_of = suite.builtin_group or suite.name, [], {}
        log.info("building %s tasks (%s data)", suite.name, data.mode)
        t = time.time()
        loaded = _load_tasks(tm, top, suite, data.mode)
        build_s = time.time() - t
        built = list(loaded["tasks"])
        if suite.tasks:
            group_of = plan.group_of
            missing = [x for x in leaves if x not in loaded["tasks"]]
            if missing or len(built) != len(leaves):
                raise EmpoError(
                    f"lm-eval built {len(built)} of the {len(leaves)} tasks asked for"
                    + (f" (missing: {', '.join(missing[:10])})" if missing else "")
                )
        else:
            leaves = built
            group_of = _member_of(loaded, top)
            absent = [m for m in suite.builtin_members if m not in set(group_of.values())]
            if not built or absent:
                raise EmpoError(
                    f"lm-eval built {len(built)} tasks for {top!r}"
                    + (f"; missing members: {', '.join(absent)}" if absent else "")
                )
            metric_of = {
                leaf: next((m for p, m in suite.metric_by_prefix if leaf.startswith(p)), "acc,none")
                for leaf in leaves
            }
        log.info(
            "%d lm-eval tasks built in %.1f s; loading %s", len(leaves), build_s, model_args_string(margs)
        )

        import lm_eval
        from lm_eval.api.registry import get_model

        t = time.time()
        try:
            lm = get_model("hf").create_from_arg_obj(
                margs, {"batch_size": batch_size, "max_batch_size": cfg.max_batch_size}
            )
        except OSError as exc:  # a hub name that is not reachable, a folder without weights
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EmpoError(f"cannot load model {model_args_string(margs)!r}: {first}") from None
        load_s = time.time() - t

        cache = request_cache_path(resolved, dtype) if cfg.use_cache else None
        rows_before = _cache_rows(cache) if cache else 0
        t = time.time()
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=[loaded["groups"].get(top) or top],
            task_manager=tm,
            num_fewshot=cfg.num_fewshot,
            batch_size=batch_size,
            device=device,
            limit=cfg.limit,
            use_cache=str(cache) if cache else None,
            log_samples=cfg.log_samples,
            bootstrap_iters=cfg.bootstrap_iters,
            apply_chat_template=cfg.apply_chat_template,
        )
        eval_s = time.time() - t
        if results is None:  # not rank 0 (never for a single process)
            raise EmpoError("lm-eval returned no results")

        nsamp = results.get("n-samples", {})
        evaluated = [
            x for x in leaves if x in results.get("results", {}) and nsamp.get(x, {}).get("effective")
        ]
        if len(evaluated) != len(leaves):
            lost = [x for x in leaves if x not in evaluated]
            raise EmpoError(
                f"lm-eval evaluated {len(evaluated)} of the {len(leaves)} tasks asked for (lost: {', '.join(lost[:10])})"
            )

        questions = sum(int(nsamp[x]["effective"]) for x in leaves)
        computed = (_cache_rows(cache) - rows_before) if cache else None
        summary = summarise(results, leaves, metric_of, group_of, top if top == "mmlu" else None)
        metrics: dict[str, Any] = {
            "suite": suite.name,
            "title": suite.title,
            "model": {
                "spec": str(model_cfg.name_or_path),
                "base": str(resolved.base),
                "adapter": str(resolved.adapter) if resolved.adapter else None,
                "model_args": model_args_string(margs),
                "device": device,
                "dtype": dtype,
            },
            "data": {
                "mode": data.mode,
                "folder": str(data.folder) if data.folder else None,
                "sources": (
                    {group_of[x]: src for x, src in plan.data.items()} if suite.tasks else {top: data.mode}
                ),
            },
            "limit": cfg.limit,
            "num_fewshot": cfg.num_fewshot,
            "subjects": subjects if suite.tasks and len(subjects) != 57 else None,
            "batch_size": batch_size,
            "batch_sizes": results.get("config", {}).get("batch_sizes"),
            "apply_chat_template": cfg.apply_chat_template,
            "requested_tasks": len(leaves),
            "evaluated_tasks": len(evaluated),
            **summary,
            "timing": {
                "build_tasks_s": round(build_s, 2),
                "load_model_s": round(load_s, 2),
                "eval_s": round(eval_s, 2),
                "total_s": round(time.time() - started, 2),
                "questions": questions,
                "seconds_per_question": round(eval_s / questions, 4) if questions else None,
                "requests_computed": computed,
                "request_cache": f"{cache}_rank0.db" if cache else None,
            },
            "files": {"lm_eval": RESULTS_FILE, "tasks": TASKS_DIR if suite.tasks else None},
            "versions": versions("lm_eval", "torch", "transformers", "peft", "datasets"),
            "task_versions": results.get("versions", {}),
            "git_sha": git_sha(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if computed == 0 and questions:
            log.info("every answer came from the request cache (%s): the timing is not a model speed", cache)
        _write_results(tmp, results, cfg.log_samples)
        write_json(tmp / METRICS_FILE, metrics)
        import yaml

        (tmp / "config.yaml").write_text(
            yaml.safe_dump(
                {"model": model_cfg.model_dump(mode="json"), "suite": cfg.model_dump(mode="json")},
                sort_keys=False,
            ),
            encoding="utf-8",
        )
    log.info(
        "wrote %s (%d tasks, %d questions, %.2f s per question)",
        out,
        len(leaves),
        questions,
        eval_s / max(questions, 1),
    )
    return metrics


def _write_results(folder: Path, results: dict[str, Any], log_samples: bool) -> None:
    from lm_eval.utils import handle_non_serializable

    samples = results.pop("samples", None)
    (folder / RESULTS_FILE).write_text(
        json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    if log_samples and samples:
        for task, rows in samples.items():
            with (folder / f"samples_{task}.jsonl").open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n")
