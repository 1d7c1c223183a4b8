"""The training pipeline: validate → features → training set (later: tune → register)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.states import Failed, State
from pydantic import BaseModel, Field

from mlops.contracts import DatasetRef, FeatureSetRef, TrainingSetRef, ValidationReport
from mlops.dataset_spec import DatasetSpec, load_spec
from mlops.settings import RowPolicy
from tasks.features import build_training_set_task, materialize_features_task
from tasks.ingest import ingest_batch_task
from tasks.validation import load_reference_profile_task, validate_batch_task


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

    def spec(self) -> DatasetSpec:
        """The dataset spec, reading from `data` when given."""
        spec = load_spec(Path(self.dataset_config))
        return spec.with_source_path(Path(self.data).resolve()) if self.data else spec


class TrainingPipelineResult(BaseModel):
    """Everything the run produced, as references a later stage or a person can follow."""

    batch: DatasetRef
    validation: ValidationReport
    features: FeatureSetRef
    training_set: TrainingSetRef


@flow(name="training-pipeline")
def training_pipeline(
    params: TrainingPipelineParams = TrainingPipelineParams(),  # noqa: B008 - immutable default
) -> TrainingPipelineResult | State:
    """Validate a raw batch, publish its features to Feast and build the training set.

    A refused batch ends the run Failed with the validation summary as its message;
    nothing downstream runs.
    """
    spec = params.spec()
    batch = ingest_batch_task(spec)
    profile = load_reference_profile_task(spec, batch)
    validated = validate_batch_task(spec, batch, profile, params.policy, return_state=True)
    if validated.is_failed():
        return Failed(message=validated.message, data=validated.result(raise_on_failure=False))
    report: ValidationReport = validated.result()
    features = materialize_features_task(spec, profile.feature_schema, report)
    training_set = build_training_set_task(spec, profile.feature_schema, features)
    return TrainingPipelineResult(
        batch=batch, validation=report, features=features, training_set=training_set
    )
