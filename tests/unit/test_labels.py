"""Feedback labels: one spelling per class, and a corrected label replaces the first."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops.labels import latest_labels, normalise_label


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
