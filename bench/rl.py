"""Measure on-policy RL with EmpRL's empathy-match reward: the reward and Emp-F1 before and after a short run.

Each step is the real CLI in a subprocess, except the held-out reward, which scores the GEN files in process:

1. `empo build-prefs` (the shared ED subset) into OUT/prefs, unless it is there;
2. `empo generate` with the base model on the first --limit ED test dialogues (greedy) -> OUT/base.jsonl;
3. `empo align --algo grpo|rloo --recipe recipes/smollm2-135m/<algo>.yaml` -> OUT/<algo>;
4. `empo generate` with the trained run, same settings -> OUT/<algo>.jsonl;
5. `empo eval` on both GEN files (Emp-F1, diff-Epitome, BERTScore, length) -> OUT/eval;
6. the mean empathy-match reward of each GEN file's responses (the reward the run optimised, with the same
   identifiers), and the training reward of the first and last steps from the run's logs.jsonl.

    python bench/rl.py                                  # GRPO, SmolLM2-135M, 64 test dialogues
    python bench/rl.py --algo rloo
    python bench/rl.py --steps eval,reward              # re-score the GEN files already in --out
    python bench/rl.py --set train.max_steps=30          # more steps (any recipe override)

Identifiers are never trained here: without the cached default identifiers (or --identifiers), the align and
reward steps stop with a message. Results go to OUT/summary.json and are printed as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import REPO, run_cli

STEPS = ("prefs", "base", "align", "gen", "eval", "reward")


def held_out_reward(gen_file: Path, identifiers: str | None) -> dict:
    """Mean empathy-match reward (EmpRL: prod over ER/IP/EX of P(reference level)) of a GEN file's responses."""
    import numpy as np

    from empo.rl.rewards import RewardContext, make_reward_funcs

    rows = [json.loads(line) for line in gen_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    ctx = RewardContext(identifiers=Path(identifiers) if identifiers else None)
    (fn,), _ = make_reward_funcs(["empathy-match"], ctx)
    rewards = np.array(
        fn(
            [r["response"] for r in rows],
            prompts=[r["context"] for r in rows],
            reference=[r["reference"] for r in rows],
        )
    )
    words = [len(r["response"].split()) for r in rows]
    return {
        "n": len(rows),
        "empathy_match_mean": float(rewards.mean()),
        "empathy_match_sem": float(rewards.std(ddof=1) / np.sqrt(len(rows))) if len(rows) > 1 else None,
        "words_per_response": float(np.mean(words)),
        "conv_ids": [r.get("conv_id") for r in rows],
        "rewards": [float(x) for x in rewards],
    }


def paired_gain(base: dict, trained: dict) -> dict | None:
    """Mean per-dialogue reward gain (trained - base) over the dialogues both answered, with its standard error."""
    import numpy as np

    b = dict(zip(base["conv_ids"], base["rewards"], strict=True))
    t = dict(zip(trained["conv_ids"], trained["rewards"], strict=True))
    keys = [k for k in b if k in t]
    if len(keys) < 2:
        return None
    d = np.array([t[k] - b[k] for k in keys])
    return {"n": len(keys), "mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d)))}


def training_rewards(run_dir: Path, k: int = 3) -> dict:
    """Mean training reward (sampled completions, train prompts) of the first and last ``k`` logged steps."""
    rows = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "rewards/empathy-match/mean" in r and "loss" in r]
    if not steps:
        return {"steps": 0, "note": "no logged step with rewards/empathy-match/mean (another reward?)"}
    first, last = steps[:k], steps[-k:]

    def mean(rs: list[dict], key: str) -> float:
        return sum(r[key] for r in rs) / len(rs)

    return {
        "steps": len(steps),
        f"first_{k}_steps_reward": mean(first, "rewards/empathy-match/mean"),
        f"last_{k}_steps_reward": mean(last, "rewards/empathy-match/mean"),
        f"first_{k}_steps_kl": mean(first, "kl") if "kl" in first[0] else None,
        f"last_{k}_steps_kl": mean(last, "kl") if "kl" in last[0] else None,
        "completion_length_first": mean(first, "completions/mean_length"),
        "completion_length_last": mean(last, "completions/mean_length"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algo", choices=("grpo", "rloo"), default="grpo")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=64, help="first N shared ED test dialogues (237 in all)")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: runs/rl-<algo>)")
    ap.add_argument("--identifiers", default=None, help="identifiers folder (default: the cached default)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="recipe override for align")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    args = ap.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        ap.error(f"unknown step(s) {unknown}; choose from {','.join(STEPS)}")
    # One folder per algorithm by default: summary.json and eval/ describe one run each.
    out: Path = args.out or REPO / "runs" / f"rl-{args.algo}"
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / args.algo
    recipe = REPO / "recipes" / "smollm2-135m" / f"{args.algo}.yaml"

    if {"align", "reward"} & set(steps):
        from empo.identifiers import _is_trained, default_identifiers_dir

        folder = Path(args.identifiers) if args.identifiers else default_identifiers_dir()
        if not _is_trained(folder):
            sys.exit(
                f"no trained identifiers at {folder}: run `empo identifiers train` first (not done here)"
            )

    summary: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "algo": args.algo,
        "model": args.model,
        "limit": args.limit,
        "max_new_tokens": args.max_new_tokens,
        "recipe": str(recipe.relative_to(REPO)),
        "overrides": args.sets,
    }
    gen = ["generate", "--split", "test", "--limit", str(args.limit), "--max-new-tokens",
           str(args.max_new_tokens), "--batch-size", str(args.batch_size), "--overwrite"]  # fmt: skip
    seconds: dict = {}
    if "prefs" in steps and not (out / "prefs" / "train.parquet").is_file():
        seconds["prefs"] = run_cli(["build-prefs", "--out", str(out / "prefs")])
    if "base" in steps:
        seconds["base"] = run_cli([*gen, "--model", args.model, "--out", str(out / "base.jsonl")])
    if "align" in steps:
        cmd = ["align", "--recipe", str(recipe), "--model", args.model, "--prefs", str(out / "prefs"),
               "--out", str(run_dir), "--overwrite"]  # fmt: skip
        if args.identifiers:
            cmd += ["--set", f"{args.algo}.identifiers={args.identifiers}"]
        for s in args.sets:
            cmd += ["--set", s]
        seconds["align"] = run_cli(cmd)
    if "gen" in steps:
        seconds["gen"] = run_cli([*gen, "--model", str(run_dir), "--out", str(out / f"{args.algo}.jsonl")])
    if "eval" in steps:
        ev = ["eval", str(out / "base.jsonl"), str(out / f"{args.algo}.jsonl"), "--out", str(out / "eval"),
              "--no-train-identifiers", "--no-per-emotion"]  # fmt: skip
        if args.identifiers:
            ev += ["--identifiers", args.identifiers]
        seconds["eval"] = run_cli(ev)
        summary_file = out / "eval" / "summary.json"
        if summary_file.is_file():
            summary["eval"] = json.loads(summary_file.read_text())
    if "reward" in steps:
        summary["held_out_reward"] = {
            name: held_out_reward(out / f"{name}.jsonl", args.identifiers) for name in ("base", args.algo)
        }
        summary["held_out_gain"] = paired_gain(
            summary["held_out_reward"]["base"], summary["held_out_reward"][args.algo]
        )
        if (run_dir / "logs.jsonl").is_file():
            summary["training"] = training_rewards(run_dir)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            summary["training"]["timing"] = metrics.get("timing", {})
    summary["seconds"] = seconds

    previous = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    previous_seconds = previous.get("seconds", {})
    summary = {**previous, **summary, "seconds": {**previous_seconds, **seconds}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")

    held = summary.get("held_out_reward", {})
    if held:
        print(
            f"\nEmpathy-match reward on {args.limit} ED test dialogues (greedy, {args.max_new_tokens} new tokens):\n"
        )
        print("| model | empathy-match (mean ± s.e.) | Emp-F1 | words/response |")
        print("|---|---|---|---|")
        ev = summary.get("eval", {})
        for name, h in held.items():
            f1 = _find_metric(ev, name, "emp-f1")
            f1_text = f"{f1:.3f}" if f1 is not None else "n/a"
            print(
                f"| {name} | {h['empathy_match_mean']:.3f} ± {h['empathy_match_sem']:.3f} | {f1_text} | "
                f"{h['words_per_response']:.1f} |"
            )
    gain = summary.get("held_out_gain")
    if gain:
        print(
            f"\npaired gain ({args.algo} - base) over {gain['n']} dialogues: "
            f"{gain['mean']:+.3f} ± {gain['se']:.3f} (se)"
        )
    if "training" in summary:
        print("\ntraining:", json.dumps(summary["training"], indent=1))
    print(f"\nwrote {out / 'summary.json'}")


def _find_metric(ev: dict, name: str, metric: str) -> float | None:
    """A metric of one input in empo eval's summary.json (``{name: {"n", "input", "metrics": {...}}}``)."""
    value = ev.get(name, {}).get("metrics", {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


if __name__ == "__main__":
    main()
