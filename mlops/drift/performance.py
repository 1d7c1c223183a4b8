"""Model quality on a window whose labels have arrived, and whether it fell, with its uncertainty.

A window holds a few dozen to a few hundred labelled positives, so its ROC AUC moves by
0.05-0.2 by chance alone; a fixed threshold on the drop ("reference - window > 0.05")
therefore raises false alarms on small windows and misses real drops on none. Here the
drop of each metric is judged by its **one-sided lower confidence bound**:

* **ROC AUC**: the window's variance is DeLong's (the structural components of
  DeLong, DeLong & Clarke-Pearson 1988, computed in O(n log n) from midranks as in
  Sun & Xu 2014); the reference's own variance is added (it was measured on a finite
  holdout too: DeLong's when the reference stored it, else Hanley & McNeil's from its
  AUC and class counts). The samples are independent, so the variances add. The bound
  is taken on the logit scale, where an AUC near 1 is closer to normal (delta method:
  `var / (A (1 - A))^2`), and mapped back at the reference's AUC, so the report reads
  in ROC AUC points: `bound = A_ref - expit(logit A_ref - (logit A_ref - logit A_win
  - z * sd_logit))`. Measured, it gives more power than the raw scale at the same
  (lower than nominal) false alarm rate.
* **accuracy** (at the decision threshold): the reference's lower and the window's
  upper continuity-corrected Wilson bound (Newcombe 1998, method 4), each at half the
  metric's alpha; the drop's bound is their gap, valid by the union bound. Newcombe's
  hybrid interval for a difference (method 10/11) is tighter but measured liberal at the
  95-99 % accuracies of a rare-positive problem (2x its level at tolerance 0), so it
  would break the false alarm guarantee.

A metric is **degraded** when its bound exceeds its tolerance (`max_roc_auc_drop`,
`max_accuracy_drop`). The alarm is the union of both metrics, so each is judged at
`alpha / 2` (Bonferroni): on a stable window (no true drop) the false alarm rate is at
most `alpha` whatever the window size, and lower when the tolerance is above 0.

Defaults, and why (measured by `benchmarks/performance_alarm.py`, 6,000 stable windows
of 50-5,000 labelled rows, 1-10 % positives):

* `performance_alpha = 0.01`: a monitor judges many windows (hourly: 24 a day); at 0.05
  a stable model could trigger a retraining a day by chance, at 0.01 one in four days
  at most. The measured rate is far below either (DeLong on small windows and the
  Bonferroni split are conservative), which is why no margin is added on top.
* tolerances 0.0: the bound alone keeps false alarms below alpha, and any margin costs
  power on the small windows this monitor sees (the standard error of a drop is
  0.015-0.05). Raise `max_roc_auc_drop` (e.g. 0.01, about the seed-to-seed spread of a
  retrained model) when windows and holdout are large enough that real but tiny drops
  would otherwise trigger retrainings that cannot recover them.
* `min_positives = min_negatives = 30`: below that the DeLong variance is itself
  estimated from a handful of placements and the normal approximation of the AUC is
  poor; such a window could only flag drops of 0.15 or more anyway. Its verdict is
  "insufficient labels", never an alarm.

Caveat: the reference is one fixed holdout for the champion's whole life. The bound
accounts for its sampling error on average over holdouts (that is what the benchmark
measures); given one unluckily good holdout, the windows of that champion see a higher
rate. A larger holdout makes that effect smaller.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy.stats import norm, rankdata

from mlops.drift.errors import DriftInputError
from mlops.settings import DriftSettings

ROC_AUC = "roc_auc"
ACCURACY = "accuracy"
JUDGED_METRICS = (ROC_AUC, ACCURACY)
"""The metrics a window is judged on; each gets `alpha / len(JUDGED_METRICS)`."""


class PerformanceMetrics(BaseModel):
    """Quality of predicted probabilities against true 0/1 labels."""

    model_config = ConfigDict(frozen=True)

    rows: int
    positives: int
    roc_auc: float | None
    """None when the labelled rows hold a single class (ROC AUC is undefined)."""
    accuracy: float
    roc_auc_variance: float | None = None
    """DeLong variance of `roc_auc`; None when undefined (fewer than 2 rows of a class)
    or not measured (a value given by hand; Hanley-McNeil's is used then)."""

    @property
    def negatives(self) -> int:
        """Labelled rows of the negative class."""
        return self.rows - self.positives


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
    """ROC AUC (ties averaged, as scikit-learn) with its DeLong variance, and accuracy at
    the decision threshold."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    positives = int(labels.sum())
    roc_auc, variance = delong_roc_auc(probabilities, labels)
    predicted = (probabilities >= decision_threshold).astype(np.int64)
    accuracy = float((predicted == labels).mean()) if labels.size else float("nan")
    return PerformanceMetrics(
        rows=int(labels.size),
        positives=positives,
        roc_auc=roc_auc,
        accuracy=accuracy,
        roc_auc_variance=variance,
    )


def delong_roc_auc(
    probabilities: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> tuple[float | None, float | None]:
    """ROC AUC and its DeLong variance, in O(n log n) (Sun & Xu 2014).

    With m positives and n negatives, the midranks of the positives among all scores
    (`tz`) and among themselves (`tx`) give each positive's placement `(tz - tx) / n`
    (the share of negatives it outscores, ties counting half), and likewise for the
    negatives; the AUC is the mean placement and its variance is
    `var(V10) / m + var(V01) / n`.

    Returns:
        (None, None) with a single class; (auc, None) when a class has one row only.
    """
    is_positive = labels == 1
    m = int(is_positive.sum())
    n = int(labels.size - m)
    if m == 0 or n == 0:
        return None, None
    positive_scores = probabilities[is_positive]
    negative_scores = probabilities[~is_positive]
    tz = rankdata(np.concatenate([positive_scores, negative_scores]))
    tx = rankdata(positive_scores)
    ty = rankdata(negative_scores)
    v10 = (tz[:m] - tx) / n  # each positive: share of negatives below it
    v01 = 1.0 - (tz[m:] - ty) / m  # each negative: share of positives above it
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, None
    variance = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    return auc, variance


def hanley_mcneil_variance(auc: float, positives: int, negatives: int) -> float:
    """The variance of an AUC from its value and class counts alone (Hanley & McNeil 1982),
    for a reference that did not store its DeLong variance."""
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    numerator = (
        auc * (1.0 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    )
    return max(numerator, 0.0) / (positives * negatives)


def wilson_interval(successes: float, trials: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of a proportion at the normal quantile `z`, with continuity
    correction (Newcombe 1998, method 4): without it the difference interval below falls
    below its level at the 95-99 % accuracies of a rare-positive problem."""
    if trials == 0:
        return 0.0, 1.0
    n = trials
    p = successes / n
    z2 = z * z
    denominator = 2.0 * (n + z2)
    low = 0.0
    if p > 0.0:
        root = math.sqrt(max(z2 - 2.0 - 1.0 / n + 4.0 * p * (n * (1.0 - p) + 1.0), 0.0))
        low = max(0.0, (2.0 * n * p + z2 - 1.0 - z * root) / denominator)
    high = 1.0
    if p < 1.0:
        root = math.sqrt(max(z2 + 2.0 - 1.0 / n + 4.0 * p * (n * (1.0 - p) - 1.0), 0.0))
        high = min(1.0, (2.0 * n * p + z2 + 1.0 + z * root) / denominator)
    return low, high


class PerformanceVerdict(StrEnum):
    """The performance alarm's answer for one window."""

    STABLE = "stable"
    DEGRADED = "degraded"
    INSUFFICIENT_LABELS = "insufficient-labels"
    """Too few labelled positives or negatives in the window to judge: never an alarm."""
    NO_REFERENCE = "no-reference"
    """The reference has no (usable) quality to compare with."""


class MetricDrop(BaseModel):
    """How far one metric fell from the reference, with its one-sided lower bound."""

    model_config = ConfigDict(frozen=True)

    metric: str
    reference: float
    current: float
    drop: float
    """Reference minus window (positive: worse now): the point estimate."""
    lower_bound: float
    """The drop is at least this with confidence `1 - alpha`."""
    tolerance: float
    alpha: float
    """The error rate this metric is judged at (the window's `alpha` split over metrics)."""
    degraded: bool
    """Even the lower bound of the drop exceeds the tolerance."""


class PerformanceReport(BaseModel):
    """Model quality in the window (labelled rows only) against the reference's, judged
    with confidence bounds (see the module's docstring)."""

    model_config = ConfigDict(frozen=True)

    current: PerformanceMetrics
    reference: PerformanceMetrics | None
    verdict: PerformanceVerdict
    alpha: float
    min_positives: int
    min_negatives: int
    max_roc_auc_drop: float
    max_accuracy_drop: float
    drops: tuple[MetricDrop, ...] = ()
    """The judged metrics; empty unless the verdict is stable or degraded."""
    note: str = ""

    @property
    def degraded(self) -> bool:
        """True when a metric fell beyond its tolerance with confidence `1 - alpha`."""
        return self.verdict is PerformanceVerdict.DEGRADED

    @property
    def degraded_metrics(self) -> tuple[str, ...]:
        """The metrics whose drop is established."""
        return tuple(d.metric for d in self.drops if d.degraded)

    def drop_of(self, metric: str) -> MetricDrop | None:
        """The judgement of one metric, if it was judged."""
        return next((d for d in self.drops if d.metric == metric), None)

    @property
    def roc_auc_drop(self) -> float | None:
        """Reference ROC AUC minus the window's (positive: worse now), the estimate."""
        if self.reference is None or self.reference.roc_auc is None:
            return None
        if self.current.roc_auc is None:
            return None
        return self.reference.roc_auc - self.current.roc_auc

    @property
    def summary(self) -> str:
        """One line for people: verdict, counts, and each metric's drop with its bound."""
        counts = f"{self.current.positives:,} positives, {self.current.negatives:,} negatives"
        if self.verdict is PerformanceVerdict.INSUFFICIENT_LABELS:
            return (
                f"insufficient labels ({counts}; judged from {self.min_positives} positives "
                f"and {self.min_negatives} negatives)"
            )
        if self.verdict is PerformanceVerdict.NO_REFERENCE:
            return f"not judged ({counts}): {self.note}"
        parts = [
            f"{d.metric} {d.current:.4f} vs {d.reference:.4f}, drop {d.drop:+.4f} "
            f"(>= {d.lower_bound:+.4f} at {1 - d.alpha:.1%}, tolerance {d.tolerance:g})"
            for d in self.drops
        ]
        head = f"degraded ({', '.join(self.degraded_metrics)})" if self.degraded else "stable"
        return f"{head} on {counts}: " + "; ".join(parts)


def judge_performance(
    current: PerformanceMetrics,
    reference: PerformanceMetrics | None,
    settings: DriftSettings,
) -> PerformanceReport:
    """Whether the window's quality fell below the reference's beyond doubt.

    Args:
        current: the window's labelled quality (`measure_performance`).
        reference: the reference's (its holdout), or None.
        settings: `performance_alpha`, the tolerances and the minimum labels.

    Returns:
        A report whose verdict is `insufficient-labels` when the window has fewer than
        `min_positives` positives or `min_negatives` negatives, `no-reference` when the
        reference has no quality (or too few labels itself), else `degraded` when a
        metric's lower bound exceeds its tolerance, `stable` otherwise.
    """

    def report(
        verdict: PerformanceVerdict, drops: tuple[MetricDrop, ...] = (), note: str = ""
    ) -> PerformanceReport:
        return PerformanceReport(
            current=current,
            reference=reference,
            verdict=verdict,
            alpha=settings.performance_alpha,
            min_positives=settings.min_positives,
            min_negatives=settings.min_negatives,
            max_roc_auc_drop=settings.max_roc_auc_drop,
            max_accuracy_drop=settings.max_accuracy_drop,
            drops=drops,
            note=note,
        )

    if current.positives < settings.min_positives or current.negatives < settings.min_negatives:
        return report(PerformanceVerdict.INSUFFICIENT_LABELS)
    if reference is None:
        return report(PerformanceVerdict.NO_REFERENCE, note="the reference has no labelled quality")
    if reference.positives < settings.min_positives or reference.negatives < settings.min_negatives:
        note = (
            f"the reference has too few labels ({reference.positives} positives, "
            f"{reference.negatives} negatives)"
        )
        return report(PerformanceVerdict.NO_REFERENCE, note=note)
    share = settings.performance_alpha / len(JUDGED_METRICS)
    z = float(norm.ppf(1.0 - share))
    judged = (
        _roc_auc_drop(current, reference, z, settings.max_roc_auc_drop, share),
        _accuracy_drop(current, reference, settings.max_accuracy_drop, share),
    )
    drops = tuple(d for d in judged if d is not None)
    degraded = any(d.degraded for d in drops)
    return report(PerformanceVerdict.DEGRADED if degraded else PerformanceVerdict.STABLE, drops)


def roc_auc_variance(metrics: PerformanceMetrics) -> float | None:
    """DeLong's variance when measured, else Hanley-McNeil's; None without an AUC."""
    if metrics.roc_auc is None:
        return None
    if metrics.roc_auc_variance is not None:
        return metrics.roc_auc_variance
    if metrics.positives < 1 or metrics.negatives < 1:
        return None
    return hanley_mcneil_variance(metrics.roc_auc, metrics.positives, metrics.negatives)


def _roc_auc_drop(
    current: PerformanceMetrics,
    reference: PerformanceMetrics,
    z: float,
    tolerance: float,
    alpha: float,
) -> MetricDrop | None:
    current_var = roc_auc_variance(current)
    reference_var = roc_auc_variance(reference)
    if current.roc_auc is None or reference.roc_auc is None:
        return None
    if current_var is None or reference_var is None:
        return None
    drop = reference.roc_auc - current.roc_auc
    bound = drop - z * math.sqrt(current_var + reference_var)
    if 0.0 < current.roc_auc < 1.0 and 0.0 < reference.roc_auc < 1.0:
        ref_logit, cur_logit = _logit(reference.roc_auc), _logit(current.roc_auc)
        spread = math.sqrt(
            reference_var / (reference.roc_auc * (1.0 - reference.roc_auc)) ** 2
            + current_var / (current.roc_auc * (1.0 - current.roc_auc)) ** 2
        )
        logit_bound = ref_logit - cur_logit - z * spread
        bound = reference.roc_auc - _expit(ref_logit - logit_bound)
    return MetricDrop(
        metric=ROC_AUC,
        reference=reference.roc_auc,
        current=current.roc_auc,
        drop=drop,
        lower_bound=bound,
        tolerance=tolerance,
        alpha=alpha,
        degraded=bound > tolerance,
    )


def _accuracy_drop(
    current: PerformanceMetrics,
    reference: PerformanceMetrics,
    tolerance: float,
    alpha: float,
) -> MetricDrop | None:
    if current.rows == 0 or reference.rows == 0 or math.isnan(current.accuracy):
        return None
    # each side's one-sided bound at alpha / 2: the gap between them is a valid bound of
    # the drop at alpha (Newcombe's sqrt-of-squares combination is liberal here)
    side_z = float(norm.ppf(1.0 - alpha / 2.0))
    reference_low, _ = wilson_interval(reference.accuracy * reference.rows, reference.rows, side_z)
    _, current_high = wilson_interval(current.accuracy * current.rows, current.rows, side_z)
    drop = reference.accuracy - current.accuracy
    bound = reference_low - current_high
    return MetricDrop(
        metric=ACCURACY,
        reference=reference.accuracy,
        current=current.accuracy,
        drop=drop,
        lower_bound=bound,
        tolerance=tolerance,
        alpha=alpha,
        degraded=bound > tolerance,
    )


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
