"""Tasks of the drift monitor: the champion's reference, the live window, the verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.drift import DriftReport, ReferenceStats, compute_drift
from mlops.events import DRIFT_ALARM_HELD, DRIFT_ALARM_OVERDUE, DRIFT_DETECTED, model_resource
from mlops.monitoring import (
    Champion,
    champion_reference,
    drift_payload,
    drift_reason,
    find_champion,
    hold_drift_alarm,
    labelled_window,
    write_drift_report,
)
from mlops.registry.client import registry_client
from mlops.retraining import GuardDecision, retraining_alive
from mlops.rollout.state import read_rollout
from mlops.settings import get_settings
from serving.prediction_log import read_feedback, read_predictions
from tasks.artifacts import artifact_key
from tasks.retraining import expire_stale_retrainings


@task(name="load-drift-reference")
def load_reference_task(
    model_name: str, spec: DatasetSpec, schema: FeatureSchema
) -> tuple[Champion, ReferenceStats]:
    """The champion's reference statistics: computed once per version, then cached.

    Raises:
        ConfigError: there is no champion, or its training set is gone.
    """
    settings = get_settings()
    champion = find_champion(settings, model_name)
    return champion, champion_reference(settings, champion, spec, schema)


@task(name="read-traffic-window")
def read_window_task(
    champion: Champion, schema: FeatureSchema, start: datetime, end: datetime
) -> pd.DataFrame:
    """The champion's answers in [start, end) with the labels that have arrived for them."""
    settings = get_settings()
    predictions = read_predictions(settings, model_name=champion.name, since=start, until=end)
    feedback = read_feedback(settings, since=start)
    window = labelled_window(predictions, feedback, schema, champion.version)
    get_run_logger().info(
        "window %s .. %s: %d predictions answered by v%s, %d labelled",
        start.isoformat(timespec="seconds"),
        end.isoformat(timespec="seconds"),
        len(window),
        champion.version,
        int(window["label"].notna().sum()) if len(window) else 0,
    )
    return window


@task(name="compute-drift")
def compute_drift_task(reference: ReferenceStats, window: pd.DataFrame) -> DriftReport:
    """Per-feature, prediction and performance drift (Evidently's verdicts, fast)."""
    report = compute_drift(reference, window, get_settings().drift)
    create_markdown_artifact(
        key=artifact_key("drift", reference.reference_id),
        markdown=f"## Drift: {drift_reason(report)}\n\n{report.markdown()}",
        description=f"Live traffic against the reference {reference.reference_id}",
    )
    return report


@task(name="publish-drift-report")
def publish_report_task(
    champion: Champion,
    spec: DatasetSpec,
    schema: FeatureSchema,
    window: pd.DataFrame,
    end: datetime,
) -> str | None:
    """The full Evidently report (HTML) on the champion's MLflow run; returns its link.

    Slow (seconds per column), so the monitor only writes it when it raises an alarm.
    """
    link = write_drift_report(get_settings(), champion, spec, schema, window, end)
    create_link_artifact(
        key=artifact_key("drift-report", champion.name),
        link=link,
        link_text=f"Evidently report: {champion.name} v{champion.version}",
        description="Full Evidently drift report, on the champion's MLflow run",
    )
    return link


