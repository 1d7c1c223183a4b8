"""What a rollout has seen so far, reduced from the prediction log and the feedback.

Inputs are the frames the prediction-log helpers return (`read_predictions`,
`read_feedback`): one row per scored request and model, with columns
`prediction_id, request_id, model_name, model_version, variant, shadow, pinned,
entity, score, prediction, latency_ms, status, error, ts` (`score`: probability of
the positive class), and one row per label, `prediction_id, label, ts` (the label as
the class, e.g. "1"). In shadow, the challenger's mirrored row has the id of the
champion's answer plus `SHADOW_SUFFIX` (or the same id): that pairs the two, and
the label of the answered prediction serves both.

Only routed rows are evidence (`mlops.traffic.routed`): a row whose version the
client pinned was not assigned at random, so both windows leave it out.

Two windows:

- **guardrails** (error rate, p99 latency) look at the current stage, since
  `stage_started_at`: what the challenger does at its present share of traffic, next
  to what the champion does at the same time. Each p99 comes with a distribution-free
  confidence interval (`p99_bounds`, at level 1 - `alpha`): from a few hundred
  latencies the p99 is one of the few largest, and the policy compares bounds, not
  these point estimates;
- the **sequential test** looks at every labelled prediction of the rollout: the
  challenger's rows of its version, and the champion's rows since the challenger's
  first one (contemporaneous traffic).

A row failed when its `error` is set or its `status` is not one of `OK_STATUSES`;
failed rows count as predictions and errors, and carry no loss.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict
from scipy.stats import binom

from mlops.labels import latest_labels
from mlops.rollout.sequential import MetricEvidence, Moments, log_loss
from mlops.rollout.state import RolloutState, Variant
from mlops.settings import RolloutSettings
from mlops.traffic import routed

SHADOW_SUFFIX = "-shadow"
"""How the service names a mirrored row: `<answered prediction id>-shadow`."""
OK_STATUSES = frozenset({"ok", "success", "200"})
"""Values of the `status` column that mean the model produced a score."""
MIN_LATENCY_SAMPLES = 300
"""A p99 from fewer latencies than this is not reported. From 100 latencies the p99 is
the second largest, so one scheduler hiccup on a loaded machine decides a rollback
(seen: a healthy challenger rolled back at 24.9 ms against 11.9 ms while four jobs
shared two cores); from 300 it takes three, and even then the point estimate doubles
by chance: the policy compares the bounds of `p99_bounds`, not the point estimates."""
P99 = 0.99
DEFAULT_ALPHA: float = RolloutSettings.model_fields["alpha"].default
"""The level of the p99 bounds when `compute_evidence` is not given one: the default
`RolloutSettings.alpha`."""
SummaryValue = float | int | str | bool | None


class ArmStats(BaseModel):
    """One arm's traffic in the current stage (and its labels over the whole rollout)."""

    model_config = ConfigDict(frozen=True)

    predictions: int
    """Rows scored in the current stage (failed ones included)."""
    errors: int
    p99_latency_ms: float | None
    """The sample p99 (for reports); None below `MIN_LATENCY_SAMPLES` latencies."""
    p99_latency_lower_ms: float | None = None
    """The lower bound of the p99's 1 - alpha confidence interval (`p99_bounds`);
    None when the p99 is."""
    p99_latency_upper_ms: float | None = None
    """Its upper bound: the largest latency when there are too few for a real one."""
    latency_samples: int
    labelled: int
    """Labelled successful predictions over the whole rollout."""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.predictions if self.predictions else None


