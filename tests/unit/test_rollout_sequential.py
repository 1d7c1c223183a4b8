"""The sequential test: valid under repeated looks, able to fail, and powerful enough.

The simulations are seeded (deterministic), and the bounds are still binomial: with
2,000 rollouts the false-promotion rate's standard error at alpha = 5 % is 0.49 %,
so "at most alpha + 3 standard errors" (6.5 %) does not flake under a change of seed,
while the same simulation with a fixed-horizon z-test peeked at every look promotes
19 % (shadow then canary) to 30 % (canary only) of A/A rollouts: the check can fail.

Measured (seeds as below): mSPRT A/A false promotions 1.65 % (shadow + canary) and
2.75 % (canary only, the skewed small-arm case); power 87 % for a challenger with
log loss 0.182 against 0.206 nats within 9,000 labelled requests; a broken
challenger rolled back in 100 % of runs after 385 requests on average.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from mlops.rollout.sequential import (
    MIN_ARM_SAMPLES,
    MetricEvidence,
    Moments,
    TestDecision,
    combine,
    log_loss,
    mixture_log_lr,
    msprt,
)
from mlops.rollout.simulation import Segment, simulate_aa, simulate_rollouts

ALPHA = 0.05
N_AA = 2_000


def binomial_ceiling(rate: float, n: int, sigmas: float = 3.0) -> float:
    return rate + sigmas * math.sqrt(rate * (1.0 - rate) / n)


def test_aa_rollouts_promote_at_most_alpha_over_many_looks() -> None:
    # shadow (paired) then 5 / 25 / 50 / 100 %, a look every 50 labels: 180 looks
    result = simulate_aa(N_AA, alpha=ALPHA, seed=11)
    assert result.looks == 180
    assert result.promoted <= binomial_ceiling(ALPHA, N_AA), result
    assert result.rolled_back <= binomial_ceiling(ALPHA, N_AA), result


def test_aa_rollouts_without_shadow_promote_at_most_alpha() -> None:
    # unpaired evidence only, with a small challenger arm: the skewed, hard case
    schedule = (Segment(3_000, 0.05), Segment(3_000, 0.25), Segment(3_000, 0.5))
    result = simulate_aa(N_AA, alpha=ALPHA, schedule=schedule, seed=12)
    assert result.promoted <= binomial_ceiling(ALPHA, N_AA), result


def test_aa_simulation_catches_a_naive_peeking_test() -> None:
    """The same simulation fails a fixed-horizon z-test looked at 180 times."""
    naive = simulate_aa(N_AA, alpha=ALPHA, naive=True, seed=11)
    assert naive.promoted > binomial_ceiling(ALPHA, N_AA, sigmas=6.0), naive
    assert naive.promoted > 2 * ALPHA


def test_a_better_challenger_is_promoted_in_most_rollouts() -> None:
    # log loss 0.206 (champion) vs 0.182 nats (challenger)
    result = simulate_rollouts(500, champion_noise=1.0, challenger_noise=0.3, seed=5)
    assert result.promoted >= 0.8, result
    assert result.rolled_back <= 0.01, result


def test_a_broken_challenger_is_rolled_back_in_shadow() -> None:
    result = simulate_rollouts(500, champion_noise=0.5, challenger_noise=3.0, seed=6)
    assert result.rolled_back == 1.0, result
    assert result.mean_rows_to_decision <= 1_000  # within the shadow segment
    random_weights = msprt(paired_evidence(scores_challenger=0.5), alpha=ALPHA, min_labels=200)
    assert random_weights.decision is TestDecision.ROLLBACK


def paired_evidence(scores_challenger: float, n: int = 300, seed: int = 0) -> MetricEvidence:
    """Shadow pairs: a sensible champion against a constant-score challenger."""
    rng = np.random.default_rng(seed)
    q = rng.beta(0.5, 8.0, n)
    y = rng.random(n) < q
    diff = log_loss(q, y) - log_loss(np.full(n, scores_challenger), y)
    return MetricEvidence(paired=Moments.of(diff))


def test_the_mixture_ratio_matches_its_integral() -> None:
    """The closed form is the half-normal mixture of Gaussian likelihood ratios."""
    estimate, variance, tau = 0.013, 0.00004, 0.02
    info, score = 1.0 / variance, estimate / variance

    def ratio(theta: float, sign: float) -> float:
        lr = math.exp(sign * theta * score - theta * theta * info / 2.0)
        return lr * 2.0 * norm.pdf(theta, scale=tau)

    better = integrate.quad(ratio, 0.0, np.inf, args=(1.0,))[0]
    worse = integrate.quad(ratio, 0.0, np.inf, args=(-1.0,))[0]
    log_better, log_worse = mixture_log_lr(estimate, variance, tau)
    assert float(log_better) == pytest.approx(math.log(better), rel=1e-6)
    assert float(log_worse) == pytest.approx(math.log(worse), rel=1e-6)


def test_one_look_matches_the_vectorised_combination() -> None:
    rng = np.random.default_rng(3)
    paired, chall, champ = (
        rng.normal(0.01, 0.2, 400),
        rng.gamma(1, 0.2, 80),
        rng.gamma(1, 0.21, 900),
    )
    evidence = MetricEvidence(
        paired=Moments.of(paired), challenger=Moments.of(chall), champion=Moments.of(champ)
    )
    result = msprt(evidence, alpha=ALPHA)
    v_paired = paired.var(ddof=1) / paired.size
    w = 100.0
    var_c, var_k = chall.var(ddof=1), champ.var(ddof=1)
    v_unpaired = (80 * var_c + w * var_k) / (80 + w) / 80 + (900 * var_k + w * var_c) / (
        900 + w
    ) / 900
    expected = (paired.mean() / v_paired + (champ.mean() - chall.mean()) / v_unpaired) / (
        1 / v_paired + 1 / v_unpaired
    )
    assert result.estimate == pytest.approx(expected, rel=1e-9)
    assert result.std_error == pytest.approx((1 / v_paired + 1 / v_unpaired) ** -0.5, rel=1e-9)
    assert (result.n_paired, result.n_challenger, result.n_champion) == (400, 80, 900)


def test_identical_models_in_shadow_give_no_evidence() -> None:
    # the same model on both arms scores every mirrored request identically
    evidence = MetricEvidence(paired=Moments.of(np.zeros(500)))
    result = msprt(evidence, alpha=ALPHA)
    assert result.decision is TestDecision.CONTINUE
    assert (result.p_better, result.p_worse) == (1.0, 1.0)
    assert result.estimate is None


def test_small_unpaired_arms_are_not_used() -> None:
    tiny = MetricEvidence(
        challenger=Moments.of(np.full(MIN_ARM_SAMPLES - 1, 0.01)),
        champion=Moments.of(np.linspace(0.1, 0.9, 1_000)),
    )
    est, var = combine(0, math.nan, math.nan, *_stats(tiny.challenger), *_stats(tiny.champion))
    assert math.isnan(float(est)) and math.isinf(float(var))
    assert msprt(tiny, alpha=ALPHA).decision is TestDecision.CONTINUE


def _stats(m: Moments) -> tuple[int, float, float]:
    return m.n, m.mean, m.variance


def test_no_decision_before_min_labels() -> None:
    evidence = paired_evidence(scores_challenger=0.5, n=150)
    assert msprt(evidence, alpha=ALPHA, min_labels=1).decision is TestDecision.ROLLBACK
    assert msprt(evidence, alpha=ALPHA, min_labels=151).decision is TestDecision.CONTINUE


def test_moments_and_log_loss() -> None:
    values = np.array([0.5, 1.5, 2.5])
    m = Moments.of(values)
    assert (m.n, m.mean, m.variance) == (3, 1.5, pytest.approx(1.0))
    assert math.isnan(Moments().mean) and math.isnan(Moments.of([1.0]).variance)
    loss = log_loss([0.9, 0.9, 0.0, 1.0], [1, 0, 0, 0])
    assert loss[0] == pytest.approx(-math.log(0.9))
    assert loss[1] == pytest.approx(-math.log(0.1))
    assert loss[2] == pytest.approx(-math.log(1 - 1e-4))  # clipped, finite
    assert loss[3] == pytest.approx(-math.log(1e-4))
