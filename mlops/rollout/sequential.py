"""An always-valid sequential test of "is the challenger better than the champion?".

The rollout looks at its evidence again and again (every flow run, for hours or days),
so a fixed-horizon test peeked at every look would promote a model that is no better
far more often than its nominal alpha. This module uses a **mixture sequential
probability ratio test** (mSPRT; Robbins 1970, Johari, Pekelis & Walsh, "Always valid
inference", 2017 / 2022) on the difference of mean per-prediction loss, whose p-values
stay valid at every look: by Ville's inequality, the probability that the mixture
likelihood ratio *ever* reaches 1/alpha under the null is at most alpha.

Metric: **log loss** of each labelled prediction, `-log(p)` for a positive label and
`-log(1 - p)` for a negative one (scores clipped to [1e-4, 1 - 1e-4]). It is a proper
scoring rule, sensitive to calibration and to ranking, and much more sensitive per
label than accuracy (a random-weights model is spotted in a few dozen labels). The
effect is `delta = E[loss(champion)] - E[loss(challenger)]`: positive when the
challenger is better.

Evidence comes in two shapes, combined in one statistic:

- *paired*: in shadow, both models score the same request, so the per-request
  difference `loss(champion) - loss(challenger)` removes most of the noise;
- *unpaired*: in the canary stages each request is answered by one model, so the two
  arms are independent samples (Welch-style variance, any allocation ratio).

Each component is a Gaussian estimate with a known (plug-in) variance `V`; with
`S = estimate / V` and information `I = 1 / V` the score `S` is a Brownian motion with
drift `delta` in information time (the canonical joint distribution of Jennison &
Turnbull; it holds for a difference of means under any allocation ratio). Independent
components add: `S = S_paired + S_unpaired`, `I = I_paired + I_unpaired`. The one-sided
mixture over `theta > 0` with a half-normal prior of scale `tau` gives

    Lambda+ = 2 (1 + r)^-1/2 exp(r z^2 / (2 (1 + r))) Phi(z sqrt(r / (1 + r)))

with `z = estimate / sqrt(V)` and `r = tau^2 / V`; `Lambda-` is the same with `-z`.
Each is a (super)martingale under its one-sided null (`delta <= 0` for "better",
`delta >= 0` for "worse"), so PROMOTE when `Lambda+ >= 1/alpha` has false-promotion
probability at most alpha however often one looks, and likewise ROLLBACK.

Validity is asymptotic in two known ways, both checked by the A/A simulation
(`mlops.rollout.simulation`):
the variance is estimated from the data (plug-in, as in Johari et al.), and losses are
skewed, so the normal approximation needs a few hundred labels (`min_labels`) and each
unpaired arm at least `MIN_ARM_SAMPLES`. Requests of one entity are routed together
(sticky routing) and treated as independent: with many entities and few requests per
entity this is harmless; with a few heavy entities the test is optimistic.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from scipy.special import log_ndtr

FloatArray = npt.NDArray[np.float64]

PROBABILITY_CLIP = 1e-4
"""Scores are clipped to [clip, 1 - clip] before the log loss (a bound of 9.2 nats)."""
DEFAULT_TAU = 0.02
"""Scale of the half-normal mixture over the effect, in nats of log loss per prediction.

The mSPRT is most powerful for effects near the mixture's scale; 0.02 nats is a modest
improvement for a classifier whose log loss is around 0.1 to 0.3, while large effects
(a broken model) are caught anyway within a few dozen labels."""
MIN_ARM_SAMPLES = 30
"""An unpaired arm needs this many labelled predictions before its variance is trusted."""
VARIANCE_PRIOR_WEIGHT = 100.0
"""Pseudo-observations with which each unpaired arm's variance is shrunk toward the other's.

Log loss is right-skewed (rare large losses on missed frauds): a small arm's sample
variance is underestimated exactly when its mean is (no large loss seen yet), which
makes the plain Welch plug-in optimistic about a small challenger arm (4.7 % false
promotions at alpha 5 % in an unpaired A/A simulation). Shrinking toward the other
arm's variance brings that to about 2 % for a few points of power."""
LOG_2 = math.log(2.0)


