"""Behavioural tests of the synthetic fraud domain: is it a fair benchmark for the loop?

The domain must reward a non-linear model (boosting clearly beats logistic regression),
concept shift must break a model trained on the baseline, and covariate shift must move
the inputs while leaving P(fraud | features) alone (a baseline model stays accurate and
calibrated on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops.synthetic import (
    CARD_TYPES,
    CATEGORICAL_FEATURES,
    CHANNELS,
    ENTRY_MODES,
    LABEL,
    MERCHANT_CATEGORIES,
    NUMERIC_FEATURES,
    REGIONS,
    Scenario,
    generate,
)

START = datetime(2024, 3, 4, tzinfo=UTC)
ROWS = 30_000
NUMERIC = list(NUMERIC_FEATURES)
CATEGORICAL = list(CATEGORICAL_FEATURES)
LEVELS = {
    "merchant_category": MERCHANT_CATEGORIES,
    "channel": CHANNELS,
    "card_type": CARD_TYPES,
    "entry_mode": ENTRY_MODES,
    "home_region": REGIONS,
}


def _boosting_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    inputs = frame[NUMERIC + CATEGORICAL].copy()
    for column in CATEGORICAL:
        inputs[column] = pd.Categorical(inputs[column], categories=list(LEVELS[column]))
    return inputs


def _auc(model: HistGradientBoostingClassifier, frame: pd.DataFrame) -> float:
    scores = model.predict_proba(_boosting_inputs(frame))[:, 1]
    return float(roc_auc_score(frame[LABEL], scores))


@dataclass(frozen=True)
class Trained:
    train: pd.DataFrame
    holdout: pd.DataFrame
    boosting: HistGradientBoostingClassifier
    boosting_auc: float


@pytest.fixture(scope="module")
def trained() -> Trained:
    """A tuned boosting model on a baseline week, split by time (train first 70 %)."""
    frame = generate(Scenario.BASELINE, ROWS, START, seed=11)
    cut = int(0.7 * len(frame))
    train, holdout = frame.iloc[:cut], frame.iloc[cut:]
    assert train["event_timestamp"].max() <= holdout["event_timestamp"].min()
    boosting = HistGradientBoostingClassifier(
        learning_rate=0.08,
        max_iter=300,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features="from_dtype",
        random_state=0,
    ).fit(_boosting_inputs(train), train[LABEL])
    return Trained(train, holdout, boosting, _auc(boosting, holdout))


def test_boosting_clearly_beats_logistic_regression(trained: Trained) -> None:
    linear = make_pipeline(
        ColumnTransformer(
            [
                ("numeric", StandardScaler(), NUMERIC),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ]
        ),
        LogisticRegression(max_iter=2_000),
    ).fit(trained.train[NUMERIC + CATEGORICAL], trained.train[LABEL])
    linear_scores = linear.predict_proba(trained.holdout[NUMERIC + CATEGORICAL])[:, 1]
    linear_auc = float(roc_auc_score(trained.holdout[LABEL], linear_scores))

    assert 0.85 <= trained.boosting_auc <= 0.97, "realistic, learnable, not separable"
    assert trained.boosting_auc - linear_auc >= 0.04, (trained.boosting_auc, linear_auc)


def test_concept_shift_breaks_a_baseline_model(trained: Trained) -> None:
    shifted = generate(Scenario.CONCEPT_SHIFT, 10_000, START + timedelta(days=7), seed=12)

    assert 0.03 <= shifted[LABEL].mean() <= 0.15
    assert trained.boosting_auc - _auc(trained.boosting, shifted) >= 0.05


def test_covariate_shift_moves_inputs_but_keeps_the_label_function(trained: Trained) -> None:
    base = trained.holdout
    shifted = generate(Scenario.COVARIATE_SHIFT, 10_000, START + timedelta(days=7), seed=13)

    online_share = (shifted["channel"] == "online").mean() - (base["channel"] == "online").mean()
    log_amount = np.log(shifted["amount"]).mean() - np.log(base["amount"]).mean()
    foreign = shifted["foreign_transaction"].mean() - base["foreign_transaction"].mean()
    assert online_share >= 0.1
    assert log_amount >= 0.2
    assert foreign >= 0.03

    # Same P(fraud | x): the baseline model still ranks well and stays calibrated.
    assert _auc(trained.boosting, shifted) >= trained.boosting_auc - 0.03
    predicted = trained.boosting.predict_proba(_boosting_inputs(shifted))[:, 1].mean()
    observed = shifted[LABEL].mean()
    assert observed > base[LABEL].mean() + 0.02, "riskier traffic, so more fraud"
    assert abs(predicted - observed) <= 0.25 * observed, (predicted, observed)
