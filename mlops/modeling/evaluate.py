"""Judge a model on a holdout frame, and the linear baseline every model must beat.

The baseline is fitted on the same split with the standard recipe (imputed, standardized
numerics; one-hot categories; logistic regression), so the quality gate asks a fair
question: is the network worth its complexity on this data?
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import ConfigError
from mlops.modeling.data import LabelEncoding
from mlops.modeling.metrics import Metrics, RocCurve, evaluate_proba, roc_curves
from mlops.modeling.network import TabularModel

__all__ = [
    "Metrics",
    "RocCurve",
    "confusion",
    "evaluate",
    "evaluate_proba",
    "logistic_baseline",
    "roc_curve_points",
]

logger = logging.getLogger(__name__)

_MISSING_CATEGORY = "__missing__"


class Scorer(Protocol):
    """Any model that scores raw frames: the fp32 model or one of its quantized variants."""

    @property
    def labels(self) -> LabelEncoding: ...

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]: ...


def evaluate(model: Scorer, frame: pd.DataFrame, spec: DatasetSpec) -> Metrics:
    """Metrics of a model on labelled rows (normally the holdout).

    Raises:
        ConfigError: the label column is missing or holds a class the model does not know.
    """
    return evaluate_proba(_true_indices(model.labels, frame, spec), model.predict_proba(frame))


def confusion(model: TabularModel, frame: pd.DataFrame, spec: DatasetSpec) -> npt.NDArray[np.int64]:
    """Counts [true class, predicted class] in the order of `model.classes`."""
    y_true = _true_indices(model.labels, frame, spec)
    predicted = model.predict_proba(frame).argmax(axis=1)
    matrix: npt.NDArray[np.int64] = confusion_matrix(
        y_true, predicted, labels=list(range(model.labels.n_classes))
    ).astype(np.int64)
    return matrix


def roc_curve_points(model: TabularModel, frame: pd.DataFrame, spec: DatasetSpec) -> list[RocCurve]:
    """ROC points of a model for plotting (one curve for binary, one per class otherwise)."""
    y_true = _true_indices(model.labels, frame, spec)
    return roc_curves(y_true, model.predict_proba(frame), model.classes)


def logistic_baseline(
    train: pd.DataFrame, holdout: pd.DataFrame, spec: DatasetSpec, schema: FeatureSchema
) -> Metrics:
    """Holdout metrics of a logistic regression fitted on `train`.

    Numerics: mean imputation then standardization; categories: missing as their own
    level, one-hot with unknown levels ignored. Classes are encoded like the network's,
    so the two sets of metrics are directly comparable.

    Raises:
        ConfigError: a missing column, or a holdout class absent from train.
    """
    labels = LabelEncoding.fit(train[spec.label], spec.task)
    y_train = labels.encode(train[spec.label])
    y_holdout = _true_indices(labels, holdout, spec)
    pipeline = _baseline_pipeline(schema)
    pipeline.fit(_baseline_inputs(train, schema), y_train)
    proba = pipeline.predict_proba(_baseline_inputs(holdout, schema))
    metrics = evaluate_proba(y_holdout, proba)
    logger.info("logistic baseline on %d holdout rows: %s", len(holdout), metrics)
    return metrics


def _baseline_pipeline(schema: FeatureSchema) -> Pipeline:
    parts: list[tuple[str, Pipeline, list[str]]] = []
    if schema.numeric:
        numeric = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler())
        parts.append(("numeric", numeric, list(schema.numeric)))
    if schema.categorical:
        categorical = make_pipeline(OneHotEncoder(handle_unknown="ignore"))
        parts.append(("categorical", categorical, list(schema.categorical)))
    return make_pipeline(ColumnTransformer(parts), LogisticRegression(max_iter=1000))


def _baseline_inputs(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Float numerics (NaN for missing) and text categories with an explicit missing level."""
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"feature columns {missing} are missing from the frame")
    inputs = pd.DataFrame(index=frame.index)
    for column in schema.numeric:
        values = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
        inputs[column] = values.where(np.isfinite(values))
    for column in schema.categorical:
        text = frame[column].astype("string").fillna(_MISSING_CATEGORY)
        inputs[column] = text.astype(object)
    return inputs


def _true_indices(
    labels: LabelEncoding, frame: pd.DataFrame, spec: DatasetSpec
) -> npt.NDArray[np.int64]:
    if spec.label not in frame.columns:
        raise ConfigError(f"dataset {spec.name!r}: label column {spec.label!r} is missing")
    return labels.encode(frame[spec.label])
