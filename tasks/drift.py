"""Tasks of the drift monitor: the champion's reference, the live window, the verdict."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
from pydantic import BaseModel, ConfigDict

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.drift import (
    DriftReport,
    ReferenceStats,
    compute_drift,
    load_or_build_reference,
    write_evidently_report,
)
from mlops.errors import ConfigError
from mlops.events import (
    DRIFT_ALARM_HELD,
    DRIFT_ALARM_OVERDUE,
    DRIFT_DETECTED,
    model_resource_id,
)
from mlops.monitoring import (
    build_reference_frame,
    drift_columns,
    drift_payload,
    drift_reason,
    labelled_window,
    training_set_path,
)
from mlops.registry.client import CHAMPION, download_artifact, registry_client, version_by_alias
from mlops.retraining import (
    GuardDecision,
    RetrainRequest,
    RetrainTrigger,
    hold_alarm,
    is_alive,
    oldest_waiting_alarm,
    overdue_reason,
    run_of_flow_run,
)
from mlops.rollout.state import read_rollout
from mlops.settings import get_settings
from quantization.served import load_served_model
from serving.prediction_log import read_feedback, read_predictions
from tasks.artifacts import artifact_key
from tasks.retraining import expire_stale_retrainings


class Champion(BaseModel):
    """The version the monitor judges traffic against, and where its reference is cached."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    reference_id: str
    cache_dir: str


@task(name="load-drift-reference")
def load_reference_task(
    model_name: str, spec: DatasetSpec, schema: FeatureSchema
) -> tuple[Champion, ReferenceStats]:
    """The champion's reference statistics: computed once per version, then cached.

    Raises:
        ConfigError: there is no champion, or its training set is gone.
    """
    settings = get_settings()
    client = registry_client(settings)
    version = version_by_alias(client, model_name, CHAMPION)
    if version is None:
        raise ConfigError(f"model {model_name!r} has no champion: nothing to monitor")
    champion = Champion(
        name=model_name,
        version=str(version.version),
        run_id=version.run_id or "",
        reference_id=f"{model_name}-v{version.version}",
        cache_dir=str(settings.home / "drift" / "references"),
    )

    reference = load_or_build_reference(
        Path(champion.cache_dir),
        champion.reference_id,
        drift_columns(schema),
        lambda: load_reference_frame(champion, spec),
        decision_threshold=settings.drift.decision_threshold,
    )
    return champion, reference


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
    settings = get_settings()
    client = registry_client(settings)
    reference = load_reference_frame(champion, spec)
    columns = drift_columns(schema)
    with tempfile.TemporaryDirectory(prefix="mlops-drift-") as tmp:
        html = Path(tmp) / f"drift-{end:%Y%m%dT%H%M%S}.html"
        write_evidently_report(reference, window, columns, html, settings.drift)
        client.log_artifact(champion.run_id, str(html), "drift")
    run = client.get_run(champion.run_id)
    link = (
        f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/"
        f"{champion.run_id}/artifacts/drift/{html.name}"
    )
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
    queued = retraining_in_flight(champion.name, now=now)
    request = RetrainRequest(
        trigger=RetrainTrigger.DRIFT,
        reason=drift_reason(report),
        drift_share=report.share_drifted,
        drifted_features=report.drifted_columns,
        onset=start,
        window_start=start,
        model_name=champion.name,
    )
    decision = hold_alarm(
        request,
        settings,
        now=now,
        rollout_active=rollout.holds_retraining(now),
        retraining_queued=queued,
        run_id=None if flow_run.id is None else str(flow_run.id),
        quality_incident=quality_incident,
    )
    if decision is None:
        return None
    log = get_run_logger()
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
    oldest = oldest_waiting_alarm(settings, champion.name)
    resource = {
        "prefect.resource.id": model_resource_id(champion.name),
        "prefect.resource.name": champion.name,
    }
    waiting_since = decision.decided_at if oldest is None else oldest.received_at
    emit_event(
        event=DRIFT_ALARM_HELD,
        resource=resource,
        payload={
            "version": champion.version,
            "reason": decision.reason,
            "outcome": decision.outcome.value,
            "key": decision.key,
            "waiting_since": min(waiting_since, decision.decided_at).isoformat(),
        },
    )
    overdue = (
        None
        if oldest is None
        else overdue_reason(oldest, now, settings.retraining.max_alarm_wait_s)
    )
    if oldest is not None and overdue is not None:
        log.warning("%s", overdue)
        emit_event(
            event=DRIFT_ALARM_OVERDUE,
            resource=resource,
            payload={
                "version": champion.version,
                "reason": overdue,
                "oldest_key": oldest.key,
                "waiting_s": round((now - oldest.received_at).total_seconds(), 3),
            },
        )
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
        if run.state_type is StateType.RUNNING and not _running_alive(
            str(run.id), run.start_time or run.created, moment
        ):
            continue
        return run.name
    return None


def _running_alive(run_id: str, started: datetime | None, now: datetime) -> bool:
    settings = get_settings()
    limit = timedelta(seconds=settings.retraining.heartbeat_timeout_s)
    if started is None or now - started <= limit:
        return True
    opened = run_of_flow_run(settings, run_id)
    return opened is not None and is_alive(opened, now, settings.retraining)


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
        resource={
            "prefect.resource.id": model_resource_id(champion.name),
            "prefect.resource.name": champion.name,
        },
        payload=payload,
    )
    get_run_logger().warning("drift alarm for %s: %s", champion.name, payload["reason"])
    return payload


def load_reference_frame(champion: Champion, spec: DatasetSpec) -> pd.DataFrame:
    """The champion's scored training set, for the Evidently report (not cached)."""
    settings = get_settings()
    client = registry_client(settings)
    tags = dict(client.get_model_version(champion.name, champion.version).tags or {})
    path = training_set_path(tags, settings, spec.name)
    with tempfile.TemporaryDirectory(prefix="mlops-champion-") as tmp:
        folder = download_artifact(client, champion.name, champion.version, Path(tmp))
        model = load_served_model(folder, tags.get("artifact.sha256"))
        return build_reference_frame(model, path, spec).frame
