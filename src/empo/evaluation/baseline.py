"""Compute a BERTScore rescaling baseline (and check which layer to use) for a model bert-score has no table for.

bert-score's baselines are the mean P/R/F of RANDOM sentence pairs from a monolingual corpus, per layer, in a CSV
``LAYER,P,R,F`` (row k = layer k, row 0 = the embeddings). Rescaled scores are ``(s - b) / (1 - b)``, so unrelated
pairs land near 0 and differences become readable. empo does the same on EmpatheticDialogues utterances (the domain
it scores), pairing utterances of the train split at random with a fixed seed.

It also reports, per layer, how well F1 separates paraphrase pairs (ED situations and their paraphrases, from
``ed_situations``) from pairs of different situations with the SAME emotion (a hard negative): the ROC AUC. That is
how :data:`empo.evaluation.bertscore.MINILM_LAYER` was chosen (bert-score chose its layers by correlation with
human judgements, which we do not have offline).

Run: ``python -m empo.evaluation.baseline --model minilm --out src/empo/resources/bertscore/all-MiniLM-L6-v2.csv``
"""

from __future__ import annotations

import argparse
import csv
import random
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from empo.log import get_logger

log = get_logger(__name__)


def all_layer_scores(
    model: str, num_layers: int, cands: Sequence[str], refs: Sequence[str], batch_size: int = 64
) -> np.ndarray:
    """BERTScore of each pair at EVERY layer: an array (num_layers + 1, n, 3) of P, R, F (layer 0: embeddings)."""
    from bert_score import BERTScorer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scorer = BERTScorer(
            model_type=model, num_layers=num_layers, all_layers=True, lang="en", batch_size=batch_size
        )
    if scorer._tokenizer.model_max_length > 512:
        scorer._tokenizer.model_max_length = 512
    p, r, f = scorer.score(list(cands), list(refs), batch_size=batch_size)
    return np.stack([p.numpy(), r.numpy(), f.numpy()], axis=-1).astype(np.float64)


def random_pairs(sentences: Sequence[str], n_pairs: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n_pairs`` (candidate, reference) pairs of two different sentences drawn at random with ``seed``."""
    if len(sentences) < 2:
        raise ValueError("need at least two sentences")
    rng = random.Random(seed)
    cands, refs = [], []
    for _ in range(n_pairs):
        i, j = rng.sample(range(len(sentences)), 2)
        cands.append(sentences[i])
        refs.append(sentences[j])
    return cands, refs


def baseline_rows(scores: np.ndarray) -> list[tuple[int, float, float, float]]:
    """Mean P, R, F per layer of an (L + 1, n, 3) score array: bert-score's baseline rows."""
    means = scores.mean(axis=1)
    return [(k, float(p), float(r), float(f)) for k, (p, r, f) in enumerate(means)]


def write_baseline(path: Path, rows: Sequence[tuple[int, float, float, float]]) -> None:
    """Write rows in bert-score's baseline format (``LAYER,P,R,F``), which ``BERTScorer(baseline_path=)`` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["LAYER", "P", "R", "F"])
        for k, p, r, fv in rows:
            w.writerow([k, f"{p:.6f}", f"{r:.6f}", f"{fv:.6f}"])


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half (the Mann-Whitney AUC)."""
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def ed_utterances(ed_dir: str | Path | None, split: str = "train") -> list[str]:
    from empo.data.ed import load_ed

    seen: dict[str, None] = {}
    for d in load_ed(ed_dir, splits=(split,))[split]:
        for t in d.turns:
            if t.text.strip():
                seen.setdefault(t.text.strip(), None)
    return list(seen)


def paraphrase_pairs(
    situations_csv: Path, n: int, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(text, its paraphrase) positives and (text, paraphrase of another situation with the same emotion)
    negatives, ``n`` of each, from an ed_situations CSV (``text,aug_text,label``)."""
    rows: list[tuple[str, str, str]] = []
    with Path(situations_csv).open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["text"].strip() and row["aug_text"].strip():
                rows.append((row["text"].strip(), row["aug_text"].strip(), row["label"]))
    rng = random.Random(seed)
    rng.shuffle(rows)
    by_label: dict[str, list[int]] = {}
    for i, (_, _, lab) in enumerate(rows):
        by_label.setdefault(lab, []).append(i)
    pos, neg = [], []
    for i, (text, aug, lab) in enumerate(rows[:n]):
        others = [j for j in by_label[lab] if j != i]
        if not others:
            continue
        pos.append((text, aug))
        neg.append((text, rows[rng.choice(others)][1]))
    return pos, neg


def main(argv: Sequence[str] | None = None) -> None:
    from empo.evaluation.bertscore import MINILM, num_hidden_layers, resolve_bertscore
    from empo.log import setup_logging
    from empo.paths import data_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=MINILM, help="minilm, a local folder or a hub name")
    ap.add_argument("--ed-dir", default=None, help="ED folder [default: the data root's]")
    ap.add_argument("--pairs", type=int, default=4000, help="random pairs for the baseline")
    ap.add_argument(
        "--paraphrases", type=int, default=1000, help="pairs of each kind for the layer check (0: skip)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, required=True, help="baseline CSV to write")
    args = ap.parse_args(argv)
    setup_logging()

    spec = resolve_bertscore(args.model, layer=0)
    n_layers = num_hidden_layers(spec.model)
    if n_layers is None:
        raise SystemExit(f"cannot tell the number of layers of {spec.model}")
    sentences = ed_utterances(args.ed_dir)
    cands, refs = random_pairs(sentences, args.pairs, args.seed)
    log.info(
        "baseline: %d random pairs of %d ED train utterances, %d layers", len(cands), len(sentences), n_layers
    )
    rows = baseline_rows(all_layer_scores(spec.model, n_layers, cands, refs, args.batch_size))
    write_baseline(args.out, rows)
    for k, p, r, f in rows:
        log.info("layer %d: baseline P %.4f R %.4f F %.4f", k, p, r, f)
    situations = data_path("ed_situations", "test.csv")
    if args.paraphrases and situations.is_file():
        pos, neg = paraphrase_pairs(situations, args.paraphrases, args.seed)
        sp = all_layer_scores(spec.model, n_layers, [a for a, _ in pos], [b for _, b in pos], args.batch_size)
        sn = all_layer_scores(spec.model, n_layers, [a for a, _ in neg], [b for _, b in neg], args.batch_size)
        for k in range(n_layers + 1):
            log.info(
                "layer %d: paraphrase-vs-same-emotion AUC (F1) %.4f; raw F1 %.3f vs %.3f",
                k,
                roc_auc(sp[k, :, 2], sn[k, :, 2]),
                sp[k, :, 2].mean(),
                sn[k, :, 2].mean(),
            )
    log.info("wrote %s", args.out)


if __name__ == "__main__":  # pragma: no cover
    main()
