"""The statistical tests, and the rule that picks one, as Evidently 0.7 does by default.

Evidently's `DataDriftPreset` picks a test per column from the reference size (after
dropping missing and infinite values), the column kind and the number of distinct
values in reference and current together (`evidently.legacy.calculations.stattests.
registry._get_default_stattest`):

| reference rows | kind | distinct values | method | threshold | drift when |
| --- | --- | --- | --- | --- | --- |
| <= 1000 | numeric | > 5 | Kolmogorov-Smirnov | 0.05 | p <= t |
| <= 1000 | numeric (3..5 values), categorical | > 2 | chi-square | 0.05 | p < t |
| <= 1000 | numeric, categorical | <= 2 | Z-test of proportions | 0.05 | p < t |
| > 1000 | numeric | > 5 | Wasserstein distance / reference std | 0.1 | d >= t |
| > 1000 | numeric (<= 5 values), categorical | any | Jensen-Shannon distance | 0.1 | d >= t |

The functions below compute the same numbers from what `ReferenceStats` keeps (sorted
values, value counts), with the same scipy calls or the same arithmetic, so the verdicts
match Evidently's column by column.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

from mlops.drift.columns import ColumnKind

SMALL_REFERENCE_ROWS = 1000
"""Evidently switches from p-value tests to distances above this many reference rows."""
FEW_NUMERIC_VALUES = 5
"""A numeric column with at most this many distinct values is tested as categories."""
BINARY_VALUES = 2
"""At most this many distinct values: the Z-test of proportions instead of chi-square."""

FloatArray = npt.NDArray[np.float64]
Counts = Mapping[Hashable, int]


class DriftMethod(StrEnum):
    """A drift test, named as in Evidently's registry."""

    KS = "ks"
    CHISQUARE = "chisquare"
    Z = "z"
    WASSERSTEIN = "wasserstein"
    JENSENSHANNON = "jensenshannon"

    @property
    def label(self) -> str:
        """Evidently's display name (what its report shows as the method)."""
        return _LABELS[self]

    @property
    def default_threshold(self) -> float:
        """The threshold Evidently uses when none is configured."""
        return 0.05 if self.is_p_value else 0.1

    @property
    def is_p_value(self) -> bool:
        """True for tests whose score is a p-value (small means drift)."""
        return self in (DriftMethod.KS, DriftMethod.CHISQUARE, DriftMethod.Z)

    def drifted(self, score: float, threshold: float) -> bool:
        """Evidently's verdict for a score; a NaN score never drifts."""
        if self is DriftMethod.KS:
            return bool(score <= threshold)
        if self.is_p_value:
            return bool(score < threshold)
        return bool(score >= threshold)


_LABELS = {
    DriftMethod.KS: "K-S p_value",
    DriftMethod.CHISQUARE: "chi-square p_value",
    DriftMethod.Z: "Z-test p_value",
    DriftMethod.WASSERSTEIN: "Wasserstein distance (normed)",
    DriftMethod.JENSENSHANNON: "Jensen-Shannon distance",
}


def select_method(kind: ColumnKind, reference_rows: int, n_values: int) -> DriftMethod:
    """Evidently's default test for a column.

    Args:
        kind: numeric or categorical.
        reference_rows: non-missing, finite reference values of the column.
        n_values: distinct values in reference and current together.
    """
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if kind is ColumnKind.NUMERIC and n_values > FEW_NUMERIC_VALUES:
            return DriftMethod.KS
        return DriftMethod.CHISQUARE if n_values > BINARY_VALUES else DriftMethod.Z
    if kind is ColumnKind.NUMERIC and n_values > FEW_NUMERIC_VALUES:
        return DriftMethod.WASSERSTEIN
    return DriftMethod.JENSENSHANNON


