"""Train and compare variants of the empathy identifiers; print a table of val (and test) scores and times.

    python bench/identifiers.py                          # every variant, one after the other
    python bench/identifiers.py --only default,bi --jobs 2  # some variants, 2 processes at once (e.g. on a GPU)
    python bench/identifiers.py --set epochs=4           # an override applied to every variant

Selection is on the validation split only: the table is sorted by the ensemble's validation score, and the test
columns are there to report each configuration once, not to choose between them. Each variant's row holds the
padded tokens one epoch processes, which is what CPU time scales with.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

# name -> overrides of the base configuration. BASE is empty: every variant is the SHIPPED default
# (empo.identifiers.config.IdentifiersConfig, recipes/identifiers.yaml) with the listed changes, so the `default`
# row is exactly what `empo identifiers train` builds.
BASE: dict = {}
VARIANTS: dict[str, dict] = {
    "default": {},
    "probe-like": {  # STACK_NOTES' probe: mean pooling, no rationale loss, balanced weights, 3 epochs
        "pooling": "mean",
        "rationale_weight": 0.0,
        "class_weight": "balanced",
        "epochs": 3,
        "max_seeker_tokens": 64,
        "max_response_tokens": 96,
        "head_lr": 5e-5,
    },
    "bi": {"input": "bi"},
    "response-only": {"input": "response"},
    "pool-mean": {"pooling": "mean"},
    "pool-cls": {"pooling": "cls"},
    "pool-cls_mean": {"pooling": "cls_mean"},
    "no-rationale": {"rationale_weight": 0.0},
    "rationale-0.5": {"rationale_weight": 0.5},
    "cw-sqrt": {"class_weight": "sqrt"},
    "cw-balanced": {"class_weight": "balanced"},
    "lr-1e-4": {"lr": 1e-4},
    "lr-3e-5": {"lr": 3e-5},
    "epochs-8": {"epochs": 8},
    "separate": {"separate": True},
    "len-64": {"max_response_tokens": 64},
    "len-256": {"max_response_tokens": 256},
    "seeker-64": {"max_seeker_tokens": 64},
    "layer-decay": {"lr": 1e-4, "layer_decay": 0.8},
    "batch-32": {"batch_size": 32, "lr": 1e-4},
    "head-lr-low": {"head_lr": 1e-4},
    "select-f1": {"select_metric": "macro_f1"},
    "ensemble-3": {"seeds": [0, 1, 2]},
    "calibrate": {"calibrate": True},
}


def run_variant(name: str, overrides: dict, common: dict) -> dict:
    from empo.identifiers.config import IdentifiersConfig
    from empo.identifiers.train import evaluate_on, fit, resolve_paths

    cfg = IdentifiersConfig(**{**BASE, **overrides, **common})
    t0 = time.perf_counter()
    res = fit(cfg)
    seconds = time.perf_counter() - t0
    _, _, test_path = resolve_paths(cfg)
    test = evaluate_on(res.identifiers, test_path)
    nets = res.history
    return {
        "name": name,
        "overrides": overrides,
        "seconds": seconds,
        "device": str(res.identifiers.device),
        "threads": __import__("torch").get_num_threads(),
        "padded_tokens_per_epoch": sum(n["epochs"][0]["padded_tokens"] for n in nets)
        / max(1, len(cfg.seeds)),
        "best_epochs": [n["best_epoch"] for n in nets],
        "val_single": [n["best_val_select"] for n in nets],
        "val": res.val_scores,
        "test": test,
        "calibration": res.identifiers.calibration,
    }


def _table(rows: list[dict]) -> str:
    mech = ("ER", "IP", "EX")
    head = (
        "| variant | val sel (single seeds) | val acc ER/IP/EX | val F1 ER/IP/EX | test acc ER/IP/EX | "
        "test F1 ER/IP/EX | s | Mtok/epoch |"
    )
    out = [head, "|" + "---|" * 8]

    def sel(s: dict) -> float:
        return sum((s[m]["accuracy"] + s[m]["macro_f1"]) / 2 for m in mech) / 3

    for r in sorted(rows, key=lambda r: -sel(r["val"])):
        v, t = r["val"], r["test"]
        out.append(
            f"| {r['name']} | {sel(v):.4f} ({', '.join(f'{x:.3f}' for x in r['val_single'])}) | "
            + "/".join(f"{v[m]['accuracy']:.3f}" for m in mech)
            + " | "
            + "/".join(f"{v[m]['macro_f1']:.3f}" for m in mech)
            + " | "
            + "/".join(f"{t[m]['accuracy']:.3f}" for m in mech)
            + " | "
            + "/".join(f"{t[m]['macro_f1']:.3f}" for m in mech)
            + " | "
            + f"{r['seconds']:.0f} | {r['padded_tokens_per_epoch'] / 1e6:.3f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained at once, each in its own process")
    ap.add_argument(
        "--set", action="append", default=[], help="KEY=VALUE applied to every variant (YAML value)"
    )
    ap.add_argument("--out", type=Path, default=Path("runs/bench-identifiers"))
    ap.add_argument("--variants-json", type=Path, help="extra variants: a JSON object name -> overrides")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()

    import yaml

    common = {}
    for item in args.set:
        k, _, v = item.partition("=")
        common[k] = yaml.safe_load(v)
    variants = dict(VARIANTS)
    if args.variants_json:
        variants.update(json.loads(args.variants_json.read_text()))
    names = [n for n in args.only.split(",") if n] or list(variants)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.worker:  # one variant in this process
        from empo.log import setup_logging

        setup_logging()
        row = run_variant(args.worker, variants[args.worker], common)
        (args.out / f"{args.worker}.json").write_text(json.dumps(row, indent=1))
        return

    pending = list(names)
    running: list[tuple[str, subprocess.Popen]] = []
    base_cmd = [sys.executable, __file__, "--out", str(args.out)]
    for item in args.set:
        base_cmd += ["--set", item]
    if args.variants_json:
        base_cmd += ["--variants-json", str(args.variants_json)]
    while pending or running:
        while pending and len(running) < args.jobs:
            n = pending.pop(0)
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            with open(args.out / f"{n}.log", "w") as log:  # the child keeps its own handle
                running.append(
                    (n, subprocess.Popen([*base_cmd, "--worker", n], stdout=log, stderr=log, env=env))
                )
        time.sleep(1)
        for n, p in list(running):
            if p.poll() is not None:
                running.remove((n, p))
                print(f"{n}: exit {p.returncode}", flush=True)
    rows = [
        json.loads((args.out / f"{n}.json").read_text()) for n in names if (args.out / f"{n}.json").exists()
    ]
    table = _table(rows)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    print(table)


if __name__ == "__main__":
    main()
