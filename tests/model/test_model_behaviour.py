"""Behavioural tests of the network on the synthetic fraud domain.

Minimum functionality (it beats the linear baseline on a time-ordered holdout),
invariance (ids, row order and unseen categories do not disturb it) and directional
expectations taken from the domain's labelling function (`mlops.synthetic._baseline_logit`):
two or more failed PIN attempts add +5.4 to the fraud logit whatever else holds, an
online night transaction above 2.5x the card's average amount adds +5.4, and a risky
merchant on an untrusted device adds +5.6.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from mlops.dataset_spec import FeatureSchema, load_spec
from mlops.modeling import (
    FitResult,
    Metrics,
    TabularModel,
    TrainConfig,
    as_training_frame,
    evaluate,
    fit,
    logistic_baseline,
    split_time_ordered,
)
from mlops.synthetic import ENTITY, TIMESTAMP, TRANSACTION_ID, Scenario, generate

logger = logging.getLogger(__name__)

SPEC = load_spec(Path(__file__).resolve().parents[2] / "datasets" / "card_fraud.yaml")
START = datetime(2024, 3, 4, tzinfo=UTC)
ROWS = 20_000
CONFIG = TrainConfig(learning_rate=3e-3)
"""The defaults with the learning rate small searches settle on for this domain."""


@dataclass(frozen=True)
class Trained:
    result: FitResult
    metrics: Metrics
    baseline: Metrics
    schema: FeatureSchema
    probe: pd.DataFrame
    """Raw, unseen rows (with the transaction id and every other column) to probe with."""

    @property
    def model(self) -> TabularModel:
        return self.result.model


def _raw_features(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """A raw batch with the training set's dtypes, keeping non-feature columns."""
    out = frame.copy()
    out[list(schema.categorical)] = out[list(schema.categorical)].astype("string")
    return out


@pytest.fixture(scope="module")
def trained() -> Trained:
    raw = generate(Scenario.BASELINE, ROWS, START, seed=7)
    schema = SPEC.resolve_schema(raw)
    splits = split_time_ordered(as_training_frame(raw, SPEC, schema), SPEC)
    result = fit(CONFIG, splits.train, splits.valid, SPEC, schema)
    metrics = evaluate(result.model, splits.holdout, SPEC)
    baseline = logistic_baseline(splits.train, splits.holdout, SPEC, schema)
    logger.warning(
        "behaviour model: holdout %s | logistic baseline %s | best epoch %d, %.1fs",
        metrics,
        baseline,
        result.best_epoch,
        result.seconds,
    )
    probe = generate(Scenario.BASELINE, 5_000, START + timedelta(days=7), seed=8)
    return Trained(result, metrics, baseline, schema, _raw_features(probe, schema))


# ------------------------------------------------------------------- minimum functionality


def test_beats_the_logistic_baseline_on_the_holdout(trained: Trained) -> None:
    assert trained.metrics.roc_auc >= trained.baseline.roc_auc + 0.02, (
        trained.metrics,
        trained.baseline,
    )
    assert trained.metrics.log_loss < trained.baseline.log_loss
    assert trained.metrics.roc_auc >= 0.85


def test_is_reasonably_calibrated(trained: Trained) -> None:
    assert trained.metrics.ece <= 0.03
    predicted = trained.model.predict_proba(trained.probe)[:, 1].mean()
    observed = trained.probe[SPEC.label].mean()
    assert abs(predicted - observed) <= 0.25 * observed, (predicted, observed)


# ------------------------------------------------------------------------------ invariance


def _proba(model: TabularModel, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    return model.predict_proba(frame)[:, 1]


def test_identifiers_and_timestamps_do_not_change_predictions(trained: Trained) -> None:
    probe = trained.probe
    changed = probe.copy()
    changed[TRANSACTION_ID] = [f"other_{i}" for i in range(len(changed))]
    changed[ENTITY] = "card_999999"
    changed[TIMESTAMP] = changed[TIMESTAMP] + pd.Timedelta(days=365)
    changed[SPEC.label] = 1 - changed[SPEC.label]

    np.testing.assert_array_equal(_proba(trained.model, changed), _proba(trained.model, probe))


def test_row_order_does_not_change_predictions(trained: Trained) -> None:
    probe = trained.probe
    order = np.random.default_rng(0).permutation(len(probe))
    shuffled = _proba(trained.model, probe.iloc[order])

    np.testing.assert_allclose(shuffled, _proba(trained.model, probe)[order], rtol=0, atol=1e-6)
    single = _proba(trained.model, probe.iloc[[17]])
    np.testing.assert_allclose(single, _proba(trained.model, probe)[[17]], rtol=0, atol=1e-6)


def test_unseen_or_missing_category_yields_valid_probabilities(trained: Trained) -> None:
    probe = trained.probe.copy()
    probe["merchant_category"] = "crypto_exchange"
    probe.loc[probe.index[::2], "channel"] = pd.NA
    proba = trained.model.predict_proba(probe)

    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


# ------------------------------------------------------------------- directional expectations


def _shift(model: TabularModel, frame: pd.DataFrame, **values: float) -> npt.NDArray[np.float64]:
    """Fraud probability after minus before setting columns to the given values."""
    changed = frame.copy()
    for column, value in values.items():
        changed[column] = value
    return _proba(model, changed) - _proba(model, frame)


def test_failed_pin_attempts_raise_fraud_probability(trained: Trained) -> None:
    calm = trained.probe[trained.probe["failed_pin_attempts"] == 0]
    delta = _shift(trained.model, calm, failed_pin_attempts=3.0)

    assert delta.mean() >= 0.2, delta.mean()
    assert (delta >= -0.01).mean() >= 0.95


def test_amount_ratio_raises_fraud_for_online_night_transactions(trained: Trained) -> None:
    probe = trained.probe
    night_online = probe[(probe["channel"] == "online") & (probe["hour_of_day"] <= 5)]
    usual = night_online.assign(amount_to_avg_ratio=1.0)
    delta = _shift(trained.model, usual, amount_to_avg_ratio=4.0)

    assert len(night_online) >= 50
    assert delta.mean() >= 0.05, delta.mean()
    assert (delta >= -0.01).mean() >= 0.9


def test_untrusted_device_at_risky_merchant_raises_fraud(trained: Trained) -> None:
    risky = trained.probe.assign(merchant_risk_score=0.8, device_trust_score=0.9)
    delta = _shift(trained.model, risky, device_trust_score=0.2)

    assert delta.mean() >= 0.05, delta.mean()
    assert (delta >= -0.01).mean() >= 0.9


def test_json_records_score_like_the_frame(trained: Trained) -> None:
    rows = trained.probe.iloc[:50]
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")

    np.testing.assert_allclose(
        trained.model.predict_proba_records(records),
        trained.model.predict_proba(rows),
        rtol=0,
        atol=1e-6,
    )
