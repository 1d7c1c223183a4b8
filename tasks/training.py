"""Tasks: tune (trials in parallel), train the candidate, gate it, register it."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger

from mlops.candidate import score_stored_model, train_candidate
from mlops.contracts import GateDecision, ModelVersionRef, QuantizationResult, TrainingResult
from mlops.events import MODEL_REGISTERED, model_resource_id
from mlops.lineage import lineage_key
from mlops.modeling import EpochRecord, save_model, split_time_ordered
from mlops.modeling.evaluate import confusion, roc_curve_points
from mlops.modeling.plots import confusion_figure, learning_curves_figure, roc_figure
from mlops.registry.client import (
    CHAMPION,
    LINEAGE_KEY_TAG,
    download_artifact,
    register_challenger,
    registry_client,
    version_by_alias,
)
from mlops.registry.gate import quality_gate
from mlops.registry.pyfunc import log_pyfunc_model
from mlops.settings import get_settings
from mlops.sources import read_frame
from mlops.tracking import TrialTracker, configure_tracking, log_figure, log_study_plots
from mlops.tracking.mlflow_tracking import tracking_client
from mlops.tuning import StudySummary, TuningData, best_trial_summary, open_study, run_trials
from mlops.tuning.study import ATTR_HISTORY
from tasks.artifacts import artifact_key
from tasks.retry import transient_only


@task(name="open-study")
def open_study_task(study_name: str) -> None:
    """Create the study (and its tables) once, before workers join it concurrently."""
    open_study(study_name, get_settings())


@task(name="run-trials", retries=1, retry_delay_seconds=5, retry_condition_fn=transient_only)
def run_trials_task(
    study_name: str, data: TuningData, parent_run_id: str, worker: int
) -> list[int]:
    """One worker's share of the study; the study's storage keeps the budget shared.

    A retry resumes the same study: finished trials count, nothing is repeated.
    """
    settings = get_settings()
    tracker = TrialTracker.for_parent_run(settings, parent_run_id)
    numbers = run_trials(study_name, None, data, settings, tracker, worker=worker)
    get_run_logger().info("worker %d ran trials %s", worker, numbers)
    return numbers


@task(name="summarize-study")
def summarize_study_task(study_name: str, parent_run_id: str, dataset: str) -> StudySummary:
    """The best trial and a leaderboard; the Optuna plots go to the parent MLflow run."""
    settings = get_settings()
    study = open_study(study_name, settings)
    summary = best_trial_summary(study)
    client = tracking_client(settings.resolved_tracking_uri)
    log_study_plots(parent_run_id, study, client=client)
    best = study.best_trial
    curve = [EpochRecord(**epoch) for epoch in best.user_attrs.get(ATTR_HISTORY, [])]
    if curve:
        log_figure(
            parent_run_id,
            learning_curves_figure(curve, summary.best_epoch),
            "evaluation/learning_curves_best_trial.png",
            client=client,
        )
    create_table_artifact(
        key=artifact_key("hpo-leaderboard", dataset),
        table=[
            {
                "trial": row.number,
                "state": row.state,
                "valid loss": "" if row.value is None else f"{row.value:.5f}",
                "epochs": row.epochs_run,
                "seconds": "" if row.duration_s is None else f"{row.duration_s:.1f}",
                **{k: _short(v) for k, v in row.params.items() if k not in _BUDGET},
            }
            for row in summary.leaderboard
        ],
        description=(
            f"Study `{study_name}`: {summary.n_complete} complete, {summary.n_pruned} pruned, "
            f"{summary.n_failed} failed; best trial {summary.best_trial_number}"
        ),
    )
    return summary


@task(name="train-candidate")
def train_candidate_task(
    data: TuningData, study: StudySummary, parent_run_id: str
) -> TrainingResult:
    """Refit the best configuration, score it on the holdout, log it to MLflow."""
    started = time.perf_counter()
    settings = get_settings()
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
    result = TrainingResult(
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
    _publish_evaluation(result)
    return result


@task(name="quality-gate")
def quality_gate_task(data: TuningData, training: TrainingResult) -> GateDecision:
    """Beat the baseline, and do not lose to the champion on the same holdout rows."""
    settings = get_settings()
    client = registry_client(settings)
    champion = version_by_alias(client, data.spec.name, CHAMPION)
    champion_metrics = None
    same_lineage = champion is not None and (champion.tags or {}).get(
        LINEAGE_KEY_TAG
    ) == lineage_key(training)
    if champion is not None and not same_lineage:
        holdout = split_time_ordered(
            read_frame(data.path),
            data.spec,
            holdout_fraction=data.holdout_fraction,
            validation_fraction=data.validation_fraction,
        ).holdout
        sha = (champion.tags or {}).get("artifact.sha256", "")
        with tempfile.TemporaryDirectory(prefix="mlops-champion-") as tmp:
            folder = download_artifact(client, data.spec.name, str(champion.version), Path(tmp))
            champion_metrics = score_stored_model(folder, sha, holdout, data).model_dump()
    decision = quality_gate(
        training.metrics,
        training.baseline_metrics,
        champion_metrics,
        settings.gate,
        champion_version=None if champion is None else str(champion.version),
        champion_is_candidate=same_lineage,
    )
    log = get_run_logger()
    (log.info if decision.passed else log.warning)("quality gate: %s", decision.reason)
    create_markdown_artifact(
        key=artifact_key("quality-gate", data.spec.name),
        markdown=(
            f"## Quality gate: {'passed' if decision.passed else 'not promoted'}\n\n"
            f"{decision.reason}\n\n| | {decision.metric} |\n|---|---|\n"
            f"| candidate | {decision.candidate:.4f} |\n| baseline | {decision.baseline:.4f} |\n"
            + (
                f"| champion v{decision.champion_version} | {decision.champion:.4f} |\n"
                if decision.champion is not None
                else "| champion | none yet |\n"
            )
        ),
        description="Candidate vs baseline and champion on the same holdout",
    )
    return decision


@task(
    name="register-model", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_only
)
def register_model_task(
    training: TrainingResult, quantized: QuantizationResult, tags: dict[str, str]
) -> ModelVersionRef:
    """Register the chosen variant as `challenger` (and `champion` when there is none)."""
    settings = get_settings()
    client = registry_client(settings)
    ref = register_challenger(
        client,
        training.dataset,
        source=quantized.model_uri,
        run_id=training.mlflow_run_id,
        artifact_sha256=quantized.artifact_sha256,
        lineage_key=lineage_key(training),
        tags=tags,
    )
    get_run_logger().info("registered %s v%s %s", ref.name, ref.version, list(ref.aliases))
    emit_event(
        event=MODEL_REGISTERED,
        resource={
            "prefect.resource.id": model_resource_id(ref.name),
            "prefect.resource.name": ref.name,
        },
        payload={
            "version": ref.version,
            "aliases": list(ref.aliases),
            "model_uri": ref.model_uri,
            "run_id": ref.run_id,
            "metrics": training.metrics,
            "quantization": quantized.scheme,
        },
    )
    create_link_artifact(
        key=artifact_key("model-version", training.dataset),
        link=_mlflow_ui_link(training),
        link_text=f"{ref.name} v{ref.version} ({', '.join(ref.aliases)}) in MLflow",
        description=f"Registered {ref.model_uri}",
    )
    return ref


_BUDGET = {"max_epochs", "patience", "seed"}


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _mlflow_ui_link(training: TrainingResult) -> str:
    """Where the run is in a local MLflow UI (`make mlflow-ui`)."""
    return (
        f"http://127.0.0.1:5000/#/experiments/{training.experiment}/runs/{training.mlflow_run_id}"
    )


def _publish_evaluation(result: TrainingResult) -> None:
    create_table_artifact(
        key=artifact_key("evaluation", result.dataset),
        table=[
            {
                "metric": name,
                "candidate": f"{value:.4f}",
                "logistic baseline": f"{result.baseline_metrics[name]:.4f}",
            }
            for name, value in result.metrics.items()
        ],
        description=f"Holdout metrics (MLflow run {result.mlflow_run_id})",
    )
