"""What the drift monitor compares: the champion's reference and a window of live traffic.

The reference travels with the model: it is the training set the champion was trained
on (named by the version's `training_set.*` lineage tags), scored by the champion
itself so prediction drift has a baseline, with the champion's quality on its own
holdout as the performance reference. The window is the prediction log's answered
rows (shadow scores and pinned versions left out) joined with the labels that have
arrived for them.

The monitor's stages without Prefect live here too: which version is the champion
(`find_champion`), its cached reference statistics (`champion_reference`), the full
Evidently report on its MLflow run (`write_drift_report`), and whether a drift alarm
is held in the retraining ledger instead of raised (`hold_drift_alarm`).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.drift import (
    PERFORMANCE_ROWS,
    DriftColumns,
    DriftReport,
    PerformanceMetrics,
    ReferenceStats,
    load_or_build_reference,
    measure_performance,
    write_evidently_report,
)
from mlops.errors import ConfigError, SourceError
from mlops.labels import latest_labels
from mlops.modeling import split_time_ordered
from mlops.registry.client import (
    CHAMPION,
    SHA_TAG,
    load_registered_model,
    registry_client,
    version_by_alias,
)
from mlops.retraining import (
    AlarmRecord,
    GuardDecision,
    RetrainRequest,
    RetrainTrigger,
    hold_alarm,
    oldest_waiting_alarm,
    overdue_reason,
)
from mlops.settings import Settings
from mlops.sources import read_frame
from mlops.storage import local_path
from mlops.traffic import routed

if TYPE_CHECKING:  # the model is loaded only to build a reference (cached per version)
    from quantization.served import ServedModel

logger = logging.getLogger(__name__)

SCORE = "score"
LABEL = "label"
TRAINING_SET_URI_TAG = "training_set.uri"
TRAINING_SET_SHA_TAG = "training_set.sha256"


@dataclass(frozen=True)
class Reference:
    """The champion's training snapshot, scored by the champion, and its holdout quality."""

    frame: pd.DataFrame
    performance: PerformanceMetrics


def drift_columns(schema: FeatureSchema) -> DriftColumns:
    """The model's features, its positive-class score and the label, by kind."""
    return DriftColumns.from_schema(schema, prediction=SCORE, label=LABEL)


def training_set_path(tags: dict[str, str], settings: Settings, dataset: str) -> Path:
    """A local file holding the champion's training set, from its lineage tags.

    The tagged URI may be a local path or an `s3://` object (the production profile),
    fetched once into the cache and checked against the tagged hash.

    Raises:
        ConfigError: the tags name no training set, or it is gone.
    """
    uri = tags.get(TRAINING_SET_URI_TAG)
    sha = tags.get(TRAINING_SET_SHA_TAG)
    if uri:
        try:
            return local_path(uri, settings, sha)
        except SourceError:
            pass  # moved or removed: try the content-addressed copy below
    if sha:
        path = settings.training_sets_dir / dataset / f"{sha}.parquet"
        if path.is_file():
            return path
    raise ConfigError(
        f"the champion's training set is not available (tags {TRAINING_SET_URI_TAG}={uri!r}, "
        f"{TRAINING_SET_SHA_TAG}={sha!r}): cannot build the drift reference"
    )


def build_reference_frame(
    model: ServedModel,
    path: Path,
    spec: DatasetSpec,
    *,
    holdout_fraction: float = 0.2,
    validation_fraction: float = 0.2,
) -> Reference:
    """The training set scored by the model, and the model's quality on its holdout split."""
    frame = read_frame(path)
    scored = _with_score(model, frame, spec)
    holdout = split_time_ordered(
        scored, spec, holdout_fraction=holdout_fraction, validation_fraction=validation_fraction
    ).holdout
    performance = measure_performance(holdout[SCORE].to_numpy(), holdout[LABEL].to_numpy())
    scored[PERFORMANCE_ROWS] = scored[spec.timestamp] >= holdout[spec.timestamp].min()
    return Reference(frame=scored, performance=performance)


