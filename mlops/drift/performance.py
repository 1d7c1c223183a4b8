"""Model quality on a window whose labels have arrived: ROC AUC and accuracy (binary)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy.stats import rankdata

from mlops.drift.errors import DriftInputError


class PerformanceMetrics(BaseModel):
    """Quality of predicted probabilities against true 0/1 labels."""

    model_config = ConfigDict(frozen=True)

    rows: int
    positives: int
    roc_auc: float | None
    """None when the labelled rows hold a single class (ROC AUC is undefined)."""
    accuracy: float


def labelled_rows(
    frame: pd.DataFrame, prediction: str, label: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Probabilities and 0/1 labels of the rows that have both.

    Raises:
        DriftInputError: a label is not 0/1, or a probability is outside [0, 1].
    """
    both = frame[[prediction, label]].dropna()
    probabilities = both[prediction].to_numpy(dtype=np.float64)
    raw_labels = both[label].to_numpy()
    labels = raw_labels.astype(np.int64)
    if not np.array_equal(labels, raw_labels) or not np.isin(labels, (0, 1)).all():
        raise DriftInputError(f"label column {label!r} must hold 0/1 values only")
    if probabilities.size and not ((probabilities >= 0.0) & (probabilities <= 1.0)).all():
        raise DriftInputError(f"prediction column {prediction!r} must hold probabilities in [0, 1]")
    return probabilities, labels


def measure_performance(
    probabilities: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    decision_threshold: float = 0.5,
) -> PerformanceMetrics:
    """ROC AUC (ties averaged, as scikit-learn) and accuracy at the decision threshold."""
    positives = int(labels.sum())
    negatives = int(labels.size - positives)
    roc_auc: float | None = None
    if positives and negatives:
        ranks = rankdata(probabilities)
        rank_sum = float(ranks[labels == 1].sum())
        roc_auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    predicted = (probabilities >= decision_threshold).astype(np.int64)
    accuracy = float((predicted == labels).mean()) if labels.size else float("nan")
    return PerformanceMetrics(
        rows=int(labels.size), positives=positives, roc_auc=roc_auc, accuracy=accuracy
    )