@task(name="hold-drift-alarm", retries=2, retry_delay_seconds=[2, 10])
def hold_alarm_task(
    champion: Champion,
    report: DriftReport,
    start: datetime,
    end: datetime,
    quality_incident: str | None = None,
) -> GuardDecision | None:
    """Ask the retraining ledger whether the alarm would only be refused; record it if so.

    Retrainings the ledger says are running whose flow run is gone expire first
    (`expire_stale_retrainings`): a killed worker's run must not hold the alarm. Then,
    while a retraining of the model is due or running (`retraining_in_flight`, then the
    ledger), its cooldown holds, a rollout holds retraining (active, before its
    deadline) or a data-quality incident is open (`quality_incident`), the alarm goes
    into the ledger (suppressed, or pending) instead of an event: no retraining flow run
    is started per window only to be refused. A held alarm emits `mlops.drift.held`
    (`waiting_since`: when the model's oldest pending alarm arrived, else this one); when
    that oldest pending alarm has waited longer than `retraining.max_alarm_wait_s`,
    `mlops.drift.overdue` too. Returns the recorded decision, or None when the alarm is
    to be raised.
    """
    settings = get_settings()
    now = datetime.now(UTC)
    expire_stale_retrainings(champion.name, now=now, settings=settings)
    rollout = read_rollout(registry_client(settings), champion.name)
    held = hold_drift_alarm(
        settings,
        champion,
        report,
        start,
        now=now,
        rollout_active=rollout.holds_retraining(now),
        retraining_queued=retraining_in_flight(champion.name, now=now),
        run_id=None if flow_run.id is None else str(flow_run.id),
        quality_incident=quality_incident,
    )
    if held is None:
        return None
    decision, log = held.decision, get_run_logger()
    log.warning(
        "drift detected for %s, alarm not raised (%s): %s",
        champion.name,
        decision.outcome.value,
        decision.reason,
    )
    create_markdown_artifact(
        key=artifact_key("drift-alarm", champion.name),
        markdown=(
            f"## Drift alarm held ({decision.outcome.value})\n\n"
            f"{decision.reason}.\n\nDrift: {drift_reason(report)}; window "
            f"{start.isoformat(timespec='seconds')} .. {end.isoformat(timespec='seconds')}; "
            f"recorded in the retraining ledger as `{decision.key}`."
        ),
        description=f"Drift alarm held: {decision.outcome.value}",
    )
    resource = model_resource(champion.name)
    emit_event(event=DRIFT_ALARM_HELD, resource=resource, payload=held.held_payload())
    overdue = held.overdue_payload()
    if overdue is not None:
        log.warning("%s", held.overdue)
        emit_event(event=DRIFT_ALARM_OVERDUE, resource=resource, payload=overdue)
    return decision


TRAINING_FLOW = "training-pipeline"
"""The flow of `flows/training.py`; its retraining deployments carry the tag `retraining`."""


def retraining_in_flight(model_name: str, *, now: datetime | None = None) -> str | None:
    """The name of a retraining flow run of the model that is due and has not finished
    (scheduled for now or earlier, pending or running), or None.

    Such a run decides on the drift already; another event would only start a run to be
    refused, and the ledger knows a run only once it has started deciding. A nightly
    run scheduled for later is not in flight: the alarm must not wait for it. Nor is a
    run Prefect still says is running whose process is gone (a killed worker's run
    stays Running on the server): one that started longer than
    `retraining.heartbeat_timeout_s` ago is in flight only while its ledger row is
    alive (deciding takes seconds; training beats the row).
    """
    moment = now or datetime.now(UTC)
    wanted = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[TRAINING_FLOW])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=wanted)),
                tags=FlowRunFilterTags(all_=["retraining"]),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=moment),
            ),
        )
    for run in runs:
        retrain = (run.parameters.get("params") or {}).get("retrain") or {}
        if retrain.get("model_name") not in (model_name, None):
            continue
        if run.state_type is StateType.RUNNING and not retraining_alive(
            get_settings(), str(run.id), run.start_time or run.created, moment
        ):
            continue
        return run.name
    return None


@task(name="raise-drift-alarm")
def raise_alarm_task(
    champion: Champion, report: DriftReport, start: datetime, end: datetime, link: str | None
) -> dict[str, object]:
    """Emit `mlops.drift.detected` about the model, with the evidence as payload."""
    payload = drift_payload(
        report,
        model_name=champion.name,
        model_version=champion.version,
        window_start=start,
        window_end=end,
        report_url=link,
    )
    emit_event(
        event=DRIFT_DETECTED,
        resource=model_resource(champion.name),
        payload=payload,
    )
    get_run_logger().warning("drift alarm for %s: %s", champion.name, payload["reason"])
    return payload
