"""The run folder of ``empo sft`` / ``empo align``, and the callbacks that fill it.

::

    RUN/
      empo_run.json      base model (the spec the run started from), algo, peft, status, created, versions,
                         git sha, data hashes, command line, the chain of earlier runs
      recipe.yaml        the fully resolved recipe, written before training starts
      logs.jsonl         one line per logged step (loss, rewards/margins, rewards/accuracies, learning_rate, ...)
      metrics.json       final train/eval metrics, data counts, timing
      README.md          model card
      adapter_config.json + adapter_model.safetensors (LoRA)  or  config.json + model.safetensors (full)
      tokenizer files, chat_template.jinja
      checkpoints/checkpoint-N/   (what --resume continues from)

An existing folder is refused unless ``--overwrite`` (replace it) or ``--resume`` (continue it).
``empo_run.json`` says ``"status": "running"`` until the model is saved, so an unfinished run is never loaded as a
model by mistake.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from empo.errors import EmpoError
from empo.io import git_sha, versions, write_json
from empo.log import get_logger

log = get_logger(__name__)

RUN_INFO = "empo_run.json"
RECIPE_FILE = "recipe.yaml"
LOGS_FILE = "logs.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINTS = "checkpoints"
STACK = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes")


def check_run_dir(out: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse an existing run folder unless ``overwrite`` or ``resume``; ``resume`` needs a started run."""
    if overwrite and resume:
        raise EmpoError("--overwrite and --resume exclude each other: replace the run, or continue it")
    exists = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if resume:
        if not (out / RECIPE_FILE).is_file():
            raise EmpoError(f"--resume: {out} holds no started run ({RECIPE_FILE} missing); drop --resume")
        return
    if exists and not overwrite:
        raise EmpoError(f"{out} already exists; pass --overwrite to replace it, or --resume to continue it")
    if out.exists() and not out.is_dir():
        raise EmpoError(f"{out} exists and is not a folder; choose another --out")


def start_run_dir(out: Path, *, overwrite: bool, resume: bool) -> None:
    """Create (or, with ``overwrite``, empty) the run folder. With ``resume`` it is kept as is."""
    if resume:
        return
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``checkpoints/checkpoint-N`` (None if there is none)."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        return None
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def checkpoint_step(path: Path | None) -> int:
    return int(path.name.split("-")[-1]) if path is not None else 0


def trim_logs(run_dir: Path, up_to_step: int) -> None:
    """Keep only log lines up to ``up_to_step`` (a resumed run rewrites what came after its checkpoint)."""
    path = run_dir / LOGS_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and json.loads(line).get("step", 0) <= up_to_step:
            kept.append(line)
    path.write_text("".join(f"{k}\n" for k in kept), encoding="utf-8")


def read_logs(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / LOGS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    tmp = run_dir / f".{RUN_INFO}.tmp"
    write_json(tmp, info)
    tmp.replace(run_dir / RUN_INFO)


def read_run_info(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8"))


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_info(
    *,
    kind: str,
    algo: str,
    base_model: str,
    peft: bool,
    quantized: bool,
    data_hashes: dict[str, str],
    data_source: str,
    chain: list[dict[str, Any]],
    command: list[str] | None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "algo": algo,
        "base_model": base_model,
        "peft": peft,
        "quantized": quantized,
        "status": "running",
        "created": utc_now(),
        "versions": versions(*STACK),
        "git_sha": git_sha(),
        "data_source": data_source,
        "data_hashes": data_hashes,
        "chain": chain,
        "command": list(command) if command is not None else list(sys.argv),
    }


def base_model_spec(spec: str) -> str:
    """The spec to record: local paths made absolute (so the run loads from anywhere), aliases/hub names as is."""
    path = Path(spec).expanduser()
    if path.exists():
        return str(path.resolve())
    return spec


def chain_of(spec: str) -> list[dict[str, Any]]:
    """The runs a model spec stands on (oldest first), when the spec is an empo run folder."""
    path = Path(spec).expanduser()
    if not (path / RUN_INFO).is_file():
        return []
    info = read_run_info(path)
    entry = {
        "run": str(path.resolve()),
        "kind": info.get("kind"),
        "algo": info.get("algo"),
        "base_model": info.get("base_model"),
    }
    return [*info.get("chain", []), entry]


class JsonlLogger(TrainerCallback):
    """Append every log event (train steps, evaluations) to ``logs.jsonl`` with its step and wall time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.start = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time() - self.start, 3)}
        row.update({k: v for k, v in logs.items() if isinstance(v, int | float | str | bool)})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")


class StepTimer(TrainerCallback):
    """Wall time of each optimisation step (the training loop only: no evaluation, no saving)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t0)

    def summary(self) -> dict[str, float]:
        if not self.times:
            return {}
        return {
            "steps_timed": len(self.times),
            "seconds_per_step_median": statistics.median(self.times),
            "seconds_per_step_mean": statistics.fmean(self.times),
            "train_seconds": sum(self.times),
            "step_seconds": [round(t, 4) for t in self.times],
        }


class StopAtStep(TrainerCallback):
    """Stop training after ``step`` (and save a checkpoint there): for tests of --resume."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True


def model_card(info: dict[str, Any], recipe_yaml: str, metrics: dict[str, Any], hyper: dict[str, Any]) -> str:
    """A short README.md for the run folder."""
    kind, algo = info.get("kind", "align"), info.get("algo", "?")
    chain = " -> ".join([*(c["run"] for c in info.get("chain", [])), "this run"])
    final = {k: v for k, v in metrics.get("eval", {}).items() if isinstance(v, int | float)}
    train = {k: v for k, v in metrics.get("train", {}).items() if isinstance(v, int | float)}
    lines = [
        f"# empo {kind}: {algo}",
        "",
        f"Trained with `empo {kind}` (empo {info.get('versions', {}).get('empo', '?')}) from "
        f"**{info.get('base_model')}**{' (LoRA adapter)' if info.get('peft') else ' (full fine-tuning)'}"
        f"{', 4-bit base (QLoRA)' if info.get('quantized') else ''}.",
        "",
        f"- chain: {chain}" if info.get("chain") else "- chain: trained directly from the base model",
        f"- data: `{info.get('data_source')}` (sha256: "
        + ", ".join(f"{k} {v[:12]}" for k, v in info.get("data_hashes", {}).items())
        + ")",
        f"- hyperparameters ({algo}): " + ", ".join(f"{k}={v}" for k, v in hyper.items()),
        f"- command: `{' '.join(info.get('command', []))}`",
        f"- created {info.get('created')}, git {str(info.get('git_sha'))[:12]}",
        "",
        "## Results",
        "",
        "| split | metric | value |",
        "|---|---|---|",
        *(f"| train | {k} | {v:.6g} |" for k, v in sorted(train.items())),
        *(f"| valid | {k} | {v:.6g} |" for k, v in sorted(final.items())),
        "",
        "Per-step logs: `logs.jsonl`. Everything measured: `metrics.json`.",
        "",
        "## Use",
        "",
        "```bash",
        "empo generate --model THIS_FOLDER ...      # empo resolves the base model (and earlier runs) itself",
        "empo export THIS_FOLDER --merge --out merged/   # a standalone transformers folder",
        "```",
        "",
        "## Recipe",
        "",
        "```yaml",
        recipe_yaml.rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
