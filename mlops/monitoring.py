"""What the drift monitor compares: the champion's reference and a window of live traffic.

The reference travels with the model: it is the training set the champion was trained
on (named by the version's `training_set.*` lineage tags), scored by the champion
itself so prediction drift has a baseline, with the champion's quality on its own
holdout as the performance reference. The window is the prediction log's answered
rows (shadow scores left out) joined with the labels that have arrived for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.drift import (
    PERFORMANCE_ROWS,
    DriftColumns,
    DriftReport,
    PerformanceMetrics,
    measure_performance,
)
from mlops.errors import ConfigError, SourceError
from mlops.labels import latest_labels
from mlops.modeling import split_time_ordered
from mlops.settings import Settings
from mlops.sources import read_frame
from mlops.storage import local_path
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

    Only what `version` answered users counts: shadow rows (a challenger scoring
    mirrored traffic), a challenger's canary share and a replaced champion's last
    answers are judged by the canary, not against this champion's reference; mixed
    in, they would read as drift of scores and quality right after a promotion. A
    prediction without a label keeps a missing label.
    """
    if predictions.empty:
        return pd.DataFrame(columns=[*schema.columns, SCORE, LABEL])
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


def _with_score(model: ServedModel, frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    if spec.label not in frame.columns:
        raise ConfigError(f"the training set lacks its label column {spec.label!r}")
    positive = len(model.classes) - 1
    scored = frame.copy()
    scored[SCORE] = model.predict_proba(frame)[:, positive]
    scored[LABEL] = model.labels.encode(frame[spec.label])
    return scored
