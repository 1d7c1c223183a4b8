"""Sections of the monitoring side of the loop: drift, data quality of served traffic,
and the guardrails between an alarm and a retraining (`MLOPS_DRIFT__*`,
`MLOPS_QUALITY__*`, `MLOPS_RETRAINING__*`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from mlops.settings.base import (
    Count,
    NonNegative,
    NonNegativeCount,
    Positive,
    Section,
    Share,
    require_twice,
)


class RetrainingSettings(Section):
    """Guardrails between a drift alarm and a retraining run."""

    cooldown_s: NonNegative = Field(
        default=6 * 3600.0, description="No retraining this soon after the last one."
    )
    debounce_s: NonNegative = Field(
        default=900.0, description="Alarms this close to an earlier one are merged."
    )
    min_new_rows: NonNegativeCount = Field(
        default=1_000,
        description="Labelled rows the retraining window must hold that the champion has "
        "not seen and, for a drift alarm, that came after the drift's onset.",
    )
    window_days: Positive = Field(
        default=14.0, description="How far back the retraining data reaches."
    )
    max_run_s: Positive = Field(
        default=4 * 3600.0,
        description="A retraining the ledger says is running for longer is taken as dead "
        "(its worker was killed): it no longer holds drift alarms back, and expires.",
    )
    heartbeat_interval_s: Positive = Field(
        default=60.0,
        description="How often a running retraining stamps its ledger row (heartbeat).",
    )
    heartbeat_timeout_s: Positive = Field(
        default=15 * 60.0,
        description="A running retraining silent for longer is dead: it no longer holds "
        "drift alarms back, and expires (marked failed; the alarms it held are pending).",
    )
    max_alarm_wait_s: Positive = Field(
        default=24 * 3600.0,
        description="A pending drift alarm waiting longer for a retraining is overdue: "
        "the drift monitor emits mlops.drift.overdue.",
    )

    @model_validator(mode="after")
    def _heartbeat_fits_its_timeout(self) -> RetrainingSettings:
        require_twice(
            self.heartbeat_timeout_s,
            self.heartbeat_interval_s,
            "retraining.heartbeat_timeout_s must be at least twice heartbeat_interval_s "
            "(one late beat must not expire a live run)",
        )
        return self


class DriftSettings(Section):
    """How a window is judged against its reference.

    Thresholds follow Evidently's precedence: a per-column threshold beats the numeric /
    categorical one, which beats `threshold`; unset means the method's own default
    (0.05 for the p-value tests, 0.1 for the distances). A threshold's meaning depends on
    the method it ends up with: a p-value tests drifts *below* it, a distance *at or
    above* it.
    """

    model_config = ConfigDict(extra="forbid")

    drift_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="The dataset drifts when at least this share of its columns drift "
        "(Evidently's DataDriftPreset default: 0.5).",
    )
    threshold: float | None = Field(default=None, gt=0.0, description="For every column.")
    num_threshold: float | None = Field(default=None, gt=0.0, description="Numeric columns.")
    cat_threshold: float | None = Field(default=None, gt=0.0, description="Categorical columns.")
    per_column_threshold: dict[str, float] = Field(
        default_factory=dict, description="Overrides for single columns."
    )
    min_rows: Count = Field(
        default=100,
        description="A window with fewer rows gets an explicit insufficient-data verdict.",
    )
    max_workers: Count = Field(
        default=2,
        description="Threads that test numeric columns in parallel (numpy releases the GIL).",
    )
    decision_threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Probability above which a row is positive."
    )
    max_roc_auc_drop: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Tolerated ROC AUC drop: performance is degraded only when the "
        "one-sided lower confidence bound of (reference - window) ROC AUC exceeds it "
        "(the bound alone keeps false alarms below performance_alpha; a margin only "
        "ignores small real drops, see mlops.drift.performance).",
    )
    max_accuracy_drop: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Tolerated accuracy drop, judged by its lower confidence bound.",
    )
    performance_alpha: float = Field(
        default=0.01,
        gt=0.0,
        lt=0.5,
        description="False alarm rate per stable window of the performance alarm (split "
        "equally over ROC AUC and accuracy); see benchmarks/performance_alarm.py.",
    )
    min_positives: int = Field(
        default=30,
        ge=2,
        description="Fewer labelled positives in the window: verdict 'insufficient "
        "labels', never an alarm.",
    )
    min_negatives: int = Field(default=30, ge=2, description="The same for labelled negatives.")

    def threshold_for(self, column: str, *, categorical: bool) -> float | None:
        """The configured threshold of a column, or None for the method's default."""
        if column in self.per_column_threshold:
            return self.per_column_threshold[column]
        kind_threshold = self.cat_threshold if categorical else self.num_threshold
        if kind_threshold is not None:
            return kind_threshold
        return self.threshold


class QualitySettings(Section):
    """How served traffic is judged against the data contract: a broken pipe, not drift.

    Every check is a share of the window, so one noisy row never opens an incident.
    """

    enabled: bool = Field(default=True, description="The drift monitor checks data quality.")
    min_rows: Count = Field(
        default=100, description="A window with fewer rows is not judged (no incident)."
    )
    null_rate_margin: Share = Field(
        default=0.05,
        description="Null share allowed above the reference's (plus the validation "
        "tolerance and a binomial bound) before a feature counts as broken.",
    )
    null_rate_z: NonNegative = Field(
        default=4.0, description="Standard errors of the binomial bound on the null rate."
    )
    max_out_of_range_share: Share = Field(
        default=0.05,
        description="Share of numeric values outside the widened learned range that breaks it.",
    )
    max_unseen_category_share: Share = Field(
        default=0.05, description="Share of categories never seen in the reference."
    )
    max_dtype_mismatch_share: Share = Field(
        default=0.01,
        description="Share of values of the wrong type (text in a numeric feature, numbers "
        "in a categorical one).",
    )
    example_values: NonNegativeCount = Field(default=5, description="Example values per failure.")
    incident_stale_s: Positive = Field(
        default=86_400.0,
        description="An open incident no window has seen for this long no longer holds "
        "retraining (the monitor stopped judging it).",
    )
    resume_rollout: bool = Field(
        default=True,
        description="Resume a rollout the incident paused once a window is clean again.",
    )
    serving_dataset: str | None = Field(
        default=None,
        description="Dataset whose reference profile serving counts out-of-range values "
        "against (default: the served model's name).",
    )