def ks_p_value(reference_sorted: FloatArray, current: FloatArray) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (scipy's `ks_2samp`, mode auto)."""
    return float(stats.ks_2samp(reference_sorted, current).pvalue)


def wasserstein_normed(
    reference_sorted: FloatArray, current_sorted: FloatArray, reference_std: float
) -> float:
    """First Wasserstein distance divided by the reference's std (at least 0.001).

    The arithmetic is scipy's `wasserstein_distance` minus the reference's sort, which
    is cached: a stable argsort of the two sorted runs merges them in linear time
    (timsort), and counting the reference's elements along the merged order gives its
    CDF exactly where scipy's `searchsorted` does (inside a run of equal values the
    counts differ, but the step width there is 0). Only the final sum differs: scipy
    takes a BLAS dot product, whose rounding depends on the BLAS thread count (and
    whose threads spin on a busy machine); a plain pairwise sum is deterministic and
    agrees to about 1e-15 relative.
    """
    combined = np.concatenate((reference_sorted, current_sorted))
    order = np.argsort(combined, kind="stable")
    all_values = combined[order]
    deltas = np.diff(all_values)
    u_counts = np.cumsum(order[:-1] < reference_sorted.size)
    v_counts = np.arange(1, combined.size) - u_counts
    u_cdf = u_counts / reference_sorted.size
    v_cdf = v_counts / current_sorted.size
    distance_value = float(np.add.reduce(np.abs(u_cdf - v_cdf) * deltas))
    return distance_value / max(reference_std, 0.001)


def chisquare_p_value(
    reference: Counts, reference_rows: int, current: Counts, current_rows: int
) -> float:
    """Chi-square goodness of fit of current counts to reference shares (scipy `chisquare`).

    A value absent from the reference gets an expected count of 0: the statistic is
    infinite and the p-value 0, as in Evidently.
    """
    keys = list(set(reference) | set(current))
    k_norm = current_rows / reference_rows
    f_exp = [reference.get(key, 0) * k_norm for key in keys]
    f_obs = [current.get(key, 0) for key in keys]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(f_obs, f_exp)[1])


def z_p_value(reference: Counts, reference_rows: int, current: Counts, current_rows: int) -> float:
    """Two-sided Z-test that the share of the smallest value is the same in both samples."""
    if len(reference) == 1 and len(current) == 1 and next(iter(reference)) == next(iter(current)):
        return 1.0
    first = _sorted_keys(set(reference) | set(current))[0]
    n1, n2 = reference_rows, current_rows
    p1 = float(n1 - reference.get(first, 0)) / n1
    p2 = float(n2 - current.get(first, 0)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_stat = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        return float(2 * (1 - stats.norm.cdf(np.abs(z_stat))))


def jensenshannon_distance(
    reference: Counts, reference_rows: int, current: Counts, current_rows: int
) -> float:
    """Jensen-Shannon distance (natural log) between the two value distributions."""
    keys = list(set(reference) | set(current))
    ref_share = np.array([reference.get(key, 0) / reference_rows for key in keys])
    cur_share = np.array([current.get(key, 0) / current_rows for key in keys])
    return float(distance.jensenshannon(ref_share, cur_share))


def score_counts(
    method: DriftMethod,
    reference: Counts,
    reference_rows: int,
    current: Counts,
    current_rows: int,
) -> float:
    """The score of a test that only needs value counts (chi-square, Z, Jensen-Shannon)."""
    if method is DriftMethod.CHISQUARE:
        return chisquare_p_value(reference, reference_rows, current, current_rows)
    if method is DriftMethod.Z:
        return z_p_value(reference, reference_rows, current, current_rows)
    if method is DriftMethod.JENSENSHANNON:
        return jensenshannon_distance(reference, reference_rows, current, current_rows)
    raise ValueError(f"{method} needs the values, not only their counts")


def _sorted_keys(keys: set[Hashable]) -> list[Hashable]:
    try:
        return sorted(keys)  # type: ignore[type-var]
    except TypeError:  # mixed types: Evidently fails here; order by type, then text
        return sorted(keys, key=_mixed_key)


def _mixed_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))
