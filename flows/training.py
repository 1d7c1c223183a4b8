"""The training pipeline: validate → features → training set → tune → evaluate → gate →
quantize → register.

Started with a `retrain` request (the `on-drift` trigger, the nightly schedule), it first
asks the retraining guardrails and trains on the retraining window collected from the
landing folder; a request the guardrails hold back ends the run Completed with status
`suppressed` and a markdown artifact saying why.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import BaseModel, Field, model_validator

from mlops.contracts import (
    DatasetRef,
    FeatureSetRef,
    GateDecision,
    ModelVersionRef,
    QuantizationResult,
    TrainingResult,
    TrainingSetRef,
    ValidationReport,
)
from mlops.dataset_spec import DatasetSpec, load_spec
from mlops.retraining import GuardDecision, RetrainRequest, RetrainWindow, RunStatus
from mlops.settings import RowPolicy, get_settings


class TrainingPipelineParams(BaseModel):
    """What a person fills in when starting the pipeline from the Prefect UI."""

    data: str | None = Field(
        default=None,
        description="Path of the raw batch (parquet or CSV); default: the spec's own source.",
    )
    dataset_config: str = Field(
        default="datasets/card_fraud.yaml", description="The dataset spec (YAML)."
    )
    policy: RowPolicy | None = Field(
        default=None, description="Override the validation policy from settings."
    )
    train: bool = Field(
        default=True,
        description="Tune, train and register a model; off: stop after the training set.",
    )
    retrain: RetrainRequest | None = Field(
        default=None,
        description="A retraining request (filled by the on-drift trigger): check the "
        "guardrails, then train on the retraining window from the landing folder.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TrainingPipelineParams:
        if self.retrain is not None and self.data is not None:
            raise ValueError("give `data` or `retrain`: a retraining builds its own batch")
        return self

    def spec(self) -> DatasetSpec:
        """The dataset spec, reading from `data` when given."""
        spec = load_spec(Path(self.dataset_config))
        return spec.with_source_path(Path(self.data).resolve()) if self.data else spec


class PipelineStatus(StrEnum):
    """How a run ended, for people and for scripts (`mlops pipeline run --json`)."""

    REGISTERED = "registered"
    NOT_PROMOTED = "not_promoted"
    REJECTED = "rejected"
    FEATURES_ONLY = "features_only"
    SUPPRESSED = "suppressed"


class TrainingPipelineResult(BaseModel):
    """Everything the run produced, as references a later stage or a person can follow."""

    status: PipelineStatus
    reason: str
    batch: DatasetRef
    validation: ValidationReport
    features: FeatureSetRef
    training_set: TrainingSetRef
    training: TrainingResult | None = None
    gate: GateDecision | None = None
    quantization: QuantizationResult | None = None
    model: ModelVersionRef | None = None
    flow_run_id: str | None = None


class RetrainingSuppressed(BaseModel):
    """A retraining request the guardrails held back: nothing was ingested or trained."""

    status: PipelineStatus = PipelineStatus.SUPPRESSED
    reason: str
    decision: GuardDecision
    flow_run_id: str | None = None


@flow(name="training-pipeline")
def training_pipeline(
    params: TrainingPipelineParams = TrainingPipelineParams(),  # noqa: B008 - immutable default
) -> TrainingPipelineResult | State:
    """Validate a raw batch, publish its features, train, gate, compress and register a model.

    A refused batch ends the run Failed with the validation summary as its message;
    nothing downstream runs. A candidate that fails the quality gate ends the run
    Completed with status `not_promoted`: the registry and its aliases are untouched.
    A candidate that passes is quantized; the variant the selection policy picks among
    those passing the retention gate (the fp32 candidate when none does) is registered.

    With a `retrain` request the guardrails decide first (see `mlops.retraining`); a
    held-back request ends Completed with status `suppressed`, and a retraining that
    proceeds trains on the window batch, beats its ledger row while it trains
    (`retraining.heartbeat_interval_s`) and records its outcome in the ledger.
    """
    # The stages' modules (Feast, torch, MLflow, Optuna: seconds of imports) load here,
    # inside the run, not when a worker loads this module: a triggered run is Running,
    # visible and logging, within a second or two of its event.
    from tasks.retraining import (
        check_retrain_guardrails_task,
        record_retrain_outcome_task,
        retraining_heartbeat,
    )

    spec = params.spec()
    if params.retrain is None:
        return _run_stages(params, spec)
    plan = check_retrain_guardrails_task(spec, params.retrain)
    if not plan.decision.proceed:
        held = RetrainingSuppressed(
            reason=plan.decision.reason,
            decision=plan.decision,
            flow_run_id=None if flow_run.id is None else str(flow_run.id),
        )
        return Completed(message=f"{held.status.value}: {held.reason}", data=held)
    assert plan.batch is not None
    try:
        # The ledger row beats while this process trains: a killed worker's run expires.
        with retraining_heartbeat(plan.decision.key):
            result = _run_stages(params, spec.with_source_path(Path(plan.batch)), plan.window)
    except Exception as exc:
        record_retrain_outcome_task(plan.decision.key, RunStatus.FAILED, repr(exc))
        raise
    if isinstance(result, TrainingPipelineResult):
        record_retrain_outcome_task(plan.decision.key, result.status.value, result.reason)
    else:
        record_retrain_outcome_task(
            plan.decision.key, PipelineStatus.REJECTED.value, result.message or ""
        )
    return result


def _run_stages(
    params: TrainingPipelineParams, spec: DatasetSpec, window: RetrainWindow | None = None
) -> TrainingPipelineResult | State:
    """The stages of the pipeline on the batch `spec` reads (inside the flow run).

    A retraining learns from its window only (`window`): the feature store holds every
    batch ever ingested, and after a concept shift the rows from before it teach the
    patterns that stopped being true. Without a window the training set is all of it.
    """
    from flows.tuning import trial_runner, tune_model
    from mlops.compression import quantization_tags
    from mlops.lineage import lineage_tags
    from mlops.tracking import start_parent_run
    from mlops.tuning import TuningData
    from tasks.features import build_training_set_task, materialize_features_task
    from tasks.ingest import ingest_batch_task
    from tasks.quantization import quantize_model_task
    from tasks.training import quality_gate_task, register_model_task, train_candidate_task
    from tasks.validation import load_reference_profile_task, validate_batch_task

    settings = get_settings()
    batch = ingest_batch_task(spec)
    profile = load_reference_profile_task(spec, batch)
    validated = validate_batch_task(spec, batch, profile, params.policy, return_state=True)
    if validated.is_failed():
        return Failed(message=validated.message, data=validated.result(raise_on_failure=False))
    report: ValidationReport = validated.result()
    schema = profile.feature_schema
    features = materialize_features_task(spec, schema, report)
    training_set = build_training_set_task(
        spec,
        schema,
        features,
        start=None if window is None else window.start,
        end=None if window is None else window.end,
    )
    done = {
        "batch": batch,
        "validation": report,
        "features": features,
        "training_set": training_set,
        "flow_run_id": flow_run.id,
    }
    if not params.train:
        return TrainingPipelineResult(
            status=PipelineStatus.FEATURES_ONLY, reason="training switched off", **done
        )

    data = TuningData.from_training_set(training_set, spec, schema)
    study_name = f"{spec.name}-{training_set.sha256[:16]}"
    with start_parent_run(
        settings,
        spec.name,
        dataset_sha256=batch.sha256,
        validation_verdict=report.verdict.value,
        feature_service=features.feature_service,
        flow_run_id=flow_run.id,
        study_name=study_name,
    ) as parent_run_id:
        tuner = tune_model.with_options(task_runner=trial_runner(settings.tuning))
        study = tuner(study_name, data, parent_run_id, settings.tuning.workers)
        training = train_candidate_task(data, study, parent_run_id)
        gate = quality_gate_task(data, training)
        quantized = quantize_model_task(data, training) if gate.passed else None
    if quantized is None:
        return TrainingPipelineResult(
            status=PipelineStatus.NOT_PROMOTED,
            reason=gate.reason,
            training=training,
            gate=gate,
            **done,
        )
    tags = lineage_tags(
        batch, report, features, training_set, training, flow_run.id, flow_run.ui_url
    )
    model = register_model_task(training, quantized, tags | quantization_tags(quantized))
    return TrainingPipelineResult(
        status=PipelineStatus.REGISTERED,
        reason=gate.reason,
        training=training,
        gate=gate,
        quantization=quantized,
        model=model,
        **done,
    )


def run_training_pipeline(params: TrainingPipelineParams) -> TrainingPipelineResult:
    """Run the flow in this process and return its result; a refused batch raises.

    A failed run raises the error it carries (`DataValidationError` for a refused batch),
    so a completed call always has a result.
    """
    result = training_pipeline(params)
    assert isinstance(result, TrainingPipelineResult), "a failed run raises its error"
    return result
