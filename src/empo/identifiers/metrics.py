"""Scores of predicted empathy levels: accuracy, macro-F1 (level 1 is rare, so it matters), weighted F1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from empo.identifiers.data import LEVELS, MECHANISMS

# Accuracy of RoBERTa-base adapters on empo_splits/test.csv (302 pairs): the figure to match or beat.
ANCHOR_ACCURACY: dict[str, float] = {"ER": 0.851, "IP": 0.825, "EX": 0.937}


def score_levels(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 and weighted F1 over the three levels, per-level F1 and the confusion matrix.

    Macro-F1 averages the F1 of levels 0, 1 and 2 whether or not a level occurs (a level that is neither true nor
    predicted counts as F1 0, as scikit-learn does with ``labels=[0, 1, 2]`` and ``zero_division=0``).
    Plain numpy: it runs hundreds of times in the calibration search.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    k = len(LEVELS)
    conf = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)  # rows: true, columns: predicted
    tp = np.diag(conf).astype(np.float64)
    support = conf.sum(1).astype(np.float64)
    denom = support + conf.sum(0)  # 2 TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    n = len(y_true)
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
        "f1_per_level": [float(x) for x in f1],
        "confusion": conf.tolist(),
    }


def score_all(
    levels: Mapping[str, np.ndarray],
    predicted: Mapping[str, np.ndarray],
    mechanisms: tuple[str, ...] = MECHANISMS,
) -> dict[str, dict[str, Any]]:
    """``score_levels`` per mechanism, plus ``mean`` (the unweighted mean of accuracy and macro-F1)."""
    out: dict[str, dict[str, Any]] = {m: score_levels(levels[m], predicted[m]) for m in mechanisms}
    out["mean"] = {
        "accuracy": float(np.mean([out[m]["accuracy"] for m in mechanisms])),
        "macro_f1": float(np.mean([out[m]["macro_f1"] for m in mechanisms])),
    }
    return out


def selection_score(
    scores: Mapping[str, Mapping[str, Any]], metric: str, mechanisms: tuple[str, ...]
) -> float:
    """One number to select a checkpoint on: mean over mechanisms of accuracy, macro-F1, or their average."""
    if metric == "accuracy":
        vals = [scores[m]["accuracy"] for m in mechanisms]
    elif metric == "macro_f1":
        vals = [scores[m]["macro_f1"] for m in mechanisms]
    elif metric == "score":
        vals = [(scores[m]["accuracy"] + scores[m]["macro_f1"]) / 2 for m in mechanisms]
    else:
        raise ValueError(f"unknown selection metric {metric!r}")
    return float(np.mean(vals))
