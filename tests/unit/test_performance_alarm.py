"""The performance alarm: DeLong variance, bounds, minimum labels, measured error rates."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.drift import (
    DriftSettings,
    PerformanceMetrics,
    PerformanceVerdict,
    judge_performance,
    measure_performance,
)
from mlops.drift.alarm_simulation import SimulationSpec, alarm_rate, simulate_windows
from mlops.drift.performance import delong_roc_auc, hanley_mcneil_variance, wilson_interval


def _brute_force_delong(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


def test_delong_matches_the_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    scores = np.round(rng.random(400) * 0.6 + labels * 0.3, 1)  # many ties
    auc, variance = delong_roc_auc(scores, labels)
    expected_auc, expected_var = _brute_force_delong(scores, labels)
    assert auc == pytest.approx(expected_auc)
    assert variance == pytest.approx(expected_var)
    assert delong_roc_auc(scores, np.zeros(400, dtype=np.int64)) == (None, None)


def test_hanley_mcneil_is_a_conservative_fallback_on_binormal_scores() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.random(20_000) < 0.05).astype(np.int64)
    scores = rng.standard_normal(20_000) + 1.5 * labels
    metrics = measure_performance(1 / (1 + np.exp(-scores)), labels)
    assert metrics.roc_auc is not None and metrics.roc_auc_variance is not None
    approx = hanley_mcneil_variance(metrics.roc_auc, metrics.positives, metrics.negatives)
    # its exponential model overstates a binormal AUC's variance: wider bounds, not false alarms
    assert metrics.roc_auc_variance < approx < 2.5 * metrics.roc_auc_variance


def test_wilson_bounds_with_continuity_correction_match_newcombe() -> None:
    low, high = wilson_interval(81, 263, 1.959964)
    assert (low, high) == pytest.approx((0.2535, 0.3682), abs=1e-4)  # Newcombe 1998, table I
    assert wilson_interval(0, 20, 1.959964) == pytest.approx((0.0, 0.2005), abs=1e-4)


def _metrics(rows: int, positives: int, auc: float, accuracy: float) -> PerformanceMetrics:
    return PerformanceMetrics(rows=rows, positives=positives, roc_auc=auc, accuracy=accuracy)


def test_few_labels_are_insufficient_never_an_alarm() -> None:
    reference = _metrics(10_000, 500, 0.92, 0.96)
    window = _metrics(400, 12, 0.55, 0.80)  # a huge drop, but 12 positives
    report = judge_performance(window, reference, DriftSettings())
    assert report.verdict is PerformanceVerdict.INSUFFICIENT_LABELS
    assert not report.degraded and report.drops == ()
    assert "insufficient labels" in report.summary and "12 positives" in report.summary


def test_a_drop_within_its_uncertainty_is_stable_and_a_clear_one_degrades() -> None:
    reference = _metrics(10_000, 500, 0.90, 0.96)
    noisy = judge_performance(_metrics(1_000, 40, 0.84, 0.96), reference, DriftSettings())
    assert noisy.verdict is PerformanceVerdict.STABLE  # 0.06 on 40 positives: chance
    auc = noisy.drop_of("roc_auc")
    assert auc is not None and auc.drop == pytest.approx(0.06) and auc.lower_bound < 0
    assert auc.alpha == pytest.approx(0.005)
    clear = judge_performance(_metrics(5_000, 400, 0.80, 0.96), reference, DriftSettings())
    assert clear.degraded and clear.degraded_metrics == ("roc_auc",)
    bound = clear.drop_of("roc_auc")
    assert bound is not None and 0.0 < bound.lower_bound < bound.drop == pytest.approx(0.10)
    tolerant = DriftSettings(max_roc_auc_drop=0.09)
    assert not judge_performance(_metrics(5_000, 400, 0.80, 0.96), reference, tolerant).degraded


def test_an_accuracy_drop_is_judged_too() -> None:
    reference = _metrics(10_000, 500, 0.90, 0.96)
    report = judge_performance(_metrics(5_000, 300, 0.90, 0.90), reference, DriftSettings())
    assert report.degraded_metrics == ("accuracy",)
    assert "degraded (accuracy)" in report.summary


def test_a_reference_with_too_few_labels_is_not_compared() -> None:
    report = judge_performance(
        _metrics(1_000, 100, 0.6, 0.9), _metrics(10, 5, 0.9, 0.9), DriftSettings()
    )
    assert report.verdict is PerformanceVerdict.NO_REFERENCE and not report.degraded


def test_false_alarm_rate_on_stable_windows_stays_below_alpha() -> None:
    settings = DriftSettings()
    outcomes = simulate_windows(300, true_drop=0.0, settings=settings, seed=7)
    rate = alarm_rate(outcomes)
    assert rate.trials >= 80  # enough windows were judged
    assert rate.value <= settings.performance_alpha + 0.02
    assert not any(o.alarm for o in outcomes if not o.judged)
    old = sum(o.old_alarm for o in outcomes) / max(1, sum(o.old_judged for o in outcomes))
    assert old > 0.05  # the fixed 0.05 rule it replaces alarms far more often


def test_power_at_a_large_drop_on_large_windows_is_high() -> None:
    spec = SimulationSpec(rows=(3_000, 5_000), prevalence=(0.05, 0.10))
    outcomes = simulate_windows(60, true_drop=0.10, spec=spec, seed=11)
    assert all(o.judged for o in outcomes)
    assert alarm_rate(outcomes).value >= 0.85
