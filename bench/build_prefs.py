"""Time `empo build-prefs` on the shared ED subset and on a full-size synthetic ED.

The synthetic corpus has the full release's 24,850 dialogues (19,533 train / 2,770 valid / 2,547 test): the
subset's dialogues are copied, each copy under new conversation ids, and written in ED's raw format to a temporary
folder. Each measurement runs the real CLI (`empo build-prefs ...`) in a fresh subprocess and reads
that process's wall time and peak RSS (its VmHWM from /proc, Linux), so import time and everything else count.

    python bench/build_prefs.py                          # subset + full-size, opposite/distance/hard, 3 repetitions
    python bench/build_prefs.py --reps 5 --strategies opposite hard --corpora full

Prints a markdown table (the median over repetitions, and the min-max range), then how on-topic each strategy's
rejected responses are on the subset (the mean TF-IDF similarity that motivates `hard`).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FULL_SIZES = {"train": 19_533, "valid": 2_770, "test": 2_547}  # the full release: 24,850 dialogues


def make_full_size(subset: Path, dest: Path, sizes: dict[str, int] = FULL_SIZES) -> dict[str, int]:
    """Write a full-size ED to ``dest`` by re-identifying the subset's dialogues (raw format, same header)."""
    dest.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, target in sizes.items():
        lines = (subset / f"{split}.csv").read_text(encoding="utf-8").split("\n")
        header, rows = lines[0], [r for r in lines[1:] if r]
        dialogues: dict[str, list[list[str]]] = {}
        for r in rows:
            parts = r.split(",")
            dialogues.setdefault(parts[0], []).append(parts)
        originals = list(dialogues.values())
        out = [header]
        for n in range(target):
            copy, src = divmod(n, len(originals))
            for parts in originals[src]:
                out.append(",".join([f"hit:{copy}x{src}_conv:{n}", *parts[1:]]))
        (dest / f"{split}.csv").write_text("\n".join(out) + "\n", encoding="utf-8")
        counts[split] = target
    return counts


# The child records its own peak RSS (VmHWM) when it exits: ru_maxrss from wait4 would also count the memory of
# the forked copy of this (bigger) parent before exec.
_CHILD = """
import atexit, sys
def _peak():
    with open(sys.argv[1], "w") as f:
        f.write(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
atexit.register(_peak)
from empo.cli import app
app(sys.argv[2:], prog_name="empo")
"""


def run_once(data_dir: Path, strategy: str, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one build-prefs process."""
    peak, log = out.parent / "peak.txt", out.parent / "stderr.txt"
    cmd = [sys.executable, "-c", _CHILD, str(peak), "build-prefs", "--data-dir", str(data_dir)]
    cmd += ["--out", str(out), "--strategy", strategy, "--overwrite"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as err:
        t0 = time.perf_counter()
        status = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env).returncode
        wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"build-prefs failed ({' '.join(cmd[3:])}):\n{log.read_text()}")
    return wall, int(peak.read_text()) / 1024  # VmHWM is in KiB


def topic_similarity(data_dir: Path, out: Path, split: str = "train") -> tuple[float, float]:
    """Mean TF-IDF cosine between the topic (situation + user turns) of each pair's prompt dialogue and of its
    rejected response's dialogue, and the share of pairs whose two topics share a content word."""
    import numpy as np
    import polars as pl

    from empo.data.ed import read_ed
    from empo.prefs.build import make_items
    from empo.prefs.config import PrefsConfig
    from empo.prefs.text import tfidf_matrix

    frame = read_ed(data_dir, (split,)).frames[split]
    items, _, _ = make_items(frame, PrefsConfig(cuts="all"), None, with_topic=True)
    x = tfidf_matrix(items["topic"])
    key = items.select("conv_id", "cut", row=pl.col("a"))
    pairs = pl.read_parquet(
        out / f"{split}.parquet", columns=["conv_id", "cut", "rejected_conv_id", "rejected_cut"]
    )
    i = pairs.join(key, on=["conv_id", "cut"], maintain_order="left")["row"].to_numpy()
    j = (
        pairs.select(conv_id="rejected_conv_id", cut="rejected_cut")
        .join(key, on=["conv_id", "cut"], maintain_order="left")["row"]
        .to_numpy()
    )
    sim = np.asarray(x[i].multiply(x[j]).sum(axis=1)).ravel()
    return float(sim.mean()), float((sim > 0).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--subset",
        type=Path,
        default=None,
        help="the ED subset folder [default: $EMPO_DATA_DIR/empatheticdialogues]",
    )
    ap.add_argument("--strategies", nargs="+", default=["opposite", "distance", "hard"])
    ap.add_argument("--corpora", nargs="+", choices=["subset", "full"], default=["subset", "full"])
    ap.add_argument("--reps", type=int, default=3, help="repetitions per cell (median reported)")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO / "src"))
    from empo.paths import data_path

    subset = args.subset or data_path("empatheticdialogues")
    if not (subset / "train.csv").is_file():
        raise SystemExit(f"{subset}: no ED subset there; pass --subset or set EMPO_DATA_DIR")
    with tempfile.TemporaryDirectory(prefix="empo-bench-") as tmp:
        tmp_path = Path(tmp)
        corpora = {}
        if "subset" in args.corpora:
            corpora["subset (2,303 dialogues)"] = subset
        if "full" in args.corpora:
            counts = make_full_size(subset, tmp_path / "ed-full")
            corpora[f"full-size synthetic ({sum(counts.values()):,} dialogues)"] = tmp_path / "ed-full"
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python "
            f"{platform.python_version()}; {args.reps} repetition(s), median [min-max]\n"
        )
        similarity: dict[str, tuple[float, float]] = {}
        print("| corpus | strategy | wall s | peak RSS MiB |")
        print("|---|---|---|---|")
        for name, data_dir in corpora.items():
            for strategy in args.strategies:
                walls, rss = [], []
                for _ in range(args.reps):
                    w, m = run_once(data_dir, strategy, tmp_path / "out")
                    walls.append(w)
                    rss.append(m)
                print(
                    f"| {name} | {strategy} | {statistics.median(walls):.2f} [{min(walls):.2f}-{max(walls):.2f}] "
                    f"| {statistics.median(rss):.0f} [{min(rss):.0f}-{max(rss):.0f}] |",
                    flush=True,
                )
                if data_dir == subset:
                    similarity[strategy] = topic_similarity(subset, tmp_path / "out")
        if similarity:
            print("\nHow on-topic the rejected responses are (subset, train pairs; TF-IDF cosine of the two")
            print("dialogues' situation + user turns):\n")
            print("| strategy | mean topic similarity | pairs sharing a content word |")
            print("|---|---|---|")
            for strategy, (mean, share) in similarity.items():
                print(f"| {strategy} | {mean:.3f} | {share:.0%} |")


if __name__ == "__main__":
    main()
