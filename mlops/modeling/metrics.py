"""Classification metrics from label indices and probabilities, shared by every model.

One function computes them for the network, the logistic baseline and (later) the
quantized variants, so the quality gates compare like with like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import f1_score, roc_auc_score, roc_curve
from sklearn.metrics import log_loss as sk_log_loss

ECE_BINS = 15
_PROBA_FLOOR = 1e-7
"""Probabilities are clipped to [floor, 1] before log loss, as float32 softmax can reach 0."""


class Metrics(BaseModel):
    """Holdout quality of a classifier.

    roc_auc: binary, the second class of the label encoding is positive; multiclass,
    one-vs-rest macro average over classes present with both outcomes (NaN if none).
    f1: binary, of the positive class; multiclass, macro. ece: expected calibration error
    of the top-class confidence over 15 equal-width bins.
    """

    model_config = ConfigDict(frozen=True)

    accuracy: float
    roc_auc: float
    f1: float
    log_loss: float
    ece: float


@dataclass(frozen=True)
class RocCurve:
    """One ROC curve: for a binary task the positive class, else one class vs the rest."""

    label: str
    fpr: npt.NDArray[np.float64]
    tpr: npt.NDArray[np.float64]
    auc: float


def evaluate_proba(y_true: npt.ArrayLike, proba: npt.ArrayLike, n_bins: int = ECE_BINS) -> Metrics:
    """Metrics of probabilities [rows, classes] against true class indices.

    Raises:
        ValueError: shapes disagree, fewer than two classes, or no rows.
    """
    y, p = _checked(y_true, proba)
    predicted = p.argmax(axis=1)
    n_classes = p.shape[1]
    if n_classes == 2:
        f1 = f1_score(y, predicted, pos_label=1, average="binary", zero_division=0)
    else:
        f1 = f1_score(y, predicted, labels=list(range(n_classes)), average="macro", zero_division=0)
    clipped = np.clip(p, _PROBA_FLOOR, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return Metrics(
        accuracy=float(np.mean(predicted == y)),
        roc_auc=roc_auc(y, p),
        f1=float(f1),
        log_loss=float(sk_log_loss(y, clipped, labels=list(range(n_classes)))),
        ece=expected_calibration_error(y, p, n_bins),
    )


def roc_auc(y_true: npt.ArrayLike, proba: npt.ArrayLike) -> float:
    """ROC AUC (binary: second class positive; multiclass: one-vs-rest macro); NaN if undefined.

    Classes absent from `y_true` (or present alone) are skipped rather than failing, so a
    small validation slice still gives a number for early-stopping reports.
    """
    y, p = _checked(y_true, proba)
    columns = [1] if p.shape[1] == 2 else list(range(p.shape[1]))
    scores = [float(roc_auc_score(y == k, p[:, k])) for k in columns if 0 < np.sum(y == k) < len(y)]
    return float(np.mean(scores)) if scores else math.nan


def expected_calibration_error(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, n_bins: int = ECE_BINS
) -> float:
    """Sum over equal-width confidence bins of |accuracy - confidence| weighted by bin share.

    Bins are ``(k/n, (k+1)/n]`` on the top-class probability; the first also takes 0.
    """
    y, p = _checked(y_true, proba)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    gap = np.abs(
        np.bincount(bins, weights=correct, minlength=n_bins)
        - np.bincount(bins, weights=confidence, minlength=n_bins)
    )
    return float(gap.sum() / counts.sum())


def roc_curves(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, classes: tuple[int | str, ...]
) -> list[RocCurve]:
    """ROC points for plotting: one curve for binary, one per class (vs rest) otherwise."""
    y, p = _checked(y_true, proba)
    columns = [1] if p.shape[1] == 2 else list(range(p.shape[1]))
    curves = []
    for k in columns:
        positives = y == k
        if not 0 < positives.sum() < len(y):
            continue
        fpr, tpr, _ = roc_curve(positives, p[:, k])
        auc = float(roc_auc_score(positives, p[:, k]))
        curves.append(
            RocCurve(str(classes[k]), fpr.astype(np.float64), tpr.astype(np.float64), auc)
        )
    return curves


def _checked(
    y_true: npt.ArrayLike, proba: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"proba must be [rows, classes>=2], got shape {p.shape}")
    if y.shape != (p.shape[0],):
        raise ValueError(f"{y.shape} labels for {p.shape[0]} probability rows")
    if len(y) == 0:
        raise ValueError("no rows to evaluate")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"label indices must lie in [0, {p.shape[1]})")
    return y, p
