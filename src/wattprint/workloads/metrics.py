"""Accuracy metrics beside energy: classification, regression and speech recognition
(word error rate), with NumPy and the standard library only."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "regression_metrics", "to_labels",
           "transcription_metrics", "word_error_rate", "words"]


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
    if not len(y):
        return {"accuracy": 0.0, "f1_macro": 0.0}
    right = p == y
    accuracy = float(np.mean(right))
    # Each class's counts in one pass (not a pass per class: 1,000 classes would be 1,000
    # passes), classes in sorted order. F1 = 2 tp / (2 tp + fp + fn), and 2 tp + fp + fn is
    # the class's labels and predictions together.
    values = np.concatenate((y, p))
    if values.dtype.kind in "iu" and values.min() >= 0 and values.max() < 2 * len(values) + 1024:
        # class numbers: their own index (as intp, which bincount takes from any integer type)
        y_index, p_index = y.astype(np.intp, copy=False), p.astype(np.intp, copy=False)
        size = int(values.max()) + 1
    else:
        classes, index = np.unique(values, return_inverse=True)
        y_index, p_index, size = index[:len(y)], index[len(y):], len(classes)
    tp = np.bincount(y_index[right], minlength=size)
    both = np.bincount(y_index, minlength=size) + np.bincount(p_index, minlength=size)
    present = both > 0  # the classes in the labels or the predictions
    f1 = (2 * tp[present]).astype(np.float64) / both[present]
    return {"accuracy": accuracy, "f1_macro": float(np.mean(f1))}


def regression_metrics(targets: Any, predictions: Any) -> dict[str, float]:
    """``rmse`` and ``mae``."""
    y = np.asarray(targets, dtype=float).reshape(-1)
    p = np.asarray(predictions, dtype=float).reshape(-1)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions for {len(y)} targets")
    err = p - y
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def words(text: str) -> list[str]:
    """The words WER compares: ``text`` lower-cased, every punctuation character (Unicode
    category ``P*``) removed (so ``"don't"`` is ``"dont"`` and ``"well-known"`` is
    ``"wellknown"``), split on whitespace."""
    kept = "".join(c for c in str(text).lower() if not unicodedata.category(c).startswith("P"))
    return kept.split()


def _edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance over words: the fewest substitutions, deletions and insertions
    that turn ``ref`` into ``hyp``."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def _errors(references: Iterable[Any], hypotheses: Iterable[Any]) -> tuple[int, int]:
    refs, hyps = [str(r) for r in references], [str(h) for h in hypotheses]
    if len(refs) != len(hyps):
        raise ValueError(f"{len(hyps)} transcripts for {len(refs)} references")
    errors = total = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        ref_words = words(ref)
        errors += _edit_distance(ref_words, words(hyp))
        total += len(ref_words)
    return errors, total


def word_error_rate(references: Iterable[Any], hypotheses: Iterable[Any]) -> float:
    """The corpus word error rate: word-level Levenshtein edits (substitutions + deletions +
    insertions) summed over all pairs, over the number of reference words summed (not a mean
    of per-pair rates). Words are compared as :func:`words` makes them (lower-cased,
    punctuation removed). 0 is perfect; insertions can take it above 1.

    Raises ``ValueError`` when the counts differ or the references have no words at all.
    """
    errors, total = _errors(references, hypotheses)
    if total == 0:
        raise ValueError("the references have no words: the word error rate is undefined")
    return errors / total


def transcription_metrics(references: Any, hypotheses: Any) -> dict[str, float]:
    """``wer`` (see :func:`word_error_rate`), ``word_errors`` and ``reference_words``."""
    errors, total = _errors(references, hypotheses)
    if total == 0:
        raise ValueError("the references have no words: the word error rate is undefined")
    return {"wer": errors / total, "word_errors": errors, "reference_words": total}