def labelled_window(
    predictions: pd.DataFrame, feedback: pd.DataFrame, schema: FeatureSchema, version: str
) -> pd.DataFrame:
    """The champion's answered predictions with their features, score and (when it
    arrived) label.

    Only what `version` answered routed users counts: shadow rows (a challenger
    scoring mirrored traffic), a challenger's canary share and a replaced champion's
    last answers are judged by the canary, not against this champion's reference;
    mixed in, they would read as drift of scores and quality right after a promotion.
    Rows whose version a client pinned are that client's choice of traffic, not the
    live population (`mlops.traffic`). A prediction without a label keeps a missing
    label.
    """
    if predictions.empty:
        return pd.DataFrame(columns=[*schema.columns, SCORE, LABEL])
    predictions = routed(predictions)
    answered = predictions[
        ~predictions["shadow"].astype(bool) & (predictions["model_version"].astype(str) == version)
    ]
    labels = latest_labels(feedback)
    window = answered[[c for c in schema.columns if c in answered.columns]].copy()
    window[SCORE] = answered[SCORE].astype(float)
    window[LABEL] = answered["prediction_id"].astype(str).map(labels).astype(float)
    return window.reset_index(drop=True)


def drift_payload(
    report: DriftReport,
    *,
    model_name: str,
    model_version: str,
    window_start: datetime,
    window_end: datetime,
    report_url: str | None,
) -> dict[str, object]:
    """The evidence a drift event carries: what drifted, in which window, where to read more."""
    performance = report.performance
    return {
        "model_name": model_name,
        "model_version": model_version,
        "drift_share": report.share_drifted,
        "drifted_features": list(report.drifted_columns),
        "dataset_drift": report.dataset_drift,
        "prediction_drift": report.prediction_drift,
        "performance_degraded": bool(performance is not None and performance.degraded),
        "roc_auc": None if performance is None else performance.current.roc_auc,
        "reference_roc_auc": None
        if performance is None or performance.reference is None
        else performance.reference.roc_auc,
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "rows": report.current_rows,
        "report_url": report_url,
        "reason": drift_reason(report),
    }


def drift_reason(report: DriftReport) -> str:
    """One sentence a person reads: why the monitor raised (or did not raise) the alarm."""
    parts: list[str] = []
    if report.dataset_drift:
        parts.append(
            f"{report.n_drifted} of {len(report.evaluated_columns)} features drifted "
            f"(share {report.share_drifted:.2f} ≥ {report.drift_share:.2f})"
        )
    if report.prediction_drift:
        parts.append("the score distribution drifted")
    if report.performance is not None and report.performance.degraded:
        parts.append(f"performance {report.performance.summary}")
    if not parts:
        return f"no drift: {report.message or f'share {report.share_drifted:.2f}'}"
    return "; ".join(parts)


