"""The candidate model of a pipeline run: refit on train + valid, judged on the holdout.

The tuner picks hyperparameters and an epoch count on (train, valid); the candidate is
trained once more on both with those, then scored on the time-ordered holdout next to
a logistic-regression baseline and the current champion, all on the very same rows.

The pipeline's stages without Prefect: `train_and_log_candidate` (the candidate, its
metrics and figures on the parent MLflow run, its pyfunc model) and `judge_candidate`
(the quality gate against the baseline and the registered champion).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities.model_registry import ModelVersion

from mlops.contracts import GateDecision, TrainingResult
from mlops.lineage import lineage_key
from mlops.modeling import (
    Metrics,
    TabularModel,
    evaluate,
    logistic_baseline,
    refit,
    save_model,
    split_time_ordered,
)
from mlops.modeling.evaluate import confusion, roc_curve_points
from mlops.modeling.plots import confusion_figure, roc_figure
from mlops.registry.client import (
    CHAMPION,
    LINEAGE_KEY_TAG,
    SHA_TAG,
    load_registered_model,
    registry_client,
    version_by_alias,
)
from mlops.registry.gate import quality_gate
from mlops.registry.pyfunc import log_pyfunc_model
from mlops.settings import Settings
from mlops.sources import read_frame
from mlops.tracking import configure_tracking
from mlops.tracking.mlflow_tracking import tracking_client
from mlops.tracking.plots import log_figure
from mlops.tuning import StudySummary, TuningData
from quantization.served import load_served_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """The refit model, its holdout and the evidence the quality gate weighs."""

    model: TabularModel
    epochs: int
    train_rows: int
    holdout: pd.DataFrame
    metrics: Metrics
    baseline: Metrics
    seconds: float


def train_candidate(data: TuningData, study: StudySummary) -> Candidate:
    """Refit the best trial's configuration on train + valid and score it on the holdout.

    The epoch count is the best trial's early-stopping epoch (at least one).
    """
    started = time.perf_counter()
    frame = read_frame(data.path)
    splits = split_time_ordered(
        frame,
        data.spec,
        holdout_fraction=data.holdout_fraction,
        validation_fraction=data.validation_fraction,
    )
    train = splits.train_and_valid
    epochs = max(1, study.best_epoch or study.best_params.max_epochs)
    model = refit(study.best_params, train, data.spec, data.feature_schema, epochs)
    metrics = evaluate(model, splits.holdout, data.spec)
    baseline = logistic_baseline(train, splits.holdout, data.spec, data.feature_schema)
    seconds = time.perf_counter() - started
    logger.info(
        "candidate (%d epochs on %d rows): holdout %s; baseline %s",
        epochs,
        len(train),
        metrics,
        baseline,
    )
    return Candidate(
        model=model,
        epochs=epochs,
        train_rows=len(train),
        holdout=splits.holdout,
        metrics=metrics,
        baseline=baseline,
        seconds=seconds,
    )


def score_stored_model(
    directory: Path, sha256: str, holdout: pd.DataFrame, data: TuningData
) -> Metrics:
    """Metrics of a stored model (the champion, fp32 or quantized) on the candidate's holdout.

    The artifact's digest is checked before anything is loaded.
    """
    return evaluate(load_served_model(directory, sha256), holdout, data.spec)


def train_and_log_candidate(
    settings: Settings, data: TuningData, study: StudySummary, parent_run_id: str
) -> TrainingResult:
    """Refit the best configuration (`train_candidate`) and log it to the parent run:
    the model as an MLflow pyfunc, holdout and baseline metrics, the best parameters,
    the confusion matrix and ROC figures."""
    started = time.perf_counter()
    configure_tracking(settings)
    candidate = train_candidate(data, study)
    client = tracking_client(settings.resolved_tracking_uri)
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        artifact = save_model(candidate.model, Path(tmp) / "model")
        model_uri = log_pyfunc_model(parent_run_id, artifact, candidate.model, candidate.holdout)
    metrics = candidate.metrics.model_dump()
    baseline = candidate.baseline.model_dump()
    for name, value in metrics.items():
        client.log_metric(parent_run_id, f"holdout_{name}", value)
    for name, value in baseline.items():
        client.log_metric(parent_run_id, f"baseline_{name}", value)
    for name, value in study.best_params.model_dump().items():
        client.log_param(parent_run_id, f"best_{name}", str(value))
    classes = candidate.model.classes
    log_figure(
        parent_run_id,
        confusion_figure(confusion(candidate.model, candidate.holdout, data.spec), classes),
        "evaluation/confusion_matrix.png",
        client=client,
    )
    log_figure(
        parent_run_id,
        roc_figure(roc_curve_points(candidate.model, candidate.holdout, data.spec)),
        "evaluation/roc.png",
        client=client,
    )
    return TrainingResult(
        dataset=data.spec.name,
        mlflow_run_id=parent_run_id,
        experiment=str(client.get_run(parent_run_id).info.experiment_id),
        study_name=study.study_name,
        best_trial=study.best_trial_number,
        params=study.best_params.model_dump(),
        epochs=candidate.epochs,
        metrics=metrics,
        baseline_metrics=baseline,
        model_uri=model_uri,
        artifact_sha256=artifact.sha256,
        training_set_sha256=data.sha256,
        duration_s=time.perf_counter() - started,
    )


def champion_is_candidate(champion: ModelVersion | None, training: TrainingResult) -> bool:
    """The champion was registered from this very training (same lineage key: same
    training set, parameters and epochs): this run re-made it."""
    return champion is not None and (champion.tags or {}).get(LINEAGE_KEY_TAG) == lineage_key(
        training
    )


def judge_candidate(settings: Settings, data: TuningData, training: TrainingResult) -> GateDecision:
    """The quality gate: beat the baseline, and do not lose to the champion on the same
    holdout rows.

    The champion (unless it is this candidate, `champion_is_candidate`) is downloaded,
    checked against its `artifact.sha256` tag and scored on the candidate's holdout.

    Raises:
        ArtifactIntegrityError: the champion's artifact does not match its digest.
    """
    client = registry_client(settings)
    champion = version_by_alias(client, data.spec.name, CHAMPION)
    same_lineage = champion_is_candidate(champion, training)
    champion_metrics = None
    if champion is not None and not same_lineage:
        holdout = split_time_ordered(
            read_frame(data.path),
            data.spec,
            holdout_fraction=data.holdout_fraction,
            validation_fraction=data.validation_fraction,
        ).holdout
        model = load_registered_model(
            client, data.spec.name, str(champion.version), (champion.tags or {}).get(SHA_TAG)
        )
        champion_metrics = evaluate(model, holdout, data.spec).model_dump()
    return quality_gate(
        training.metrics,
        training.baseline_metrics,
        champion_metrics,
        settings.gate,
        champion_version=None if champion is None else str(champion.version),
        champion_is_candidate=same_lineage,
    )
