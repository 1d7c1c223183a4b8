"""The drift monitor: live traffic against the champion's reference, alarm on drift.

On a schedule it reads the last window of the prediction log (and the labels that
have arrived), compares it with the champion's training reference, shows the verdict
as a table in the run, and when features, scores or quality drift it writes the full
Evidently report to the champion's MLflow run and emits `mlops.drift.detected`, whose
trigger starts the retraining deployment. While a retraining of the model runs, its
cooldown holds or a rollout is in progress, the alarm is recorded in the retraining
ledger instead (see `mlops.retraining.hold_alarm`): no event, no refused flow run.

Before the drift verdict, the window is judged against the data contract learned at
ingestion (`mlops.quality`): a broken pipe (all-null feature, unit change, unseen
categories, wrong dtype) is a data-quality incident, not drift. It is kept as state
(the retraining guard refuses to retrain during it), emitted as
`mlops.data_quality.degraded`, pauses a rollout in progress, and a drift alarm raised
during it is held in the ledger with the incident as its reason. The first clean
window closes the incident (and resumes a rollout the incident paused).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow
from pydantic import BaseModel, ConfigDict, Field

from mlops.dataset_spec import load_spec
from mlops.drift import DriftStatus
from mlops.monitoring import drift_reason
from mlops.quality import DataQualityReport, IncidentChange, conform_window
from mlops.settings import get_settings
from mlops.validation import load_profile
from tasks.drift import (
    compute_drift_task,
    hold_alarm_task,
    load_reference_task,
    publish_report_task,
    raise_alarm_task,
    read_window_task,
)
from tasks.quality import (
    check_data_quality_task,
    pause_rollout_task,
    raise_quality_alarm_task,
    resume_rollout_task,
    track_incident_task,
)


class DriftMonitorParams(BaseModel):
    """What a person (or the hourly schedule) asks the monitor to look at."""

    model_name: str = Field(default="card_fraud", description="The registered model.")
    dataset_config: str = Field(
        default="datasets/card_fraud.yaml", description="The model's dataset spec."
    )
    window_minutes: float = Field(
        default=60.0, gt=0.0, description="How much recent traffic is judged."
    )
    end: datetime | None = Field(default=None, description="Window end (default: now, UTC).")
    html_report: bool = Field(
        default=True, description="Write the full Evidently report when raising an alarm."
    )


class DriftMonitorResult(BaseModel):
    """The verdict, and the alarm's payload when one was raised."""

    model_config = ConfigDict(frozen=True)

    model_version: str
    status: str
    reason: str
    rows: int
    drift_share: float
    drifted_features: tuple[str, ...]
    alarm: bool
    """The window drifted (whether or not the event was emitted)."""
    payload: dict[str, object] | None = None
    """The emitted event's payload; None when no event was emitted."""
    held: str | None = None
    """Why the alarm was recorded in the retraining ledger instead of emitted."""
    quality: DataQualityReport | None = None
    """The data contract's verdict on the window (None when the check is turned off)."""
    quality_incident: str | None = None
    """The open data-quality incident of the model, in words; None when the pipe is fine."""
    quality_payload: dict[str, object] | None = None
    """The emitted `mlops.data_quality.degraded` payload; None when none was emitted."""
    rollout_paused: bool = False
    """This run paused a rollout in progress because of the incident."""


@flow(name="drift-monitor")
def drift_monitor(
    params: DriftMonitorParams = DriftMonitorParams(),  # noqa: B008 - immutable default
) -> DriftMonitorResult:
    """Judge the last window of traffic; emit `mlops.drift.detected` when it drifted,
    unless the retraining ledger says no retraining could start now."""
    settings = get_settings()
    spec = load_spec(Path(params.dataset_config))
    profile = load_profile(spec, settings)
    if profile is None:
        raise ValueError(f"dataset {spec.name!r} has no reference profile: train a model first")
    schema = profile.feature_schema
    end = params.end or datetime.now(UTC)
    start = end - timedelta(minutes=params.window_minutes)
    champion, reference = load_reference_task(params.model_name, spec, schema)
    window = read_window_task(champion, schema, start, end)
    quality = incident = quality_payload = paused = None
    if settings.quality.enabled:
        quality = check_data_quality_task(champion, profile, window)
        update = track_incident_task(champion, quality, end)
        if update.incident is not None and update.incident.open:
            incident = update.incident.describe()
        if quality.degraded:
            quality_payload = raise_quality_alarm_task(champion, quality, update, start, end)
            paused = pause_rollout_task(champion, quality.reason())
        elif update.change is IncidentChange.CLOSED:
            resume_rollout_task(champion)
    window = conform_window(window, schema)  # text where numbers were: NaN, not a crash
    report = compute_drift_task(reference, window)
    alarm = report.status is not DriftStatus.INSUFFICIENT_DATA and report.drift_detected
    payload = None
    held = (
        hold_alarm_task(champion, report, start, end, quality_incident=incident) if alarm else None
    )
    if alarm and held is None:
        link = (
            publish_report_task(champion, spec, schema, window, end) if params.html_report else None
        )
        payload = raise_alarm_task(champion, report, start, end, link)
    return DriftMonitorResult(
        model_version=champion.version,
        status=report.status.value,
        reason=drift_reason(report),
        rows=report.current_rows,
        drift_share=report.share_drifted,
        drifted_features=report.drifted_columns,
        alarm=alarm,
        payload=payload,
        held=None if held is None else held.reason,
        quality=quality,
        quality_incident=incident,
        quality_payload=quality_payload,
        rollout_paused=paused is not None,
    )
