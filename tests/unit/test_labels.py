"""Feedback labels: one spelling per class, a corrected label replaces the first, and
the monitor reads them for the champion's routed answers only."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops.dataset_spec import FeatureSchema
from mlops.labels import latest_labels, normalise_label
from mlops.monitoring import labelled_window


@pytest.mark.parametrize(
    ("given", "normal"),
    [("1", "1"), ("1.0", "1"), (" TRUE ", "1"), (0, "0"), ("false", "0"), ("fraud", "fraud")],
)
def test_spellings_of_a_class_agree(given: object, normal: str) -> None:
    assert normalise_label(given) == normal


def test_the_latest_label_of_a_prediction_counts() -> None:
    feedback = pd.DataFrame(
        {
            "prediction_id": ["a", "b", "a", "c"],
            "label": ["1", "0", "0.0", None],
            "ts": pd.to_datetime(
                ["2026-01-01T00:00", "2026-01-01T00:01", "2026-01-01T00:02", "2026-01-01T00:03"],
                utc=True,
            ),
        }
    )
    labels = latest_labels(feedback)
    assert labels.to_dict() == {"b": 0.0, "a": 0.0}
    assert latest_labels(feedback, positive_label="0").to_dict() == {"b": 1.0, "a": 1.0}
    assert latest_labels(feedback.iloc[0:0]).empty


def test_the_monitor_window_holds_only_the_champions_answers() -> None:
    """A challenger's canary share, its shadow scores and the replaced champion's last
    answers are not the champion's behaviour: mixed in, they read as drift."""
    predictions = pd.DataFrame(
        {
            "prediction_id": ["p1", "p2", "p3", "p4"],
            "model_version": ["2", "2", "3", "1"],
            "shadow": [False, True, False, False],
            "score": [0.9, 0.8, 0.7, 0.6],
            "amount": [10.0, 20.0, 30.0, 40.0],
        }
    )
    feedback = pd.DataFrame(
        {
            "prediction_id": ["p1", "p3"],
            "label": ["1", "0"],
            "ts": pd.to_datetime(["2026-01-01T00:00", "2026-01-01T00:01"], utc=True),
        }
    )
    schema = FeatureSchema(numeric=("amount",), categorical=())

    window = labelled_window(predictions, feedback, schema, version="2")

    assert window.to_dict("records") == [{"amount": 10.0, "score": 0.9, "label": 1.0}]


def test_the_monitor_window_leaves_pinned_versions_out() -> None:
    """Rows whose version a client named (`/v2/.../versions/{version}/infer`) are that
    client's choice of traffic, not the live population; a row without the flag (an
    older log) was routed."""
    predictions = pd.DataFrame(
        {
            "prediction_id": ["p1", "p2", "p3"],
            "model_version": ["2", "2", "2"],
            "shadow": [False, False, False],
            "pinned": [False, True, None],
            "score": [0.9, 0.8, 0.7],
            "amount": [10.0, 20.0, 30.0],
        }
    )
    schema = FeatureSchema(numeric=("amount",), categorical=())

    window = labelled_window(predictions, predictions.iloc[0:0], schema, version="2")

    assert window["amount"].tolist() == [10.0, 30.0]