class StageEvidence(BaseModel):
    """Everything the policy decides on, computed at one moment."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    challenger_version: str
    stage: int
    computed_at: datetime
    challenger: ArmStats
    champion: ArmStats
    champion_reference_p99_ms: float | None
    """The champion's p99 to compare with: the stage's when it has enough latencies,
    else the whole rollout's (at 100 % the champion answers nothing in the stage)."""
    champion_reference_p99_upper_ms: float | None = None
    """The upper confidence bound of that same p99 (`p99_bounds`)."""
    champion_reference_latency_samples: int = 0
    """How many latencies that p99 is of (the stage's or the whole rollout's)."""
    latency_alpha: float = DEFAULT_ALPHA
    """The p99 bounds are 1 - `latency_alpha` confidence intervals."""
    metric: Literal["log_loss"] = "log_loss"
    losses: MetricEvidence = MetricEvidence()

    @property
    def p99_latency_ratio(self) -> float | None:
        """Challenger p99 / champion p99, when both are known."""
        chall, champ = self.challenger.p99_latency_ms, self.champion_reference_p99_ms
        if chall is None or champ is None or champ <= 0:
            return None
        return chall / champ

    @property
    def p99_latency_ratio_lower_bound(self) -> float | None:
        """Challenger p99 lower bound / champion p99 upper bound: how much slower the
        challenger is at least (what the latency guardrail compares), when both are known."""
        chall = self.challenger.p99_latency_lower_ms
        champ = self.champion_reference_p99_upper_ms
        if chall is None or champ is None or champ <= 0:
            return None
        return chall / champ

    def summary(self) -> dict[str, SummaryValue]:
        """A flat dictionary for decisions, audit records, events and UI tables."""
        losses = self.losses
        return {
            "stage": self.stage,
            "challenger_predictions": self.challenger.predictions,
            "challenger_errors": self.challenger.errors,
            "challenger_error_rate": self.challenger.error_rate,
            "challenger_p99_ms": self.challenger.p99_latency_ms,
            "champion_predictions": self.champion.predictions,
            "champion_errors": self.champion.errors,
            "champion_p99_ms": self.champion_reference_p99_ms,
            "p99_latency_ratio": self.p99_latency_ratio,
            "challenger_p99_lower_ms": self.challenger.p99_latency_lower_ms,
            "challenger_p99_upper_ms": self.challenger.p99_latency_upper_ms,
            "challenger_latency_samples": self.challenger.latency_samples,
            "champion_p99_upper_ms": self.champion_reference_p99_upper_ms,
            "champion_latency_samples": self.champion_reference_latency_samples,
            "p99_latency_ratio_lower_bound": self.p99_latency_ratio_lower_bound,
            "p99_bounds_confidence": 1.0 - self.latency_alpha,
            "metric": self.metric,
            "labelled_paired": losses.paired.n,
            "labelled_challenger": losses.challenger.n,
            "labelled_champion": losses.champion.n,
            "mean_loss_delta_paired": _finite(losses.paired.mean),
            "mean_loss_challenger": _finite(losses.challenger.mean),
            "mean_loss_champion": _finite(losses.champion.mean),
        }


def compute_evidence(
    state: RolloutState,
    predictions: pd.DataFrame,
    feedback: pd.DataFrame,
    now: datetime,
    *,
    positive_label: str = "1",
    alpha: float = DEFAULT_ALPHA,
) -> StageEvidence:
    """Reduce the prediction log and feedback to a rollout's evidence at `now`.

    Rows of other models, and challenger rows of other versions, are ignored, so the
    frames may cover more than the rollout (read them since the rollout began, or a
    little before). Labels equal to `positive_label` (as text; `true` counts as "1",
    `1.0` as "1") are positives, every other label a negative. The p99 latencies come
    with 1 - `alpha` confidence intervals (pass `RolloutSettings.alpha`).
    """
    if state.challenger_version is None:
        raise ValueError(f"model {state.model_name}: no rollout, no evidence")
    frame = _prepare(predictions, state.model_name)
    variant = frame["variant"].astype(str)
    is_chall = (variant == Variant.CHALLENGER.value) & (
        frame["model_version"].astype(str) == state.challenger_version
    )
    chall = frame[is_chall]
    is_champ = variant == Variant.CHAMPION.value
    if len(chall):
        is_champ &= frame["ts"] >= chall["ts"].min()
    else:
        is_champ &= False
    champ = frame[is_champ]

    stage_start = _timestamp(state.stage_started_at)
    chall_stage = chall[chall["ts"] >= stage_start] if stage_start is not None else chall
    champ_stage = champ[champ["ts"] >= stage_start] if stage_start is not None else champ

    labels = latest_labels(feedback, positive_label)
    losses, labelled_chall, labelled_champ = _losses(chall, champ, labels)
    champ_stage_p99 = _p99(champ_stage, alpha)
    reference = champ_stage_p99 if champ_stage_p99 is not None else _p99(champ, alpha)
    return StageEvidence(
        model_name=state.model_name,
        challenger_version=state.challenger_version,
        stage=state.stage,
        computed_at=now,
        challenger=_arm(chall_stage, labelled_chall, alpha),
        champion=_arm(champ_stage, labelled_champ, alpha),
        champion_reference_p99_ms=None if reference is None else reference.point,
        champion_reference_p99_upper_ms=None if reference is None else reference.upper,
        champion_reference_latency_samples=0 if reference is None else reference.samples,
        latency_alpha=alpha,
        losses=losses,
    )


COLUMNS = (
    "prediction_id",
    "model_name",
    "model_version",
    "variant",
    "shadow",
    "score",
    "latency_ms",
    "status",
    "error",
    "ts",
)


def _prepare(predictions: pd.DataFrame, model_name: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in predictions.columns]
    if missing and not predictions.empty:
        raise ValueError(f"the prediction log lacks columns {missing}")
    frame = predictions.reindex(columns=list(dict.fromkeys([*predictions.columns, *COLUMNS])))
    frame = routed(frame[frame["model_name"].astype(str) == model_name]).copy()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    error = frame["error"]
    has_error = error.notna() & (error.astype(str).str.strip() != "")
    status_ok = frame["status"].astype(str).str.strip().str.lower().isin(OK_STATUSES)
    frame["failed"] = has_error | ~status_ok | frame["score"].isna()
    frame["shadow"] = frame["shadow"].astype("boolean").fillna(False).astype(bool)
    ids = frame["prediction_id"].astype(str)
    frame["answered_id"] = ids.where(~frame["shadow"], ids.str.removesuffix(SHADOW_SUFFIX))
    frame["latency_ms"] = pd.to_numeric(frame["latency_ms"], errors="coerce")
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    return frame