class TestDecision(StrEnum):
    """What the sequential test says at one look."""

    __test__ = False  # not a pytest class, despite the name

    PROMOTE = "promote"
    ROLLBACK = "rollback"
    CONTINUE = "continue"


class Moments(BaseModel):
    """Sufficient statistics of a sample of per-prediction values: count, sum, sum of squares."""

    model_config = ConfigDict(frozen=True)

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @classmethod
    def of(cls, values: npt.ArrayLike) -> Moments:
        """The moments of an array of values (NaNs are not expected: drop them first)."""
        array = np.asarray(values, dtype=np.float64)
        return cls(n=int(array.size), total=float(array.sum()), total_sq=float(array @ array))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Unbiased sample variance (NaN below two values)."""
        if self.n < 2:
            return math.nan
        return max(self.total_sq - self.total * self.total / self.n, 0.0) / (self.n - 1)


class MetricEvidence(BaseModel):
    """Per-prediction losses reduced to what the test needs (see the module docstring).

    `paired` holds `loss(champion) - loss(challenger)` on requests both models scored
    (shadow); `challenger` and `champion` hold the losses of requests only one of them
    scored. A request is in exactly one of the three, so the components are independent.
    """

    model_config = ConfigDict(frozen=True)

    paired: Moments = Moments()
    challenger: Moments = Moments()
    champion: Moments = Moments()

    @property
    def challenger_labelled(self) -> int:
        """Labelled predictions of the challenger, paired or not."""
        return self.paired.n + self.challenger.n


class SequentialResult(BaseModel):
    """The test's verdict at one look, with the numbers behind it."""

    model_config = ConfigDict(frozen=True)

    decision: TestDecision
    estimate: float | None
    """Estimated loss(champion) - loss(challenger); positive: the challenger is better."""
    std_error: float | None
    z: float | None
    p_better: float
    """Always-valid one-sided p-value of "the challenger is not better"."""
    p_worse: float
    """Always-valid one-sided p-value of "the challenger is not worse"."""
    alpha: float
    tau: float
    n_paired: int
    n_challenger: int
    n_champion: int


