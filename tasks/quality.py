"""Tasks of the data-quality check of served traffic: verdict, incident, event, rollout.

The drift monitor runs these on every window before it judges drift: a broken pipe
(all-null feature, unit change, unseen categories, wrong dtype) is an incident, not
drift. It is shown as an artifact, kept as state (`mlops.quality.record_window`),
announced as `mlops.data_quality.degraded`, and pauses a rollout in progress, whose
evidence would be judged on broken traffic.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger

from mlops.events import DATA_QUALITY_DEGRADED, ROLLOUT_PAUSED, model_resource
from mlops.monitoring import Champion
from mlops.quality import (
    DataQualityReport,
    IncidentChange,
    IncidentUpdate,
    check_quality,
    record_window,
)
from mlops.registry.client import registry_client
from mlops.rollout.state import (
    RolloutError,
    RolloutState,
    RolloutStatus,
    pause_rollout,
    read_rollout,
    resume_rollout,
)
from mlops.settings import get_settings
from mlops.validation import ReferenceProfile
from tasks.artifacts import artifact_key
from tasks.retry import transient_only

PAUSE_PREFIX = "data-quality incident: "
"""How a rollout paused by an incident says so; only such a pause is resumed on recovery."""


@task(name="check-data-quality")
def check_data_quality_task(
    champion: Champion, profile: ReferenceProfile, window: pd.DataFrame
) -> DataQualityReport:
    """Run the champion's data contract over the window's features; show the verdict."""
    settings = get_settings()
    report = check_quality(profile, window, settings.validation, settings.quality)
    logger = get_run_logger()
    if report.degraded:
        logger.warning("data quality of %s degraded: %s", champion.name, report.reason())
    else:
        logger.info("data quality of %s: %s", champion.name, report.reason())
    create_markdown_artifact(
        key=artifact_key("data-quality", champion.name),
        markdown=f"## Data quality: {report.status.value}\n\n{report.markdown()}",
        description=f"Served traffic of {champion.name} v{champion.version} against the "
        f"data contract of {profile.dataset!r}",
    )
    return report


@task(
    name="track-quality-incident",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def track_incident_task(
    champion: Champion, report: DataQualityReport, end: datetime
) -> IncidentUpdate:
    """Open, extend or close the model's data-quality incident (state the guard reads)."""
    update = record_window(get_settings(), champion.name, champion.version, report, now=end)
    if update.change is not IncidentChange.NONE:
        get_run_logger().info("data-quality incident of %s %s", champion.name, update.change.value)
    return update


@task(name="raise-data-quality-alarm")
def raise_quality_alarm_task(
    champion: Champion,
    report: DataQualityReport,
    update: IncidentUpdate,
    start: datetime,
    end: datetime,
) -> dict[str, object]:
    """Emit `mlops.data_quality.degraded` about the model, with the failing expectations.

    The event id is derived from the model, version and window, so a retried run does
    not announce the same window twice.
    """
    incident = update.incident
    payload: dict[str, object] = {
        "model_name": champion.name,
        "version": champion.version,
        "dataset": report.dataset,
        "reason": report.reason(),
        "failing": report.failing_payload(),
        "broken_features": list(report.broken_features),
        "rows": report.rows,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "new_incident": update.change is IncidentChange.OPENED,
        "incident_opened_at": None if incident is None else incident.opened_at.isoformat(),
        "incident_windows": None if incident is None else incident.windows,
    }
    event_id = uuid.uuid5(
        uuid.NAMESPACE_URL,
        f"{DATA_QUALITY_DEGRADED}/{champion.name}/{champion.version}/{end.isoformat()}",
    )
    emit_event(
        event=DATA_QUALITY_DEGRADED,
        resource=model_resource(champion.name),
        payload=payload,
        id=event_id,
    )
    get_run_logger().warning("data-quality alarm for %s: %s", champion.name, payload["reason"])
    return payload


@task(
    name="pause-rollout-for-quality",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def pause_rollout_task(champion: Champion, reason: str) -> RolloutState | None:
    """Pause a running rollout of the model and emit `mlops.rollout.paused`.

    A canary judged on broken traffic would promote or roll back on garbage. Returns
    the paused state, or None when no rollout was running (a paused one stays paused).
    """
    client = registry_client(get_settings())
    state = read_rollout(client, champion.name)
    if state.status is not RolloutStatus.RUNNING:
        return None
    try:
        paused = pause_rollout(client, champion.name, f"{PAUSE_PREFIX}{reason}")
    except RolloutError:  # decided (promoted, rolled back) since it was read
        return None
    if not paused.reason.startswith(PAUSE_PREFIX):  # a person paused it meanwhile
        return None
    emit_event(
        event=ROLLOUT_PAUSED,
        resource=model_resource(champion.name),
        payload={
            "model_name": champion.name,
            "version": paused.challenger_version,
            "champion_version": champion.version,
            "stage": paused.stage,
            "reason": paused.reason,
        },
    )
    get_run_logger().warning(
        "rollout of %s v%s paused: %s", champion.name, paused.challenger_version, reason
    )
    return paused


@task(
    name="resume-rollout-after-quality",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def resume_rollout_task(champion: Champion) -> RolloutState | None:
    """Resume a rollout this incident paused, once a window is clean again.

    Only a pause whose reason says it came from a data-quality incident is resumed; a
    person's pause stays. Returns the resumed state, or None.
    """
    settings = get_settings()
    if not settings.quality.resume_rollout:
        return None
    client = registry_client(settings)
    state = read_rollout(client, champion.name)
    if state.status is not RolloutStatus.PAUSED or not state.reason.startswith(PAUSE_PREFIX):
        return None
    try:
        resumed = resume_rollout(client, champion.name)
    except RolloutError:  # decided or expired since it was read
        return None
    get_run_logger().info(
        "rollout of %s v%s resumed: the data-quality incident is over",
        champion.name,
        resumed.challenger_version,
    )
    return resumed
