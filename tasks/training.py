"""Tasks: tune (trials in parallel), train the candidate, gate it, register it."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger

from mlops.candidate import judge_candidate, train_and_log_candidate
from mlops.contracts import GateDecision, ModelVersionRef, QuantizationResult, TrainingResult
from mlops.events import MODEL_REGISTERED, model_resource
from mlops.lineage import lineage_key
from mlops.registry.client import register_challenger, registry_client
from mlops.settings import get_settings
from mlops.tracking import TrialTracker
from mlops.tuning import StudySummary, TuningData, open_study, run_trials
from mlops.tuning.report import summarize_study
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
    summary = summarize_study(get_settings(), study_name, parent_run_id)
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
    result = train_and_log_candidate(get_settings(), data, study, parent_run_id)
    _publish_evaluation(result)
    return result


@task(name="quality-gate")
def quality_gate_task(data: TuningData, training: TrainingResult) -> GateDecision:
    """Beat the baseline, and do not lose to the champion on the same holdout rows."""
    decision = judge_candidate(get_settings(), data, training)
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
        resource=model_resource(ref.name),
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
