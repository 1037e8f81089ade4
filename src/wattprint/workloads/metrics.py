"""Accuracy metrics beside energy: classification and regression, with NumPy only."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["classification_metrics", "regression_metrics", "to_labels"]


def to_labels(predictions: Any) -> np.ndarray:
    """Class indices from what a classifier returned: scores per class (argmax) or labels."""
    pred = np.asarray(predictions)
    if pred.ndim == 2 and pred.shape[1] > 1:
        return np.asarray(pred.argmax(axis=1))
    if pred.ndim == 2 and pred.shape[1] == 1:  # one score: a binary classifier
        pred = pred[:, 0]
        if np.issubdtype(pred.dtype, np.floating):
            return (pred > (0.5 if pred.min() >= 0 and pred.max() <= 1 else 0.0)).astype(int)
    return pred.reshape(-1)


def classification_metrics(labels: Any, predictions: Any) -> dict[str, float]:
    """``accuracy`` and ``f1_macro`` (the unweighted mean of per-class F1 over the classes
    present in the labels or the predictions)."""
    y = np.asarray(labels).reshape(-1)
    p = to_labels(predictions)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions for {len(y)} labels")
    accuracy = float(np.mean(p == y)) if len(y) else 0.0
    f1s = []
    for c in np.union1d(y, p):
        tp = float(np.sum((p == c) & (y == c)))
        fp = float(np.sum((p == c) & (y != c)))
        fn = float(np.sum((p != c) & (y == c)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"accuracy": accuracy, "f1_macro": float(np.mean(f1s)) if f1s else 0.0}


def regression_metrics(targets: Any, predictions: Any) -> dict[str, float]:
    """``rmse`` and ``mae``."""
    y = np.asarray(targets, dtype=float).reshape(-1)
    p = np.asarray(predictions, dtype=float).reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions for {len(y)} targets")
    err = p - y
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}