class Champion(BaseModel):
    """The version the monitor judges traffic against, and where its reference is cached."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    reference_id: str
    cache_dir: str


def find_champion(settings: Settings, model_name: str) -> Champion:
    """The model's `champion` version, as the monitor names it.

    Raises:
        ConfigError: the model has no champion.
    """
    version = version_by_alias(registry_client(settings), model_name, CHAMPION)
    if version is None:
        raise ConfigError(f"model {model_name!r} has no champion: nothing to monitor")
    return Champion(
        name=model_name,
        version=str(version.version),
        run_id=version.run_id or "",
        reference_id=f"{model_name}-v{version.version}",
        cache_dir=str(settings.home / "drift" / "references"),
    )


def champion_reference(
    settings: Settings, champion: Champion, spec: DatasetSpec, schema: FeatureSchema
) -> ReferenceStats:
    """The champion's reference statistics: computed once per version, then cached.

    Raises:
        ConfigError: the champion's training set is gone.
    """
    return load_or_build_reference(
        Path(champion.cache_dir),
        champion.reference_id,
        drift_columns(schema),
        lambda: champion_reference_frame(settings, champion, spec),
        decision_threshold=settings.drift.decision_threshold,
    )


def champion_reference_frame(
    settings: Settings, champion: Champion, spec: DatasetSpec
) -> pd.DataFrame:
    """The champion's training set scored by the champion (not cached).

    The version is downloaded and checked against its `artifact.sha256` tag first.

    Raises:
        ConfigError: the champion's training set is gone.
        ArtifactIntegrityError: the version's artifact does not match its digest.
    """
    client = registry_client(settings)
    tags = dict(client.get_model_version(champion.name, champion.version).tags or {})
    path = training_set_path(tags, settings, spec.name)
    model = load_registered_model(client, champion.name, champion.version, tags.get(SHA_TAG))
    return build_reference_frame(model, path, spec).frame


def write_drift_report(
    settings: Settings,
    champion: Champion,
    spec: DatasetSpec,
    schema: FeatureSchema,
    window: pd.DataFrame,
    end: datetime,
) -> str:
    """Write the full Evidently report (HTML) of the window against the champion's
    training set to the champion's MLflow run (`drift/`); returns its MLflow UI link.

    Slow (seconds per column): the monitor only writes it when it raises an alarm.
    """
    client = registry_client(settings)
    reference = champion_reference_frame(settings, champion, spec)
    with tempfile.TemporaryDirectory(prefix="mlops-drift-") as tmp:
        html = Path(tmp) / f"drift-{end:%Y%m%dT%H%M%S}.html"
        write_evidently_report(reference, window, drift_columns(schema), html, settings.drift)
        client.log_artifact(champion.run_id, str(html), "drift")
    run = client.get_run(champion.run_id)
    return (
        f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/"
        f"{champion.run_id}/artifacts/drift/{html.name}"
    )


def drift_request(champion: Champion, report: DriftReport, start: datetime) -> RetrainRequest:
    """The retraining a drift alarm asks for: the window's drift, from the window's start."""
    return RetrainRequest(
        trigger=RetrainTrigger.DRIFT,
        reason=drift_reason(report),
        drift_share=report.share_drifted,
        drifted_features=report.drifted_columns,
        onset=start,
        window_start=start,
        model_name=champion.name,
    )


@dataclass(frozen=True)
class HeldAlarm:
    """A drift alarm recorded in the retraining ledger instead of raised, and how long
    the model's alarms have waited."""

    version: str
    """The champion version whose traffic drifted."""
    decision: GuardDecision
    oldest: AlarmRecord | None
    """The model's oldest alarm waiting for a retraining (None: none waits)."""
    overdue: str | None
    """Why `oldest` has waited longer than `retraining.max_alarm_wait_s` (None: it has not)."""
    now: datetime

    @property
    def waiting_since(self) -> datetime:
        """When the model's oldest waiting alarm arrived, else this alarm's decision."""
        since = self.decision.decided_at if self.oldest is None else self.oldest.received_at
        return min(since, self.decision.decided_at)

    def held_payload(self) -> dict[str, object]:
        """What `mlops.drift.held` carries."""
        return {
            "version": self.version,
            "reason": self.decision.reason,
            "outcome": self.decision.outcome.value,
            "key": self.decision.key,
            "waiting_since": self.waiting_since.isoformat(),
        }

    def overdue_payload(self) -> dict[str, object] | None:
        """What `mlops.drift.overdue` carries; None when no alarm waited too long."""
        if self.oldest is None or self.overdue is None:
            return None
        return {
            "version": self.version,
            "reason": self.overdue,
            "oldest_key": self.oldest.key,
            "waiting_s": round((self.now - self.oldest.received_at).total_seconds(), 3),
        }


def hold_drift_alarm(
    settings: Settings,
    champion: Champion,
    report: DriftReport,
    start: datetime,
    *,
    now: datetime,
    rollout_active: bool,
    retraining_queued: str | None = None,
    run_id: str | None = None,
    quality_incident: str | None = None,
) -> HeldAlarm | None:
    """Record the drift alarm in the retraining ledger when a retraining could only be
    refused now (`mlops.retraining.hold_alarm`): a retraining of the model queued
    (`retraining_queued`) or running, its cooldown, a rollout holding retraining, a
    data-quality incident. Returns None when the alarm is to be raised.
    """
    decision = hold_alarm(
        drift_request(champion, report, start),
        settings,
        now=now,
        rollout_active=rollout_active,
        retraining_queued=retraining_queued,
        run_id=run_id,
        quality_incident=quality_incident,
    )
    if decision is None:
        return None
    oldest = oldest_waiting_alarm(settings, champion.name)
    overdue = (
        None
        if oldest is None
        else overdue_reason(oldest, now, settings.retraining.max_alarm_wait_s)
    )
    return HeldAlarm(
        version=champion.version, decision=decision, oldest=oldest, overdue=overdue, now=now
    )


def _with_score(model: ServedModel, frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    if spec.label not in frame.columns:
        raise ConfigError(f"the training set lacks its label column {spec.label!r}")
    positive = len(model.classes) - 1
    scored = frame.copy()
    scored[SCORE] = model.predict_proba(frame)[:, positive]
    scored[LABEL] = model.labels.encode(frame[spec.label])
    return scored
