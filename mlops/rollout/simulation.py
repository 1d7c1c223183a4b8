"""Simulated rollouts for the sequential test: many seeded rollouts, vectorised.

Used by the tests (`tests/unit/test_rollout_sequential.py`) to show the mSPRT of
`mlops.rollout.sequential` keeps its false-promotion rate at most alpha over repeated
looks, that a fixed-horizon test peeked at every look does not (the check can fail),
and that the test has power. Nothing in the running system imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlops.rollout.sequential import (
    DEFAULT_TAU,
    PROBABILITY_CLIP,
    FloatArray,
    combine,
    mixture_log_lr,
)

Float32Array = npt.NDArray[np.float32]
LOGIT_CLIP = np.float32(math.log((1.0 - PROBABILITY_CLIP) / PROBABILITY_CLIP))
BASE_LOGIT_MEAN = -3.6
BASE_LOGIT_SD = 1.5


@dataclass(frozen=True)
class Segment:
    """A stretch of simulated traffic: `rows` requests at challenger share `share` (0: shadow)."""

    rows: int
    share: float


DEFAULT_SCHEDULE = (
    Segment(1_000, 0.0),
    Segment(2_000, 0.05),
    Segment(2_000, 0.25),
    Segment(2_000, 0.5),
    Segment(2_000, 1.0),
)
"""Shadow, then 5 / 25 / 50 / 100 %: 9,000 labelled requests per simulated rollout."""


@dataclass(frozen=True)
class SimulationResult:
    """How simulated rollouts ended: shares of promotions and rollbacks, mean stopping time."""

    n_rollouts: int
    looks: int
    promoted: float
    rolled_back: float
    undecided: float
    mean_rows_to_decision: float
    """Mean requests seen before a decision, over rollouts that decided (NaN if none)."""


def simulate_rollouts(
    n_rollouts: int,
    *,
    champion_noise: float = 0.5,
    challenger_noise: float = 0.5,
    schedule: tuple[Segment, ...] = DEFAULT_SCHEDULE,
    look_every: int = 50,
    alpha: float = 0.05,
    tau: float = DEFAULT_TAU,
    min_labels: int = 200,
    naive: bool = False,
    seed: int = 0,
    chunk: int = 250,
) -> SimulationResult:
    """Simulate many rollouts with a look every `look_every` labelled requests.

    Each request has a true log-odds of fraud `l ~ N(BASE_LOGIT_MEAN, BASE_LOGIT_SD)`
    (about 6 % positives) and a label drawn from it; a model scores it as
    `sigmoid(l + noise * N(0, 1))` with its own independent noise, so equal noise means
    equally good models (an A/A test) and less noise a better model (mean log loss:
    0.180 nats at noise 0, 0.182 at 0.3, 0.186 at 0.5, 0.206 at 1.0, 0.296 at 2.0). The
    models' errors are independent, the hard case for the paired component (identical
    models would pair to exact zeros). Shadow segments give paired losses; canary
    segments send each request to the challenger with probability `share`.

    With `naive=True` the decision is a fixed-horizon one-sided z-test at level alpha
    repeated at every look: what one must not do, kept to show the simulation can fail.
    """
    rng = np.random.default_rng(seed)
    n_rows = sum(s.rows for s in schedule)
    if n_rows % look_every:
        raise ValueError("the schedule's total rows must be a multiple of look_every")
    looks = n_rows // look_every
    shares = np.concatenate([np.full(s.rows, s.share, dtype=np.float32) for s in schedule])
    shadow = shares == 0.0
    promoted = rolled_back = 0
    stop_rows: list[int] = []
    done = 0
    while done < n_rollouts:
        size = min(chunk, n_rollouts - done)
        done += size
        shape = (size, n_rows)
        logit = _normal(rng, shape, BASE_LOGIT_MEAN, BASE_LOGIT_SD)
        positive = rng.random(shape, dtype=np.float32) < _sigmoid(logit)
        champ = _log_loss_of_logits(logit + _normal(rng, shape, 0.0, champion_noise), positive)
        chall = _log_loss_of_logits(logit + _normal(rng, shape, 0.0, challenger_noise), positive)
        to_chall = rng.random(shape, dtype=np.float32) < shares
        zero = np.float32(0.0)
        diff = np.where(shadow, champ - chall, zero)
        one_chall = np.where(~shadow & to_chall, chall, zero)
        one_champ = np.where(~shadow & ~to_chall, champ, zero)
        n_p = _cum_at_looks(np.broadcast_to(shadow, shape).astype(np.float32), look_every)
        n_c = _cum_at_looks((~shadow & to_chall).astype(np.float32), look_every)
        n_k = _cum_at_looks((~shadow & ~to_chall).astype(np.float32), look_every)
        est, var = combine(
            n_p,
            *_mean_var(n_p, diff, look_every),
            n_c,
            *_mean_var(n_c, one_chall, look_every),
            n_k,
            *_mean_var(n_k, one_champ, look_every),
        )
        ready = (n_p + n_c) >= min_labels
        if naive:
            with np.errstate(invalid="ignore"):
                z = est / np.sqrt(var)
            cut = float(_z_quantile(1.0 - alpha))
            up = ready & (z >= cut)
            down = ready & (z <= -cut)
        else:
            better, worse = mixture_log_lr(est, var, tau)
            threshold = math.log(1.0 / alpha)
            up = ready & (better >= threshold)
            down = ready & ~up & (worse >= threshold)
        first_up = _first_true(up)
        first_down = _first_true(down)
        first = np.minimum(first_up, first_down)
        decided = first < looks
        promoted += int(np.sum(decided & (first_up <= first_down)))
        rolled_back += int(np.sum(decided & (first_down < first_up)))
        stop_rows.extend(((first[decided] + 1) * look_every).tolist())
    return SimulationResult(
        n_rollouts=n_rollouts,
        looks=looks,
        promoted=promoted / n_rollouts,
        rolled_back=rolled_back / n_rollouts,
        undecided=1.0 - (promoted + rolled_back) / n_rollouts,
        mean_rows_to_decision=float(np.mean(stop_rows)) if stop_rows else math.nan,
    )


def simulate_aa(
    n_rollouts: int,
    *,
    noise: float = 0.5,
    schedule: tuple[Segment, ...] = DEFAULT_SCHEDULE,
    look_every: int = 50,
    alpha: float = 0.05,
    tau: float = DEFAULT_TAU,
    min_labels: int = 200,
    naive: bool = False,
    seed: int = 0,
) -> SimulationResult:
    """A/A rollouts: two equally good models; the promoted share is the false-promotion rate."""
    return simulate_rollouts(
        n_rollouts,
        champion_noise=noise,
        challenger_noise=noise,
        schedule=schedule,
        look_every=look_every,
        alpha=alpha,
        tau=tau,
        min_labels=min_labels,
        naive=naive,
        seed=seed,
    )


def _normal(
    rng: np.random.Generator, shape: tuple[int, int], mean: float, sd: float
) -> Float32Array:
    values = rng.standard_normal(shape, dtype=np.float32)
    values *= np.float32(sd)
    values += np.float32(mean)
    return values


def _sigmoid(x: Float32Array) -> Float32Array:
    result: Float32Array = np.float32(0.5) * (np.float32(1.0) + np.tanh(np.float32(0.5) * x))
    return result


def _log_loss_of_logits(logits: Float32Array, positive: npt.NDArray[np.bool_]) -> Float32Array:
    """`log_loss(sigmoid(logits), positive)` without leaving logit space (same clipping)."""
    clipped = np.clip(logits, -LOGIT_CLIP, LOGIT_CLIP)
    result: Float32Array = np.logaddexp(np.float32(0.0), np.where(positive, -clipped, clipped))
    return result


def _cum_at_looks(values: npt.NDArray[np.floating], look_every: int) -> FloatArray:
    """Cumulative sums along the rows axis, taken at every look (accumulated in float64)."""
    rows, n = values.shape
    blocks = values.reshape(rows, n // look_every, look_every).sum(axis=2, dtype=np.float64)
    result: FloatArray = np.cumsum(blocks, axis=1)
    return result


def _mean_var(
    n: FloatArray, values: npt.NDArray[np.floating], look_every: int
) -> tuple[FloatArray, FloatArray]:
    total = _cum_at_looks(values, look_every)
    total_sq = _cum_at_looks(values * values, look_every)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        var = np.maximum(total_sq - total * mean, 0.0) / (n - 1)
    return mean, var


def _first_true(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Index of the first True per row, or the row length when there is none."""
    any_true = flags.any(axis=1)
    first = np.argmax(flags, axis=1)
    result: npt.NDArray[np.int64] = np.where(any_true, first, flags.shape[1]).astype(np.int64)
    return result


def _z_quantile(level: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(level))
