"""Classification metrics as pure functions on arrays: top-k accuracy and macro-F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k_accuracy(probs: np.ndarray, gold: Sequence[int], k: int) -> float:
    """Share of rows whose gold label is among the ``k`` highest scores (ties broken by index order)."""
    probs = np.asarray(probs, dtype=float)
    gold_arr = np.asarray(gold, dtype=int)
    if len(gold_arr) == 0:
        return float("nan")
    # A stable sort on the negated scores keeps the lower index first among equal scores.
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == gold_arr[:, None]).any(axis=1).mean())


def macro_f1(pred: Sequence[int], gold: Sequence[int]) -> float:
    """Unweighted mean F1 over the classes that occur in ``gold`` or ``pred`` (scikit-learn's default)."""
    pred_arr = np.asarray(pred, dtype=int)
    gold_arr = np.asarray(gold, dtype=int)
    if len(gold_arr) == 0:
        return float("nan")
    scores = []
    for c in np.union1d(pred_arr, gold_arr):
        tp = int(((pred_arr == c) & (gold_arr == c)).sum())
        fp = int(((pred_arr == c) & (gold_arr != c)).sum())
        fn = int(((pred_arr != c) & (gold_arr == c)).sum())
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def classification_metrics(probs: np.ndarray, gold: Sequence[int]) -> dict[str, float]:
    """``n``, ``top1``, ``top3`` and ``macro_f1`` of probability rows against gold label ids."""
    probs = np.asarray(probs, dtype=float)
    pred = np.argmax(probs, axis=1) if len(probs) else np.zeros(0, dtype=int)
    return {
        "n": len(gold),
        "top1": top_k_accuracy(probs, gold, 1),
        "top3": top_k_accuracy(probs, gold, 3),
        "macro_f1": macro_f1(pred, gold),
    }
