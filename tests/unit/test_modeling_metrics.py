"""Metrics on toy inputs whose answers are known, the baseline, and the figures."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from mlops.dataset_spec import load_spec
from mlops.modeling import (
    EpochRecord,
    TrainConfig,
    as_training_frame,
    confusion,
    evaluate,
    evaluate_proba,
    fit,
    logistic_baseline,
    roc_curve_points,
    split_time_ordered,
)
from mlops.modeling.metrics import expected_calibration_error, roc_auc, roc_curves
from mlops.modeling.plots import confusion_figure, learning_curves_figure, roc_figure
from mlops.synthetic import Scenario, generate

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "datasets" / "card_fraud.yaml")


def test_perfectly_calibrated_toy_has_zero_ece() -> None:
    # 70 % confidence everywhere and right 70 % of the time; 90 % and right 90 %.
    y = np.array([1] * 7 + [0] * 3 + [0] * 9 + [1])
    proba = np.array([[0.3, 0.7]] * 10 + [[0.9, 0.1]] * 10)

    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)
    assert evaluate_proba(y, proba).accuracy == pytest.approx(0.8)


def test_overconfident_toy_has_the_expected_ece() -> None:
    y = np.array([1, 0, 1, 0])
    proba = np.array([[0.0, 1.0]] * 4)  # always certain, right half the time

    assert expected_calibration_error(y, proba) == pytest.approx(0.5)


def test_separable_scores_give_auc_one_and_perfect_f1() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p1 = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.7])
    metrics = evaluate_proba(y, np.column_stack([1 - p1, p1]))

    assert metrics.roc_auc == 1.0
    assert metrics.f1 == 1.0
    assert metrics.accuracy == 1.0
    assert metrics.log_loss == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.8, 0.9, 0.7, 0.7])))


def test_binary_positive_class_is_the_second() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6], [0.2, 0.8]])
    inverted = proba[:, ::-1]

    assert roc_auc(y, proba) == 1.0
    assert roc_auc(y, inverted) == 0.0


def test_multiclass_macro_auc_and_f1() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    proba = np.eye(3)[y] * 0.7 + 0.1
    metrics = evaluate_proba(y, proba)

    assert metrics.roc_auc == 1.0 and metrics.f1 == 1.0
    assert len(roc_curves(y, proba, ("a", "b", "c"))) == 3


def test_auc_is_nan_when_undefined_rather_than_failing() -> None:
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([[0.2, 0.8], [0.4, 0.6]])))


def test_metrics_refuse_inconsistent_shapes() -> None:
    with pytest.raises(ValueError, match="labels"):
        evaluate_proba(np.array([0, 1, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="indices"):
        evaluate_proba(np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]))


def test_model_evaluation_baseline_confusion_and_figures() -> None:
    raw = generate(Scenario.BASELINE, 3_000, datetime(2024, 3, 4, tzinfo=UTC), seed=4)
    schema = SPEC.resolve_schema(raw)
    splits = split_time_ordered(as_training_frame(raw, SPEC, schema), SPEC)
    config = TrainConfig(hidden_layers=1, width=32, max_epochs=3, learning_rate=3e-3)
    result = fit(config, splits.train, splits.valid, SPEC, schema)

    metrics = evaluate(result.model, splits.holdout, SPEC)
    baseline = logistic_baseline(splits.train, splits.holdout, SPEC, schema)
    matrix = confusion(result.model, splits.holdout, SPEC)
    curves = roc_curve_points(result.model, splits.holdout, SPEC)

    assert 0.5 < metrics.roc_auc <= 1.0 and 0.5 < baseline.roc_auc <= 1.0
    assert 0.0 <= metrics.ece <= 1.0 and metrics.log_loss > 0
    assert matrix.shape == (2, 2) and matrix.sum() == len(splits.holdout)
    assert matrix.sum(axis=1)[1] == splits.holdout[SPEC.label].sum()
    assert len(curves) == 1 and curves[0].label == "1"
    assert curves[0].auc == pytest.approx(metrics.roc_auc)

    history = list(result.history) + [EpochRecord(99, 0.1, 0.2, 0.9)]
    for figure in (
        learning_curves_figure(history, best_epoch=result.best_epoch),
        confusion_figure(matrix, result.model.classes),
        roc_figure(curves),
    ):
        assert isinstance(figure, Figure)
        figure.canvas.draw()
