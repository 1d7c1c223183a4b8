"""The registered model as an MLflow pyfunc: `models:/<name>@champion` loads and predicts.

The pyfunc is a thin shell over our own artifact (safetensors + JSON, no pickled
weights): MLflow stores that folder next to the shell, and `load_context` checks its
SHA-256 before loading, so a tampered model in the artifact store is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel, PythonModelContext

from mlops.modeling import ModelArtifact, TabularModel, load_model

ARTIFACT_KEY = "model"
SHA_KEY = "artifact_sha256"
# What serving a pyfunc needs; naming them saves MLflow ~15 s of inference per log.
PIP_REQUIREMENTS = ["mlops-loop", "torch==2.13.0", "safetensors==0.8.0", "pandas==2.3.3"]


class TabularPyfunc(PythonModel):
    """Class probabilities of raw feature rows, one column per class (`p_<class>`)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the artifact after verifying its digest against the logged one."""
        expected = str((context.model_config or {})[SHA_KEY])
        self._model = load_model(Path(context.artifacts[ARTIFACT_KEY]), expected)

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Probabilities for each row of `model_input` (extra columns are ignored)."""
        return probabilities_frame(self._model, model_input)


def probabilities_frame(model: TabularModel, frame: pd.DataFrame) -> pd.DataFrame:
    """`predict_proba` as a frame with one named column per class."""
    return pd.DataFrame(model.predict_proba(frame), columns=[f"p_{c}" for c in model.classes])


def log_pyfunc_model(
    run_id: str, artifact: ModelArtifact, model: TabularModel, example: pd.DataFrame
) -> str:
    """Log the model on `run_id` with a signature and an input example; returns its URI.

    Tracking must already point at the right store (`mlops.tracking.configure_tracking`).
    """
    features = example[list(model.schema.columns)].head(5).reset_index(drop=True)
    signature = infer_signature(features, probabilities_frame(model, features))
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={ARTIFACT_KEY: str(artifact.directory)},
            model_config={SHA_KEY: artifact.sha256},
            signature=signature,
            input_example=features,
            pip_requirements=PIP_REQUIREMENTS,
        )
    return str(info.model_uri)
