"""The tabular model: splits, preprocessing, network, training, evaluation, artifacts.

Pure torch / numpy / scikit-learn: no Prefect, MLflow or Optuna here. The tuner and the
tracker call these functions and add their own concerns. Figures live in
`mlops.modeling.plots` (imported on demand, to keep matplotlib out of serving).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME: dict[str, str] = {
    "DatasetRoles": "mlops.modeling.network",
    "EpochRecord": "mlops.modeling.train",
    "FitResult": "mlops.modeling.train",
    "LabelEncoding": "mlops.modeling.data",
    "Metrics": "mlops.modeling.metrics",
    "ModelArtifact": "mlops.modeling.artifact",
    "NetSpec": "mlops.modeling.network",
    "Preprocessor": "mlops.modeling.preprocessing",
    "RocCurve": "mlops.modeling.metrics",
    "Splits": "mlops.modeling.data",
    "TabularArrays": "mlops.modeling.data",
    "TabularModel": "mlops.modeling.network",
    "TabularNet": "mlops.modeling.network",
    "TrainConfig": "mlops.modeling.config",
    "artifact_sha256": "mlops.modeling.artifact",
    "as_training_frame": "mlops.modeling.data",
    "confusion": "mlops.modeling.evaluate",
    "embedding_dim": "mlops.modeling.network",
    "evaluate": "mlops.modeling.evaluate",
    "evaluate_proba": "mlops.modeling.metrics",
    "fit": "mlops.modeling.train",
    "load_model": "mlops.modeling.artifact",
    "logistic_baseline": "mlops.modeling.evaluate",
    "refit": "mlops.modeling.train",
    "roc_curve_points": "mlops.modeling.evaluate",
    "save_model": "mlops.modeling.artifact",
    "split_time_ordered": "mlops.modeling.data",
}
"""Where each name lives: imported on first use (PEP 562), so that reading a
`TrainConfig` (the registry, the canary, the tracker) does not import torch."""


def __getattr__(name: str) -> Any:
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
