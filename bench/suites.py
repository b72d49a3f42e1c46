"""Time per question of `empo eval --suite mmlu` (lm-eval, MMLU 5-shot) for a model, per batch size.

    .venv/bin/python bench/suites.py                        # SmolLM2-135M, 2 questions x 57 subjects, batch 1 and 8
    .venv/bin/python bench/suites.py --limit 5 --subjects 10 --batch-sizes 8

Runs offline from $EMPO_DATA_DIR/mmlu with lm-eval's request cache OFF (every answer is computed), writes each
run's folder under --out and a `bench.json` summary, and prints a markdown table for the README. The full MMLU
test set has 14,042 questions: the last column extrapolates the measured time per question to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

MMLU_TEST_QUESTIONS = 14042


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", default="smollm2-135m", help="model spec (alias, folder, run folder, hub name)"
    )
    ap.add_argument("--limit", type=int, default=2, help="questions per subject")
    ap.add_argument("--subjects", default="all", help="'all' (57) or the first N subjects")
    ap.add_argument("--batch-sizes", default="1,8", help="comma-separated lm-eval batch sizes to time")
    ap.add_argument("--tasks-data", type=Path, default=None, help="MMLU folder (default $EMPO_DATA_DIR/mmlu)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-suites"))
    args = ap.parse_args()

    import torch

    from empo.log import setup_logging
    from empo.paths import data_path
    from empo.suites.cli import suite_main
    from empo.suites.data import mmlu_subjects

    setup_logging()
    subjects = list(mmlu_subjects())
    if args.subjects != "all":
        subjects = subjects[: int(args.subjects)]
    overrides = ["suite.use_cache=false"]
    if len(subjects) != 57:
        overrides.append(f"suite.subjects=[{','.join(subjects)}]")
    rows = []
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        t0 = time.time()
        m = suite_main(
            suite="mmlu",
            model=args.model,
            out=args.out / f"bs{bs}",
            limit=args.limit,
            tasks_data=args.tasks_data or data_path("mmlu"),
            batch_size=bs,
            overrides=overrides,
        )
        tm = m["timing"]
        rows.append(
            {
                "batch_size": bs,
                "subjects": len(subjects),
                "questions": tm["questions"],
                "eval_s": tm["eval_s"],
                "load_model_s": tm["load_model_s"],
                "wall_s": round(time.time() - t0, 1),
                "seconds_per_question": tm["seconds_per_question"],
                "full_mmlu_hours": round(tm["seconds_per_question"] * MMLU_TEST_QUESTIONS / 3600, 2),
                "acc": m["overall"]["value"],
                "acc_stderr": m["overall"]["stderr"],
            }
        )
    meta = {
        "model": args.model,
        "limit": args.limit,
        "device": m["model"]["device"],
        "dtype": m["model"]["dtype"],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "versions": m["versions"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(
        f"\n{args.model}, MMLU 5-shot, {args.limit} per subject x {len(subjects)} subjects, "
        f"{meta['device']} {meta['dtype']}, {meta['torch_threads']} threads, load average {meta['load_average'][0]:.1f}\n"
    )
    print("| batch | questions | eval s | s / question | full MMLU (14,042 q) | acc ± se |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch_size']} | {r['questions']} | {r['eval_s']:.0f} | {r['seconds_per_question']:.2f} | "
            f"~{r['full_mmlu_hours']:.1f} h | {100 * r['acc']:.1f} ± {100 * (r['acc_stderr'] or 0):.1f} |"
        )


if __name__ == "__main__":
    main()
