"""Simulated labelled windows: the false alarm rate and power of the performance alarm.

Each window is drawn on its own, as a monitor would meet it over many champions:

* a champion with a true ROC AUC between 0.80 and 0.95 and a positive share between
  1 % and 10 % (log-uniform), whose scores follow a binormal model (negatives' latent
  score N(0, 1), positives' N(mu, s) with s in [1, 1.5], so AUC = Phi(mu / sqrt(1 + s^2)))
  turned into probabilities by the champion's calibration on its reference;
* its reference: a holdout of 2,000-20,000 rows (log-uniform) from the same law, on
  which the reference quality (ROC AUC with DeLong variance, accuracy) is measured;
* a window of 50-5,000 labelled rows (log-uniform) whose positives are separated less
  well by `true_drop` ROC AUC (0: a stable window), scored by the same calibration.

The window is judged by `judge_performance` (the confidence-bound rule) and by the rule
it replaces: ROC AUC below the reference's by more than 0.05, on windows of at least
100 labelled rows (`min_rows`) with both classes. Both rules see the same holdout
reference here; in production the old rule also measured the reference on training
rows, which made it raise even more false alarms.

`benchmarks/performance_alarm.py` prints the tables; the unit tests run a small draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import beta, norm

from mlops.drift.performance import (
    ROC_AUC,
    PerformanceVerdict,
    judge_performance,
    measure_performance,
)
from mlops.settings import DriftSettings

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SimulationSpec:
    """The laws windows, references and champions are drawn from."""

    rows: tuple[int, int] = (50, 5_000)
    """Labelled rows of a window (log-uniform)."""
    prevalence: tuple[float, float] = (0.01, 0.10)
    """Share of positives (log-uniform), the same in reference and window."""
    reference_rows: tuple[int, int] = (2_000, 20_000)
    """Rows of the reference holdout (log-uniform)."""
    reference_auc: tuple[float, float] = (0.80, 0.95)
    """The champion's true ROC AUC (uniform)."""
    positive_spread: tuple[float, float] = (1.0, 1.5)
    """Standard deviation of the positives' latent score (uniform; negatives' is 1)."""
    old_min_rows: int = 100
    """The old rule judged windows with at least this many labelled rows (`min_rows`)."""
    old_max_drop: float = 0.05
    """The old rule: degraded when the ROC AUC drop exceeds this."""


@dataclass(frozen=True)
class WindowOutcome:
    """One simulated window and what both rules said about it."""

    rows: int
    positives: int
    true_drop: float
    verdict: PerformanceVerdict
    degraded_metrics: tuple[str, ...]
    old_judged: bool
    old_alarm: bool

    @property
    def judged(self) -> bool:
        """The new rule reached a verdict (enough labels on both sides)."""
        return self.verdict in (PerformanceVerdict.STABLE, PerformanceVerdict.DEGRADED)

    @property
    def alarm(self) -> bool:
        """The new rule raised the performance alarm."""
        return self.verdict is PerformanceVerdict.DEGRADED

    @property
    def roc_auc_alarm(self) -> bool:
        """The new rule found the ROC AUC degraded."""
        return ROC_AUC in self.degraded_metrics


@dataclass(frozen=True)
class Rate:
    """Events among trials, with a two-sided Clopper-Pearson interval."""

    events: int
    trials: int
    low: float
    high: float

    @property
    def value(self) -> float:
        """The observed rate (NaN without trials)."""
        return self.events / self.trials if self.trials else math.nan


def clopper_pearson(events: int, trials: int, level: float = 0.95) -> Rate:
    """The exact (conservative) binomial interval of a rate."""
    tail = (1.0 - level) / 2.0
    low = 0.0 if events == 0 else float(beta.ppf(tail, events, trials - events + 1))
    high = 1.0 if events == trials else float(beta.ppf(1.0 - tail, events + 1, trials - events))
    return Rate(events=events, trials=trials, low=low, high=high)


def simulate_windows(
    n_windows: int,
    *,
    true_drop: float,
    settings: DriftSettings | None = None,
    spec: SimulationSpec | None = None,
    seed: int = 0,
) -> list[WindowOutcome]:
    """Draw `n_windows` independent windows whose true ROC AUC is `true_drop` below the
    reference's, and judge each with both rules (deterministic for a seed)."""
    settings = settings or DriftSettings()
    spec = spec or SimulationSpec()
    rng = np.random.default_rng(seed)
    outcomes = []
    for _ in range(n_windows):
        auc = rng.uniform(*spec.reference_auc)
        prevalence = _log_uniform(rng, spec.prevalence)
        spread = rng.uniform(*spec.positive_spread)
        rows = round(_log_uniform(rng, spec.rows))
        reference_rows = round(_log_uniform(rng, spec.reference_rows))
        scale = math.sqrt(1.0 + spread * spread)
        mu_reference = float(norm.ppf(auc)) * scale
        mu_window = float(norm.ppf(auc - true_drop)) * scale
        ref_latent, ref_labels = _draw(rng, reference_rows, prevalence, mu_reference, spread)
        win_latent, win_labels = _draw(rng, rows, prevalence, mu_window, spread)
        threshold = settings.decision_threshold
        reference = measure_performance(
            _calibrated(ref_latent, mu_reference, prevalence), ref_labels, threshold
        )
        current = measure_performance(
            _calibrated(win_latent, mu_reference, prevalence), win_labels, threshold
        )
        report = judge_performance(current, reference, settings)
        old_judged = (
            current.rows >= spec.old_min_rows
            and current.roc_auc is not None
            and reference.roc_auc is not None
        )
        old_alarm = bool(
            old_judged
            and reference.roc_auc is not None
            and current.roc_auc is not None
            and reference.roc_auc - current.roc_auc > spec.old_max_drop
        )
        outcomes.append(
            WindowOutcome(
                rows=rows,
                positives=current.positives,
                true_drop=true_drop,
                verdict=report.verdict,
                degraded_metrics=report.degraded_metrics,
                old_judged=old_judged,
                old_alarm=old_alarm,
            )
        )
    return outcomes


def alarm_rate(outcomes: Sequence[WindowOutcome], *, judged_only: bool = True) -> Rate:
    """The new rule's alarm rate (false alarm rate on stable windows, else power),
    among the windows it judged or among all."""
    pool = [o for o in outcomes if o.judged] if judged_only else list(outcomes)
    return clopper_pearson(sum(o.alarm for o in pool), len(pool))


def old_alarm_rate(outcomes: Sequence[WindowOutcome], *, judged_only: bool = True) -> Rate:
    """The same for the old fixed-threshold rule."""
    pool = [o for o in outcomes if o.old_judged] if judged_only else list(outcomes)
    return clopper_pearson(sum(o.old_alarm for o in pool), len(pool))


def _draw(
    rng: np.random.Generator, rows: int, prevalence: float, mu: float, spread: float
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    labels = (rng.random(rows) < prevalence).astype(np.int64)
    latent = rng.standard_normal(rows)
    latent = np.where(labels == 1, mu + spread * latent, latent)
    return latent, labels


def _calibrated(latent: FloatArray, mu: float, prevalence: float) -> FloatArray:
    """The champion's probabilities: the equal-variance posterior fitted on its reference
    (the window is scored the same way, whatever happened to its positives)."""
    log_odds = math.log(prevalence / (1.0 - prevalence)) + mu * latent - mu * mu / 2.0
    return 1.0 / (1.0 + np.exp(-log_odds))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))
