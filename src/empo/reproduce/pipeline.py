"""``empo reproduce``: the whole EmPO pipeline from one recipe, stage by stage, timed, resumable, with a report.

Stages (``empo.reproduce.config.STAGES``), each a plain call into the module that owns it:

1. ``prefs``: :func:`empo.prefs.build.build_prefs` on EmpatheticDialogues -> ``OUT/prefs``;
2. ``sft`` (only with ``reproduce.sft``): :func:`empo.align.train.run_sft` -> ``OUT/sft``;
3. ``align``: :func:`empo.align.train.run_align` (DPO with LoRA by default) from the base or the SFT run ->
   ``OUT/align``;
4. ``generate``: :func:`empo.generate.core.run_generate` for the ED test dialogues, base and aligned model ->
   ``OUT/generate/{base,aligned}.jsonl``;
5. ``identifiers``: :func:`empo.identifiers.load_identifiers` (trained once into the cache when missing);
6. ``eval``: :func:`empo.evaluation.scoring.evaluate_files` on both -> ``OUT/eval``;
7. ``mmlu``: :func:`empo.suites.runner.run_suite` (lm-eval, 5-shot, ``suite.limit`` questions per subject) on both
   -> ``OUT/mmlu/{base,aligned}``, skipped with a reason when the data is absent;
8. ``report``: :func:`empo.reproduce.report.write_report` -> ``OUT/report.md``, ``OUT/*.png``, ``OUT/report.json``.

A *unit* is one resumable piece of work (``generate:base`` and ``generate:aligned`` are two). Each has a fingerprint
computed up front from the recipe sections it reads and the fingerprints of the units it depends on; a unit whose
fingerprint and outputs are already recorded in ``OUT/reproduce.json`` as done is reused, so re-running after a
change re-does only what the change touches (the base model's generations and MMLU survive a new DPO setting).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from empo.errors import EmpoError, RecipeError
from empo.log import get_logger
from empo.recipe import Recipe
from empo.reproduce.config import STAGES

log = get_logger(__name__)

STATE_FILE = "reproduce.json"
RECIPE_FILE = "recipe.yaml"
REPORT_FILE = "report.md"


# ------------------------------------------------------------------------------------------------------ helpers


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (dicts are key-sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _dump(section: Any) -> dict[str, Any]:
    return section.model_dump(mode="json")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def machine_info() -> dict[str, Any]:
    """What the run ran on: CPU count, memory, accelerator, load average (for reading its timings)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        pass
    try:
        import torch

        info["threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # pragma: no cover - torch is a dependency
        info["gpu"] = None
    return info


def ed_data_hash(source: Path) -> dict[str, str]:
    """sha256 of the ED files a run reads (the split CSVs, or the tar.gz)."""
    from empo.io import sha256_file

    if source.is_file():
        return {source.name: sha256_file(source)}
    return {f.name: sha256_file(f) for f in sorted(source.glob("*.csv")) if f.is_file()}


def describe_ed_source(source: Path) -> str:
    from empo.data.ed import SAMPLE_DIR
    from empo.paths import data_path

    if source.resolve() == SAMPLE_DIR.resolve():
        return "the embedded ED sample shipped with empo (src/empo/resources/ed_sample)"
    if source.resolve() == data_path("empatheticdialogues").resolve():
        return f"EmpatheticDialogues from the data root ({source})"
    return f"EmpatheticDialogues from {source}"


# --------------------------------------------------------------------------------------------------- the state


@dataclass
class Unit:
    """One resumable piece of work of a stage."""

    name: str
    stage: str
    fingerprint: str
    outputs: list[Path]
    run: Callable[[], dict[str, Any]]
    what: str
    # Units whose output this one reads (their names): they must be done (now or earlier).
    needs: tuple[str, ...] = ()


@dataclass
class ReproduceResult:
    out: Path
    state: dict[str, Any]
    report: Path | None
    summary: dict[str, Any] = field(default_factory=dict)


class State:
    """``OUT/reproduce.json``: per unit its status, fingerprint, timing and notes; rewritten after every unit."""

    def __init__(self, out: Path) -> None:
        self.path = out / STATE_FILE
        self.data: dict[str, Any] = {"units": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                log.warning("%s is not valid JSON: starting a fresh state", self.path)
            self.data.setdefault("units", {})

    @property
    def units(self) -> dict[str, dict[str, Any]]:
        return self.data["units"]

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def reusable(self, unit: Unit) -> bool:
        rec = self.units.get(unit.name)
        return bool(
            rec
            and rec.get("status") == "done"
            and rec.get("fingerprint") == unit.fingerprint
            and all(p.exists() for p in unit.outputs)
        )


def check_out_dir(out: Path) -> None:
    """The run folder is new, empty, or an earlier `empo reproduce` folder (never anything else)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise EmpoError(f"{out} exists and is not a folder; choose another --out")
    if any(out.iterdir()) and not (out / STATE_FILE).is_file():
        raise EmpoError(
            f"{out} exists and is not an `empo reproduce` folder (no {STATE_FILE}); choose another --out"
        )


# --------------------------------------------------------------------------------------------- the pipeline


class Pipeline:
    """The units of one reproduce run, built from a resolved recipe (see the module docstring)."""

    def __init__(
        self,
        recipe: Recipe,
        out: Path,
        *,
        identifiers: Any = None,
        bertscorer: Any = None,
        command: str | None = None,
    ) -> None:
        from empo.data.ed import resolve_ed_source

        self.out = out
        self.command = command
        self.identifiers = identifiers
        self.bertscorer = bertscorer
        self.rp = recipe.reproduce
        # One ED source for every stage, resolved once (the sample when the data root has none).
        spec = self.rp.data_dir if self.rp.data_dir is not None else recipe.prefs.data_dir
        self.ed_source = resolve_ed_source(spec)
        if not self.ed_source.exists():
            raise EmpoError(
                f"EmpatheticDialogues not found at {self.ed_source}; set reproduce.data_dir to a folder with "
                "train/valid/test.csv (or `sample` for the embedded sample)"
            )
        self.ed_hash = ed_data_hash(self.ed_source)
        r = recipe.model_copy(deep=True)
        r.prefs.data_dir = str(self.ed_source)
        r.sft.data_dir = str(self.ed_source)
        r.generate.data_dir = str(self.ed_source)
        r.align.prefs_dir = str(self.path("prefs"))
        self.recipe = r
        self.sft_train = self._sft_section("train")
        self.sft_peft = self._sft_section("peft")
        self.mmlu_data, self.mmlu_skip = self._mmlu_data()
        self.units = self._units()
        self.state: State | None = None
        self.summary: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------------ layout

    def path(self, name: str) -> Path:
        return {
            "prefs": self.out / "prefs",
            "sft": self.out / "sft",
            "align": self.out / "align",
            "gen_base": self.out / "generate" / "base.jsonl",
            "gen_aligned": self.out / "generate" / "aligned.jsonl",
            "eval": self.out / "eval",
            "mmlu_base": self.out / "mmlu" / "base",
            "mmlu_aligned": self.out / "mmlu" / "aligned",
            "aligned_merged": self.out / "aligned-merged",
        }[name]

    # ------------------------------------------------------------------------------------------------ checks

    def _sft_section(self, key: str):
        """The ``train`` or ``peft`` section of the SFT stage: the recipe's, with ``reproduce.sft_<key>`` applied."""
        from empo.config import validate

        section = getattr(self.recipe, key)
        extra = getattr(self.rp, f"sft_{key}")
        if not extra:
            return section
        try:
            return validate(type(section), {**_dump(section), **extra}, f"reproduce.sft_{key}")
        except RecipeError as exc:
            raise RecipeError(f"{exc} (reproduce.sft_{key} takes keys of the {key} section)") from None

    def _mmlu_data(self) -> tuple[Path | None, str | None]:
        """Where MMLU's files are, or why the stage is skipped."""
        if not self.rp.mmlu:
            return None, "off (reproduce.mmlu: false)"
        from empo.paths import data_path

        cfg = self.recipe.suite
        if cfg.name != "mmlu":
            raise RecipeError(
                f"suite.name: `empo reproduce` runs MMLU; got {cfg.name!r} (set suite.name: mmlu)"
            )
        folder = Path(cfg.tasks_data).expanduser() if cfg.tasks_data else data_path("mmlu")
        if not folder.exists():
            return None, (
                f"MMLU data not found at {folder}: put MMLU there (the cais/mmlu layout, see the README's suites "
                "section) or set suite.tasks_data, then run `empo reproduce --stages mmlu,report`"
            )
        from empo.errors import DataError
        from empo.suites.data import choose_subjects, locate_local
        from empo.suites.registry import SUITES

        try:
            locate_local(SUITES.get("mmlu"), folder, choose_subjects(cfg.subjects))
        except DataError as exc:
            return None, f"MMLU data at {folder} is incomplete: {exc}"
        return folder, None

    def _identifiers_stamp(self) -> str | None:
        """A hash of the identifiers' index file (retrained identifiers re-score), None when there are none yet."""
        if self.identifiers is not None:
            return str(getattr(self.identifiers, "path", "given"))
        from empo.identifiers import default_identifiers_dir

        cfg = self.recipe.eval
        folder = Path(cfg.identifiers).expanduser() if cfg.identifiers else default_identifiers_dir()
        index = folder / "identifiers.json"
        return hashlib.sha256(index.read_bytes()).hexdigest()[:16] if index.is_file() else None

    # ------------------------------------------------------------------------------------------------- units

    def _units(self) -> list[Unit]:
        r, rp = self.recipe, self.rp
        model = {
            "model": _dump(r.model),
            "quantization": _dump(r.quantization),
        }
        fp_prefs = fingerprint("prefs", _dump(r.prefs), self.ed_hash)
        units = [
            Unit(
                "prefs",
                "prefs",
                fp_prefs,
                [self.path("prefs") / "train.parquet", self.path("prefs") / "stats.json"],
                self.run_prefs,
                f"build-prefs ({r.prefs.strategy}, {r.prefs.pairs_per_dialogue} per dialogue) on "
                f"{self.ed_source}",
            )
        ]
        fp_sft = None
        if rp.sft:
            fp_sft = fingerprint(
                "sft", model, _dump(self.sft_peft), _dump(r.sft), _dump(self.sft_train), self.ed_hash
            )
            units.append(
                Unit(
                    "sft",
                    "sft",
                    fp_sft,
                    [self.path("sft") / "empo_run.json"],
                    self.run_sft,
                    f"SFT of {r.model.name_or_path} on ED listener turns",
                )
            )
        algo = r.align.algo
        algo_block = getattr(r, algo, None)
        fp_align = fingerprint(
            "align",
            model,
            _dump(r.peft),
            _dump(r.train),
            algo,
            _dump(algo_block) if algo_block is not None else None,
            fp_prefs,
            fp_sft,
        )
        units.append(
            Unit(
                "align",
                "align",
                fp_align,
                [self.path("align") / "empo_run.json", self.path("align") / "logs.jsonl"],
                self.run_align,
                f"{algo.upper()} ({'LoRA r=' + str(r.peft.r) if r.peft.enabled else 'full'}) from "
                f"{'the SFT run' if rp.sft else r.model.name_or_path}, "
                f"{r.train.max_steps or str(r.train.num_train_epochs) + ' epoch(s)'} steps",
                needs=("prefs", *(("sft",) if rp.sft else ())),
            )
        )
        gen = _dump(r.generate)
        fp_gen_base = fingerprint("generate", model, gen, self.ed_hash)
        fp_gen_aligned = fingerprint("generate", fp_align, _dump(r.model), gen, self.ed_hash)
        for who, fp, needs in (("base", fp_gen_base, ()), ("aligned", fp_gen_aligned, ("align",))):
            units.append(
                Unit(
                    f"generate:{who}",
                    "generate",
                    fp,
                    [self.path(f"gen_{who}")],
                    lambda who=who: self.run_generate(who),
                    f"answer the ED {r.generate.split} dialogues with the {who} model",
                    needs=needs,
                )
            )
        fp_eval = fingerprint("eval", _dump(r.eval), fp_gen_base, fp_gen_aligned, self._identifiers_stamp())
        units.append(
            Unit(
                "identifiers",
                "identifiers",
                fingerprint("identifiers", r.eval.identifiers, time.time()),  # never reused: it only loads
                [],
                self.run_identifiers,
                "load the empathy identifiers (trained once into the cache when missing)",
            )
        )
        units.append(
            Unit(
                "eval",
                "eval",
                fp_eval,
                [self.path("eval") / "summary.json"],
                self.run_eval,
                "empo eval: diff-Epitome, Emp-F1, BERTScore, diversity, valence on both",
                needs=("generate:base", "generate:aligned"),
            )
        )
        suite = {**_dump(r.suite), "tasks_data": str(self.mmlu_data) if self.mmlu_data else None}
        fp_mmlu_base = fingerprint("mmlu", model, suite)
        fp_mmlu_aligned = fingerprint("mmlu", fp_align, _dump(r.model), suite)
        for who, fp, needs in (("base", fp_mmlu_base, ()), ("aligned", fp_mmlu_aligned, ("align",))):
            units.append(
                Unit(
                    f"mmlu:{who}",
                    "mmlu",
                    fp,
                    [self.path(f"mmlu_{who}") / "metrics.json"],
                    lambda who=who: self.run_mmlu(who),
                    f"MMLU {r.suite.num_fewshot if r.suite.num_fewshot is not None else 5}-shot, "
                    f"{r.suite.limit or 'all'} per subject, "
                    f"{len(r.suite.subjects) if r.suite.subjects else 57} subjects, {who} model",
                    needs=needs,
                )
            )
        units.append(
            Unit(
                "report",
                "report",
                fingerprint("report", time.time()),
                [],
                self.run_report,
                "write the report",
            )
        )
        return units

    # ------------------------------------------------------------------------------------------------ stages

    def run_prefs(self) -> dict[str, Any]:
        from empo.prefs.build import build_prefs

        stats = build_prefs(self.recipe.prefs, self.path("prefs"), overwrite=True)
        return {
            "pairs": {s: v["pairs"] for s, v in stats["splits"].items()},
            "dialogues": {s: v["dialogues"] for s, v in stats["splits"].items()},
        }

    def run_sft(self) -> dict[str, Any]:
        from empo.align.train import run_sft

        recipe = self.recipe.model_copy(update={"train": self.sft_train, "peft": self.sft_peft}, deep=True)
        res = run_sft(recipe, self.path("sft"), overwrite=True, command=self._command("sft"))
        return {"final_step": res.metrics.get("final_step"), "timing": _timing(res.metrics)}

    def run_align(self) -> dict[str, Any]:
        from empo.align import run as runlib
        from empo.align.train import run_align

        recipe = self.recipe.model_copy(deep=True)
        if self.rp.sft:
            recipe.model.name_or_path = str(self.path("sft"))
        run_dir = self.path("align")
        # An interrupted run of the same recipe continues from its last checkpoint.
        resume = False
        if (run_dir / runlib.RECIPE_FILE).is_file() and runlib.last_checkpoint(run_dir) is not None:
            from empo.config import to_yaml

            same = (run_dir / runlib.RECIPE_FILE).read_text(encoding="utf-8") == to_yaml(recipe)
            status = (
                runlib.read_run_info(run_dir).get("status") if (run_dir / runlib.RUN_INFO).is_file() else None
            )
            resume = same and status == "running"
            if resume:
                log.info("align: continuing the interrupted run in %s from its last checkpoint", run_dir)
        res = run_align(recipe, run_dir, overwrite=not resume, resume=resume, command=self._command("align"))
        return {
            "final_step": res.metrics.get("final_step"),
            "timing": _timing(res.metrics),
            "resumed": resume,
        }

    def run_generate(self, who: str) -> dict[str, Any]:
        from empo.generate.core import run_generate

        recipe = self.recipe.model_copy(deep=True)
        if who == "aligned":
            recipe.model.name_or_path = str(self.path("align"))
        summary = run_generate(
            recipe, self.path(f"gen_{who}"), overwrite=True, command=self._command(f"generate {who}")
        )
        return {
            "n": summary.n,
            "generation_seconds": round(summary.seconds, 2),
            "new_tokens": summary.new_tokens,
            "tokens_per_s": round(summary.tokens_per_s, 2),
        }

    def run_identifiers(self) -> dict[str, Any]:
        if self.identifiers is not None:
            return {"source": "given"}
        cfg = self.recipe.eval
        if not cfg.use_identifiers:
            return {"source": None, "note": "off (eval.use_identifiers: false)"}
        from empo.evaluation.scoring import load_default_identifiers
        from empo.identifiers import default_identifiers_dir

        folder = Path(cfg.identifiers).expanduser() if cfg.identifiers else default_identifiers_dir()
        trained = not (folder / "identifiers.json").is_file()
        ident, reason = load_default_identifiers(cfg)
        self.identifiers = ident
        if ident is None:
            return {"source": None, "note": reason}
        return {"source": str(getattr(ident, "path", folder)), "trained_now": trained}

    def run_eval(self) -> dict[str, Any]:
        from empo.evaluation.scoring import evaluate_files

        # Without identifiers from the identifiers stage, evaluate_files looks them up itself and, when there are
        # none (e.g. no EPITOME to train them), reports diff-Epitome as skipped with the reason.
        cfg = self.recipe.eval.model_copy(deep=True)
        res = evaluate_files(
            [self.path("gen_base"), self.path("gen_aligned")],
            self.path("eval"),
            cfg,
            identifiers=self.identifiers,
            bertscorer=self.bertscorer,
            command=self._command("eval"),
        )
        return {"inputs": res.names}

    def run_mmlu(self, who: str) -> dict[str, Any]:
        from empo.models.resolve import resolve_model
        from empo.suites.runner import run_suite

        cfg = self.recipe.suite.model_copy(update={"tasks_data": self.mmlu_data}, deep=True)
        model_cfg = self.recipe.model.model_copy(deep=True)
        if who == "aligned":
            spec = self.path("align")
            if resolve_model(spec).merged:
                # lm-eval applies ONE adapter (peft=): a chain (SFT then DPO) is merged into a plain folder first.
                from empo.export import export_run

                log.info(
                    "mmlu: merging the SFT and DPO adapters into %s for lm-eval", self.path("aligned_merged")
                )
                spec = export_run(spec, self.path("aligned_merged"), merge=True, overwrite=True)
            model_cfg.name_or_path = str(spec)
        metrics = run_suite(cfg, model_cfg, self.path(f"mmlu_{who}"))
        o = metrics["overall"]
        return {
            "accuracy": o["value"],
            "stderr": o["stderr"],
            "questions": metrics["timing"]["questions"],
            "seconds_per_question": metrics["timing"]["seconds_per_question"],
        }

    def run_report(self) -> dict[str, Any]:
        from empo.reproduce.report import write_report

        summary = write_report(self)
        self.summary = summary
        return {"report": str(self.out / REPORT_FILE)}

    def _command(self, stage: str) -> str:
        return f"{self.command or 'empo reproduce'} [stage {stage}]"


def _timing(metrics: dict[str, Any]) -> dict[str, Any]:
    t = metrics.get("timing", {})
    return {k: v for k, v in t.items() if k != "step_seconds"}


# ----------------------------------------------------------------------------------------------- the runner


def select_stages(recipe: Recipe, stages: list[str] | None) -> list[str]:
    """The stages to run: ``stages`` (e.g. from --stages), else ``reproduce.stages``, else all."""
    chosen = stages if stages else recipe.reproduce.stages
    if not chosen:
        return list(STAGES)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise EmpoError(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    return [s for s in STAGES if s in chosen]


def run_reproduce(
    recipe: Recipe,
    out: Path | str | None = None,
    *,
    stages: list[str] | None = None,
    force: bool = False,
    identifiers: Any = None,
    bertscorer: Any = None,
    command: str | None = None,
) -> ReproduceResult:
    """Run the pipeline of ``recipe`` into ``out`` (default ``reproduce.out``); return the state and the report.

    ``stages`` limits what runs (the other stages' earlier outputs are used); a unit whose recipe is unchanged and
    whose outputs exist is reused unless ``force``. ``identifiers`` / ``bertscorer`` may be given (tests pass
    small fakes), as to :func:`empo.evaluation.scoring.evaluate_files`.
    """
    from empo.config import to_yaml
    from empo.io import git_sha

    out = Path(out if out is not None else recipe.reproduce.out)
    selected = select_stages(recipe, stages)
    check_out_dir(out)
    pipe = Pipeline(recipe, out, identifiers=identifiers, bertscorer=bertscorer, command=command)
    out.mkdir(parents=True, exist_ok=True)
    (out / RECIPE_FILE).write_text(to_yaml(pipe.recipe), encoding="utf-8")
    state = State(out)
    state.data.update(
        started=_now(),
        command=command,
        git_sha=git_sha(),
        machine=machine_info(),
        load_start=_load(),
        ed_source=str(pipe.ed_source),
        ed_description=describe_ed_source(pipe.ed_source),
        ed_hash=pipe.ed_hash,
        stages_selected=selected,
        sft=recipe.reproduce.sft,
        mmlu_skip=pipe.mmlu_skip,
    )
    state.save()
    pipe.state = state

    # Which units run, which are reused, which are not wanted; "identifiers" only when eval runs.
    plan: dict[str, str] = {}
    for u in pipe.units:
        if u.stage not in selected:
            plan[u.name] = "not selected"
        elif u.stage == "mmlu" and pipe.mmlu_skip:
            plan[u.name] = "skipped"
        elif u.name in ("identifiers", "report"):
            plan[u.name] = "run"
        elif not force and state.reusable(u):
            plan[u.name] = "reuse"
        else:
            plan[u.name] = "run"
    if plan.get("identifiers") == "run" and plan.get("eval") != "run":
        plan["identifiers"] = "not needed"
    for u in pipe.units:  # a unit that runs needs its inputs: done now, or done earlier
        if plan[u.name] != "run":
            continue
        for need in u.needs:
            if plan.get(need) == "run":
                continue
            rec = state.units.get(need)
            outputs = next(x.outputs for x in pipe.units if x.name == need)
            if not (rec and rec.get("status") == "done" and all(p.exists() for p in outputs)):
                raise EmpoError(
                    f"stage {u.stage} needs the output of {need} ({outputs[0].parent if outputs else need}), "
                    f"which is missing; add {need.split(':')[0]} to --stages"
                )
            if rec.get("fingerprint") != next(x.fingerprint for x in pipe.units if x.name == need):
                log.warning(
                    "%s uses the output of %s made with another recipe (not re-run: not selected)",
                    u.name,
                    need,
                )

    runnable = [u for u in pipe.units if plan[u.name] in ("run", "reuse")]
    total = len(runnable)
    log.info(
        "empo reproduce -> %s: %d units (%s); ED: %s",
        out,
        total,
        ", ".join(f"{u.name} {plan[u.name]}" for u in runnable),
        describe_ed_source(pipe.ed_source),
    )
    if pipe.mmlu_skip and "mmlu" in selected:
        log.warning("mmlu: skipped: %s", pipe.mmlu_skip)
    for name, p in plan.items():
        if p in ("skipped", "not needed"):
            note = pipe.mmlu_skip if p == "skipped" else "eval reused: nothing to score"
            state.units[name] = {"status": p, "note": note}
    state.save()
    t_all = time.perf_counter()
    for i, u in enumerate(runnable, 1):
        tag = f"[{i}/{total}] {u.name}"
        if plan[u.name] == "reuse":
            rec = state.units[u.name]
            rec["reused"] = True
            state.save()
            log.info(
                "%s: reused (same recipe; done %s in %.1f s)", tag, rec.get("finished"), rec.get("seconds", 0)
            )
            continue
        log.info("%s: %s", tag, u.what)
        rec = {"status": "running", "fingerprint": u.fingerprint, "started": _now(), "load_start": _load()}
        state.units[u.name] = rec
        state.save()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            details = u.run()
        except BaseException as exc:
            rec.update(status="failed", seconds=round(time.perf_counter() - t0, 2), error=str(exc)[:500])
            state.save()
            log.error("%s: failed after %.1f s", tag, rec["seconds"])
            raise
        rec.update(
            status="done",
            seconds=round(time.perf_counter() - t0, 2),
            # CPU time of the process (all threads): a measure of the work that the load of other jobs does not
            # inflate (on an idle machine the wall time is about cpu_seconds / the threads busy).
            cpu_seconds=round(time.process_time() - c0, 2),
            finished=_now(),
            load_end=_load(),
            details=details,
        )
        state.save()
        log.info("%s: done in %.1f s", tag, rec["seconds"])
    state.data.update(
        finished=_now(), load_end=_load(), seconds_this_run=round(time.perf_counter() - t_all, 2)
    )
    state.save()
    report = out / REPORT_FILE if "report" in selected else None
    log.info(
        "empo reproduce: finished in %.1f s; report: %s", time.perf_counter() - t_all, report or "not written"
    )
    return ReproduceResult(out=out, state=state.data, report=report, summary=pipe.summary)