def _timestamp(moment: datetime | None) -> pd.Timestamp | None:
    if moment is None:
        return None
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _losses(
    chall: pd.DataFrame, champ: pd.DataFrame, labels: pd.Series
) -> tuple[MetricEvidence, int, int]:
    """Paired (shadow) and unpaired losses; each answered request in one component only."""
    ok_chall = chall[~chall["failed"]].drop_duplicates("answered_id", keep="last")
    ok_champ = champ[~champ["failed"]].drop_duplicates("answered_id", keep="last")
    chall_loss = _labelled_losses(ok_chall, labels)
    champ_loss = _labelled_losses(ok_champ, labels)
    mirrored = set(ok_chall.loc[ok_chall["shadow"], "answered_id"])
    paired_ids = chall_loss.index.intersection(champ_loss.index).intersection(list(mirrored))
    paired = champ_loss.loc[paired_ids] - chall_loss.loc[paired_ids]
    only_chall = chall_loss.drop(paired_ids)
    only_champ = champ_loss.drop(paired_ids)
    evidence = MetricEvidence(
        paired=Moments.of(paired.to_numpy()),
        challenger=Moments.of(only_chall.to_numpy()),
        champion=Moments.of(only_champ.to_numpy()),
    )
    return evidence, len(chall_loss), len(champ_loss)


def _labelled_losses(rows: pd.DataFrame, labels: pd.Series) -> pd.Series:
    ids = rows["answered_id"]
    label = ids.map(labels)
    known = label.notna().to_numpy()
    values = log_loss(rows["score"].to_numpy()[known], label.to_numpy()[known])
    return pd.Series(values, index=ids.to_numpy()[known])


class P99Estimate(NamedTuple):
    """A sample p99 and its 1 - alpha confidence interval (`p99_bounds`)."""

    point: float
    lower: float
    upper: float
    samples: int


def _arm(rows: pd.DataFrame, labelled: int, alpha: float) -> ArmStats:
    p99 = _p99(rows, alpha)
    return ArmStats(
        predictions=len(rows),
        errors=int(rows["failed"].sum()),
        p99_latency_ms=None if p99 is None else p99.point,
        p99_latency_lower_ms=None if p99 is None else p99.lower,
        p99_latency_upper_ms=None if p99 is None else p99.upper,
        latency_samples=int(rows["latency_ms"].notna().sum()),
        labelled=labelled,
    )


def _p99(rows: pd.DataFrame, alpha: float) -> P99Estimate | None:
    return p99_estimate(rows["latency_ms"].to_numpy(dtype=np.float64), alpha)


def p99_estimate(latencies: ArrayLike, alpha: float) -> P99Estimate | None:
    """The sample p99 of `latencies` and its 1 - `alpha` bounds (`p99_bounds`); None
    below `MIN_LATENCY_SAMPLES` of them (NaNs are not latencies)."""
    values = np.asarray(latencies, dtype=np.float64).ravel()
    values = np.sort(values[~np.isnan(values)])
    if values.size < MIN_LATENCY_SAMPLES:
        return None
    lower, upper = p99_bounds(values, alpha)
    return P99Estimate(
        point=float(np.percentile(values, 99)),
        lower=lower,
        upper=upper,
        samples=int(values.size),
    )


def p99_bounds(values: ArrayLike, alpha: float, q: float = P99) -> tuple[float, float]:
    """A distribution-free 1 - `alpha` confidence interval for the `q` quantile of `values`.

    Why: a p99 from a few hundred latencies is one of the few largest (the 3rd largest
    of 300), so on a busy host two arms with the same latency distribution read p99s
    that differ twofold by chance. Comparing bounds instead of point estimates makes
    the latency guardrail know that uncertainty, as the error-rate guardrail does.

    How: of n independent samples, the number below the true quantile is
    Binomial(n, q) whatever the distribution, so with l = binom.ppf(alpha/2, n, q) and
    u = binom.ppf(1 - alpha/2, n, q) + 1 the order statistics x_(l) <= x_(u)
    (1-indexed) bracket the quantile with probability >= 1 - alpha (each side misses
    with probability <= alpha/2). Both indices are clipped to [1, n]: with too few
    samples for a real upper bound (fewer than 368 for the p99 at alpha 0.05) the
    upper bound is the largest value, which covers less than 1 - alpha/2.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = int(x.size)
    if n == 0:
        raise ValueError("no values, no quantile bounds")
    if not 0.0 < alpha < 1.0 or not 0.0 < q < 1.0:
        raise ValueError(f"alpha ({alpha}) and q ({q}) must lie in (0, 1)")
    low = int(binom.ppf(alpha / 2, n, q))
    high = int(binom.ppf(1 - alpha / 2, n, q)) + 1
    low = min(max(low, 1), n)
    high = min(max(high, 1), n)
    return float(x[low - 1]), float(x[high - 1])


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
