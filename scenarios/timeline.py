"""What a scenario run records: one line per window, the loop's milestones, the summary.

Times are seconds since the scenario's start (its first replayed window), so a run
reads the same whatever the wall clock; windows are numbered from 0.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WindowRecord(BaseModel):
    """One replayed window of live traffic and the monitor's verdict on it."""

    model_config = ConfigDict(frozen=True)

    index: int
    phase: str = Field(description="baseline or shift (what the world sent).")
    start_s: float
    end_s: float
    rows: int
    accuracy: float | None = Field(description="Share of answers that matched the label.")
    accuracy_by_version: dict[str, float] = Field(
        default_factory=dict, description="The same, per model version that answered."
    )
    rows_by_version: dict[str, int] = Field(default_factory=dict)
    champion_version: str
    monitor_status: str
    monitor_reason: str
    drift_share: float
    alarm: bool


class Milestone(BaseModel):
    """A moment of the loop, placed on the scenario's clock and in its windows."""

    model_config = ConfigDict(frozen=True)

    name: str
    at_s: float
    window: int | None = Field(description="The window running (or judged) at that moment.")
    detail: str = ""


class RetrainingRecord(BaseModel):
    """The retraining the alarm started, as the ledger and the Prefect run tell it."""

    model_config = ConfigDict(frozen=True)

    flow_run_id: str
    state: str
    started_s: float | None
    finished_s: float | None
    window_start_s: float | None = Field(description="Start of its training window.")
    window_end_s: float | None
    rows: int | None
    post_shift_rows: int | None = Field(description="Rows of its batch sent after the shift.")
    status: str | None = Field(description="The ledger's status (registered, ...).")


class ScenarioSummary(BaseModel):
    """What `mlops scenario run drift-recovery --json` prints."""

    model_config = ConfigDict(frozen=True)

    scenario: str = "drift-recovery"
    shift: str = Field(description="concept, covariate or none (a no-drift replay).")
    windows: int
    rows_per_window: int
    window_seconds: float
    shift_window: int | None
    shift_at_s: float | None
    detection_window: int | None = Field(description="The first window the monitor alarmed on.")
    detection_delay_windows: int | None = Field(description="Detection window - shift window.")
    detected_at_s: float | None
    retrain_started_at_s: float | None
    retrain_finished_at_s: float | None
    registered_at_s: float | None
    promoted_at_s: float | None
    shift_to_detection_s: float | None
    shift_to_retrain_s: float | None
    shift_to_registered_s: float | None
    shift_to_promotion_s: float | None
    old_version: str
    new_version: str | None = Field(description="The version promoted to champion, if any.")
    old_accuracy_post_drift: float | None = Field(
        description="The first champion's accuracy on held-out post-shift rows."
    )
    new_accuracy_post_drift: float | None = Field(
        description="The promoted champion's accuracy on the same rows."
    )
    old_roc_auc_post_drift: float | None = Field(
        description="The first champion's ROC AUC on the held-out post-shift rows."
    )
    new_roc_auc_post_drift: float | None = Field(
        description="The promoted champion's ROC AUC on the same rows."
    )
    old_accuracy_baseline: float | None = Field(
        description="The first champion's accuracy on held-out baseline rows."
    )
    old_roc_auc_baseline: float | None = Field(
        description="The first champion's ROC AUC on held-out baseline rows."
    )
    alarms: list[int] = Field(description="Windows the monitor alarmed on.")
    alarms_before_shift: int
    retraining_runs: list[RetrainingRecord]
    retraining_runs_before_shift: int
    recovered: bool = Field(
        description="Drift: a new champion that beats the old one after the shift. "
        "No drift: no alarm and no retraining."
    )
    milestones: list[Milestone]
    window_records: list[WindowRecord]
    plot: str | None = None
    artifact_id: str | None = None

    def timeline_lines(self) -> list[str]:
        """The milestones as lines a person reads, in time order."""
        return [
            f"{m.at_s:7.1f} s  window {'-' if m.window is None else m.window:>3}  "
            f"{m.name:<18} {m.detail}"
            for m in sorted(self.milestones, key=lambda m: m.at_s)
        ]
