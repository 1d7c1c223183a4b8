"""The registered model as an MLflow pyfunc: `models:/<name>@champion` loads and predicts.

The pyfunc is a thin shell over our own artifact (safetensors + JSON, no pickled
weights), fp32 or one of its quantized variants: MLflow stores that folder next to the
shell, and `load_context` checks its SHA-256 before loading, so a tampered model in the
artifact store is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema, TensorSpec

from mlops.dataset_spec import FeatureSchema
from mlops.modeling import ModelArtifact
from quantization.served import ServedModel, load_served_model

ARTIFACT_KEY = "model"
SHA_KEY = "artifact_sha256"
# What serving a pyfunc needs; naming them saves MLflow ~15 s of inference per log.
PIP_REQUIREMENTS = ["mlops-loop", "torch==2.13.0", "safetensors==0.8.0", "pandas==2.3.3"]


class TabularPyfunc(PythonModel):
    """Class probabilities of raw feature rows, one column per class (`p_<class>`)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the artifact after verifying its digest against the logged one."""
        expected = str((context.model_config or {})[SHA_KEY])
        self._model = load_served_model(Path(context.artifacts[ARTIFACT_KEY]), expected)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Probabilities for each row of `model_input` (extra columns are ignored)."""
        return probabilities_frame(self._model, model_input)


def probabilities_frame(model: ServedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """`predict_proba` as a frame with one named column per class."""
    return pd.DataFrame(model.predict_proba(frame), columns=[f"p_{c}" for c in model.classes])


def input_schema(schema: FeatureSchema) -> Schema:
    """The signature's inputs: every feature required, numbers of any width, categories text.

    Numeric columns are declared `Any` rather than `double`: MLflow refuses to cast an
    int64 column to double ("not safe"), so a raw batch whose counts are integers would
    be refused at the door; the model's own preprocessing casts numbers itself.
    """
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType(), name)  # type: ignore[no-untyped-call]
        for name in schema.numeric
    ]
    columns += [ColSpec(DataType.string, name) for name in schema.categorical]
    return Schema(columns)


def log_pyfunc_model(
    run_id: str,
    artifact: ModelArtifact,
    model: ServedModel,
    example: pd.DataFrame,
    *,
    name: str = "model",
) -> str:
    """Log the model on `run_id` with a signature and an input example; returns its URI.

    `name` tells several models of one run apart (the fp32 candidate, its variants).

    Tracking must already point at the right store (`mlops.tracking.configure_tracking`).
    """
    features = example[list(model.schema.columns)].head(5).reset_index(drop=True)
    signature = infer_signature(features, probabilities_frame(model, features))
    signature.inputs = input_schema(model.schema)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={ARTIFACT_KEY: str(artifact.directory)},
            model_config={SHA_KEY: artifact.sha256},
            signature=signature,
            input_example=features,
            pip_requirements=PIP_REQUIREMENTS,
        )
    return str(info.model_uri)