def log_loss(scores: npt.ArrayLike, labels: npt.ArrayLike) -> FloatArray:
    """Per-prediction log loss of positive-class probabilities (clipped, in nats)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    y = np.asarray(labels, dtype=np.float64)
    result: FloatArray = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return result


def mixture_log_lr(
    estimate: npt.ArrayLike, variance: npt.ArrayLike, tau: float
) -> tuple[FloatArray, FloatArray]:
    """Log mixture likelihood ratios for "better" (delta > 0) and "worse" (delta < 0).

    Vectorised over any array shape. Where the variance is not positive and finite there
    is no evidence: both log ratios are -inf (p-values of 1).
    """
    est = np.asarray(estimate, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    valid = np.isfinite(var) & (var > 0.0) & np.isfinite(est)
    safe_var = np.where(valid, var, 1.0)
    z = np.where(valid, est, 0.0) / np.sqrt(safe_var)
    r = tau * tau / safe_var
    shrink = r / (1.0 + r)
    common = LOG_2 - 0.5 * np.log1p(r) + 0.5 * shrink * z * z
    scaled = z * np.sqrt(shrink)
    better = np.where(valid, common + log_ndtr(scaled), -np.inf)
    worse = np.where(valid, common + log_ndtr(-scaled), -np.inf)
    return better, worse


def combine(
    paired_n: npt.ArrayLike,
    paired_mean: npt.ArrayLike,
    paired_var: npt.ArrayLike,
    chall_n: npt.ArrayLike,
    chall_mean: npt.ArrayLike,
    chall_var: npt.ArrayLike,
    champ_n: npt.ArrayLike,
    champ_mean: npt.ArrayLike,
    champ_var: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """Inverse-variance combination of the paired and unpaired estimates (vectorised).

    Returns the estimate of delta and its variance (NaN and inf when there is none).
    A paired component needs two values with a positive variance; an unpaired one
    needs `MIN_ARM_SAMPLES` in each arm, and each arm's variance is shrunk toward the
    other's (`VARIANCE_PRIOR_WEIGHT`).
    """
    pn = np.asarray(paired_n, dtype=np.float64)
    cn = np.asarray(chall_n, dtype=np.float64)
    kn = np.asarray(champ_n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        v_paired = np.asarray(paired_var, dtype=np.float64) / pn
        use_paired = (pn >= 2) & np.isfinite(v_paired) & (v_paired > 0)
        var_c = np.asarray(chall_var, dtype=np.float64)
        var_k = np.asarray(champ_var, dtype=np.float64)
        w = VARIANCE_PRIOR_WEIGHT
        shrunk_c = (cn * var_c + w * var_k) / (cn + w)
        shrunk_k = (kn * var_k + w * var_c) / (kn + w)
        v_unpaired = shrunk_c / cn + shrunk_k / kn
        use_unpaired = (
            (cn >= MIN_ARM_SAMPLES)
            & (kn >= MIN_ARM_SAMPLES)
            & np.isfinite(v_unpaired)
            & (v_unpaired > 0)
        )
        info_p = np.where(use_paired, 1.0 / np.where(use_paired, v_paired, 1.0), 0.0)
        info_u = np.where(use_unpaired, 1.0 / np.where(use_unpaired, v_unpaired, 1.0), 0.0)
        d_paired = np.where(use_paired, np.asarray(paired_mean, dtype=np.float64), 0.0)
        d_unpaired = np.where(
            use_unpaired,
            np.asarray(champ_mean, dtype=np.float64) - np.asarray(chall_mean, dtype=np.float64),
            0.0,
        )
        info = info_p + info_u
        score = info_p * d_paired + info_u * d_unpaired
        has = info > 0
        estimate = np.where(has, score / np.where(has, info, 1.0), np.nan)
        variance = np.where(has, 1.0 / np.where(has, info, 1.0), np.inf)
    return estimate, variance


def msprt(
    evidence: MetricEvidence, alpha: float, tau: float = DEFAULT_TAU, min_labels: int = 1
) -> SequentialResult:
    """The test at one look: PROMOTE, ROLLBACK or CONTINUE, with its always-valid p-values.

    Args:
        evidence: the losses so far (every labelled prediction since the rollout began).
        alpha: bound on the false-promotion (and false-rollback) probability over all looks.
        tau: scale of the mixture over effects, in metric units (nats).
        min_labels: labelled challenger predictions (paired or not) before any decision.
    """
    p, c, k = evidence.paired, evidence.challenger, evidence.champion
    est_a, var_a = combine(
        p.n, p.mean, p.variance, c.n, c.mean, c.variance, k.n, k.mean, k.variance
    )
    estimate, variance = float(est_a), float(var_a)
    better, worse = mixture_log_lr(estimate, variance, tau)
    log_better, log_worse = float(better), float(worse)
    threshold = math.log(1.0 / alpha)
    decision = TestDecision.CONTINUE
    if evidence.challenger_labelled >= min_labels:
        if log_better >= threshold:
            decision = TestDecision.PROMOTE
        elif log_worse >= threshold:
            decision = TestDecision.ROLLBACK
    has = math.isfinite(variance)
    return SequentialResult(
        decision=decision,
        estimate=estimate if has else None,
        std_error=math.sqrt(variance) if has else None,
        z=estimate / math.sqrt(variance) if has else None,
        p_better=min(1.0, math.exp(-log_better)),
        p_worse=min(1.0, math.exp(-log_worse)),
        alpha=alpha,
        tau=tau,
        n_paired=p.n,
        n_challenger=c.n,
        n_champion=k.n,
    )
