"""Measure HEF's plug-in on the shared ED test dialogues: responses and the LLM's own emotion accuracy.

1. `empo generate` without and with `--plugin hef` (same model, greedy, same dialogues), then `empo eval` on
   both (diff-Epitome, Emp-F1 when the empathy identifiers exist, BERTScore, length...). Each is the real CLI in
   a subprocess.
2. The LLM's own emotion accuracy: for each dialogue it is asked which of the 32 ED emotions the speaker feels
   (`empo.sem.emotion_qa`), without and with the plug-in's hint (top-k emotions first, cause words) in the
   system message; answers are parsed robustly (labels and their common synonyms). The classifier's own top-1/
   top-k on the same contexts are printed beside it, with how often the LLM picked one of the hinted emotions.

    python bench/hef.py                                    # SmolLM2-135M, the first 64 test dialogues
    python bench/hef.py --limit 237 --out runs/bench-hef   # all shared test dialogues
    python bench/hef.py --steps qa                         # only the emotion-accuracy part
    python bench/hef.py --steps eval                       # re-score the GEN files already in --out

Writes OUT/base.jsonl, OUT/hef.jsonl, OUT/eval/ (empo eval's output), OUT/emotion_qa.jsonl and OUT/summary.json,
and prints markdown tables. Identifiers are never trained here (`--no-train-identifiers`): without the cached
default identifiers, `empo eval` skips diff-Epitome and Emp-F1 and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cli import REPO, run_cli


def emotion_accuracy(args: argparse.Namespace, out: Path) -> dict:
    """Ask the LLM for the emotion with and without the HEF hint; score against the dialogue's gold label."""
    import numpy as np

    from empo.data.ed import EMOTIONS
    from empo.generate.core import generate_texts, records_from_ed
    from empo.models.resolve import load_causal_lm, load_tokenizer, resolve_model
    from empo.sem.emotion_qa import parse_emotion, question_messages
    from empo.sem.hef import HEFPlugin, context_text, hint_text
    from empo.sem.model import get_classifier

    records = records_from_ed(None, "test", limit=args.limit, system_prompt="")
    clf = get_classifier(args.classifier)
    plugin = HEFPlugin(classifier=clf, k=args.k, n_cause=args.n_cause)
    found = plugin.analyse([context_text(r["context"]) for r in records])
    labels = sorted(EMOTIONS)
    plain = [question_messages(r["context"], labels) for r in records]
    hinted = [
        question_messages(
            r["context"],
            labels,
            hint=hint_text(
                [(e["emotion"], e["prob"]) for e in f["top_k"]], [w["word"] for w in f["cause_words"]]
            ),
        )
        for r, f in zip(records, found, strict=True)
    ]
    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved, padding_side="left")
    model = load_causal_lm(resolved, merge_adapter=True)
    t0 = time.perf_counter()
    answers = {}
    for name, convs in (("plain", plain), ("hef", hinted)):
        res = generate_texts(model, tok, convs, max_new_tokens=8, batch_size=args.batch_size)
        answers[name] = res.texts
    seconds = time.perf_counter() - t0
    gold = [r["emotion"] for r in records]
    rows, summary = [], {"n": len(records), "seconds": round(seconds, 1)}
    for name in ("plain", "hef"):
        parsed = [parse_emotion(a, labels) for a in answers[name]]
        summary[f"llm_{name}_accuracy"] = float(np.mean([p == g for p, g in zip(parsed, gold, strict=True)]))
        summary[f"llm_{name}_unparsed"] = float(np.mean([p is None for p in parsed]))
        hinted_sets = [{e["emotion"] for e in f["top_k"]} for f in found]
        summary[f"llm_{name}_in_hint"] = float(
            np.mean([p in s for p, s in zip(parsed, hinted_sets, strict=True)])
        )
        summary[f"llm_{name}_is_top1"] = float(
            np.mean([p == f["top_k"][0]["emotion"] for p, f in zip(parsed, found, strict=True)])
        )
        for i, (a, p) in enumerate(zip(answers[name], parsed, strict=True)):
            if len(rows) <= i:
                rows.append({"conv_id": records[i]["conv_id"], "gold": gold[i], "hef": found[i]})
            rows[i][f"{name}_answer"] = a
            rows[i][f"{name}_parsed"] = p
    summary["classifier_top1"] = float(
        np.mean([f["top_k"][0]["emotion"] == g for f, g in zip(found, gold, strict=True)])
    )
    summary[f"classifier_top{args.k}"] = float(
        np.mean([g in {e["emotion"] for e in f["top_k"]} for f, g in zip(found, gold, strict=True)])
    )
    with open(out / "emotion_qa.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=64, help="first N shared ED test dialogues (237 in all)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-hef")
    ap.add_argument("--classifier", default=None, help="classifier folder (default: the cached default)")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--n-cause", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--identifiers", default=None, help="identifiers folder (default: the cached default)")
    ap.add_argument(
        "--steps",
        default="generate,eval,qa",
        help="comma-separated: generate (both GEN files), eval (empo eval on them), qa (emotion accuracy)",
    )
    args = ap.parse_args()
    steps = set(args.steps.split(","))
    unknown = steps - {"generate", "eval", "qa"}
    if unknown:
        ap.error(f"unknown step(s): {', '.join(sorted(unknown))}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "model": args.model,
        "limit": args.limit,
        "k": args.k,
        "n_cause": args.n_cause,
        "max_new_tokens": args.max_new_tokens,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    from empo.sem.model import default_classifier_dir, get_classifier

    clf_dir = Path(args.classifier) if args.classifier else default_classifier_dir()
    get_classifier(args.classifier)  # trains the default classifier on first need, before timing anything
    metrics_file = clf_dir / "metrics.json"
    summary["classifier"] = {
        "dir": str(clf_dir),
        "metrics": json.loads(metrics_file.read_text()) if metrics_file.is_file() else None,
    }

    if "generate" in steps:
        common = ["generate", "--model", args.model, "--split", "test", "--limit", str(args.limit),
                  "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.batch_size), "--overwrite"]  # fmt: skip
        summary["generate_seconds"] = {"base": run_cli([*common, "--out", str(out / "base.jsonl")])}
        hef_opts = [
            "--plugin", "hef",
            "--set", f"generate.plugin_options.k={args.k}",
            "--set", f"generate.plugin_options.n_cause={args.n_cause}",
        ]  # fmt: skip
        if args.classifier:
            hef_opts += ["--set", f"generate.plugin_options.classifier={args.classifier}"]
        summary["generate_seconds"]["hef"] = run_cli([*common, *hef_opts, "--out", str(out / "hef.jsonl")])
    if "eval" in steps:
        ev = ["eval", str(out / "base.jsonl"), str(out / "hef.jsonl"), "--out", str(out / "eval"),
              "--no-train-identifiers", "--no-per-emotion"]  # fmt: skip
        if args.identifiers:
            ev += ["--identifiers", args.identifiers]
        summary["eval_seconds"] = run_cli(ev)
        summary_file = out / "eval" / "summary.json"
        if summary_file.is_file():
            summary["eval"] = json.loads(summary_file.read_text())
        comparison = out / "eval" / "comparison.md"
        if comparison.is_file():
            print(comparison.read_text())

    if "qa" in steps:
        qa = emotion_accuracy(args, out)
        summary["emotion_qa"] = qa
        print(f"\nLLM emotion accuracy ({args.model}, {qa['n']} shared ED test dialogues, 32-way):\n")
        print(
            "| prompt | LLM accuracy | unparsed | LLM answer in the hint's top-k | LLM answer = classifier top-1 |"
        )
        print("|---|---|---|---|---|")
        for name, title in (("plain", "plain question"), ("hef", f"+ HEF hint (top-{args.k}, cause words)")):
            print(
                f"| {title} | {qa[f'llm_{name}_accuracy']:.3f} | {qa[f'llm_{name}_unparsed']:.3f} | "
                f"{qa[f'llm_{name}_in_hint']:.3f} | {qa[f'llm_{name}_is_top1']:.3f} |"
            )
        print(
            f"\nclassifier alone on the same contexts: top-1 {qa['classifier_top1']:.3f}, "
            f"top-{args.k} {qa[f'classifier_top{args.k}']:.3f}"
        )
    previous = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    summary = {**previous, **summary}  # a partial run (--steps) keeps the other steps' results
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
