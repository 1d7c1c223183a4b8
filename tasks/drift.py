"""Tasks of the drift monitor: the champion's reference, the live window, the verdict."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger
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
from mlops.events import DRIFT_DETECTED, model_resource_id
from mlops.monitoring import (
    build_reference_frame,
    drift_columns,
    drift_payload,
    drift_reason,
    labelled_window,
    training_set_path,
)
from mlops.registry.client import CHAMPION, download_artifact, registry_client, version_by_alias
from mlops.settings import get_settings
from quantization.served import load_served_model
from serving.prediction_log import read_feedback, read_predictions
from tasks.artifacts import artifact_key


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
    model_name: str, schema: FeatureSchema, start: datetime, end: datetime
) -> pd.DataFrame:
    """Answered predictions in [start, end) with the labels that have arrived for them."""
    settings = get_settings()
    predictions = read_predictions(settings, model_name=model_name, since=start, until=end)
    feedback = read_feedback(settings, since=start)
    window = labelled_window(predictions, feedback, schema)
    get_run_logger().info(
        "window %s .. %s: %d answered predictions, %d labelled",
        start.isoformat(timespec="seconds"),
        end.isoformat(timespec="seconds"),
        len(window),
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
