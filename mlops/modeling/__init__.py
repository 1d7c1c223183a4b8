"""The tabular model: splits, preprocessing, network, training, evaluation, artifacts.

Pure torch / numpy / scikit-learn: no Prefect, MLflow or Optuna here. The tuner and the
tracker call these functions and add their own concerns. Figures live in
`mlops.modeling.plots` (imported on demand, to keep matplotlib out of serving).
"""

from __future__ import annotations

from mlops.modeling.artifact import (
    ModelArtifact,
    artifact_sha256,
    load_model,
    save_model,
)
from mlops.modeling.config import TrainConfig
from mlops.modeling.data import (
    LabelEncoding,
    Splits,
    TabularArrays,
    as_training_frame,
    split_time_ordered,
)
from mlops.modeling.evaluate import (
    confusion,
    evaluate,
    logistic_baseline,
    roc_curve_points,
)
from mlops.modeling.metrics import Metrics, RocCurve, evaluate_proba
from mlops.modeling.network import (
    DatasetRoles,
    NetSpec,
    TabularModel,
    TabularNet,
    embedding_dim,
)
from mlops.modeling.preprocessing import Preprocessor
from mlops.modeling.train import EpochRecord, FitResult, fit, refit

__all__ = [
    "DatasetRoles",
    "EpochRecord",
    "FitResult",
    "LabelEncoding",
    "Metrics",
    "ModelArtifact",
    "NetSpec",
    "Preprocessor",
    "RocCurve",
    "Splits",
    "TabularArrays",
    "TabularModel",
    "TabularNet",
    "TrainConfig",
    "artifact_sha256",
    "as_training_frame",
    "confusion",
    "embedding_dim",
    "evaluate",
    "evaluate_proba",
    "fit",
    "load_model",
    "logistic_baseline",
    "refit",
    "roc_curve_points",
    "save_model",
    "split_time_ordered",
]
