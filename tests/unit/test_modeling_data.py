"""Time-ordered splits without leakage, label encoding, training-set layout."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlops.dataset_spec import DatasetSpec, FeatureSchema, Task
from mlops.errors import ConfigError
from mlops.modeling.data import LabelEncoding, as_training_frame, split_time_ordered
from mlops.synthetic import Scenario, generate

SPEC = DatasetSpec(name="toy", entity="id", timestamp="ts", label="y", task=Task.BINARY, exclude=())


def _frame(rows: int, labels: list[int] | None = None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamps = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        rng.integers(0, 10**6, rows), unit="s"
    )
    y = labels if labels is not None else (np.arange(rows) % 2).tolist()
    return pd.DataFrame({"id": np.arange(rows), "ts": stamps, "x": rng.normal(size=rows), "y": y})


def test_split_is_time_ordered_without_leakage() -> None:
    frame = _frame(1_000)
    splits = split_time_ordered(frame, SPEC, holdout_fraction=0.2, validation_fraction=0.25)

    assert len(splits.train) + len(splits.valid) + len(splits.holdout) == 1_000
    assert splits.train["ts"].max() < splits.valid["ts"].min()
    assert splits.valid["ts"].max() < splits.holdout["ts"].min()
    assert len(splits.holdout) == pytest.approx(200, abs=2)
    assert len(splits.valid) == pytest.approx(250, abs=2)
    assert sorted(splits.train_and_valid["id"]) == sorted(
        pd.concat([splits.train, splits.valid])["id"]
    )


def test_rows_sharing_an_instant_never_straddle_a_cut() -> None:
    frame = _frame(100)
    frame["ts"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.arange(100) // 10, unit="h"
    )  # ten rows per instant
    frame = frame.iloc[::-1].reset_index(drop=True)  # ...and the input is not sorted
    splits = split_time_ordered(frame, SPEC, holdout_fraction=0.25, validation_fraction=0.2)

    # The nominal cuts (55, 75) fall inside instants: each moves back to its first row.
    assert (len(splits.train), len(splits.valid), len(splits.holdout)) == (50, 20, 30)
    assert splits.train["ts"].max() < splits.valid["ts"].min()
    assert splits.valid["ts"].max() < splits.holdout["ts"].min()


def test_tiny_data_fails_clearly() -> None:
    with pytest.raises(ConfigError, match="valid split of 3 rows is empty"):
        split_time_ordered(_frame(3), SPEC)


def test_a_split_lacking_a_class_fails_clearly() -> None:
    labels = [0] * 90 + [1] * 10
    frame = _frame(100, labels)
    frame["ts"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(100), "min")
    with pytest.raises(ConfigError, match=r"train split .* lacks class\(es\) \['1'\]"):
        split_time_ordered(frame, SPEC)


@pytest.mark.parametrize(("holdout", "valid"), [(0.0, 0.2), (0.5, 0.5), (0.2, 1.2)])
def test_bad_fractions_are_refused(holdout: float, valid: float) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        split_time_ordered(_frame(100), SPEC, holdout, valid)


def test_missing_labels_are_refused() -> None:
    frame = _frame(100).astype({"y": "float64"})
    frame.loc[3, "y"] = np.nan
    with pytest.raises(ConfigError, match="1 rows have no 'y'"):
        split_time_ordered(frame, SPEC)


def test_label_encoding_of_integers_is_sorted_and_typed() -> None:
    encoding = LabelEncoding.fit(pd.Series([1, 0, 1, 1]), Task.BINARY)

    assert encoding.classes == (0, 1)
    assert encoding.kind == "int"
    np.testing.assert_array_equal(encoding.encode(pd.Series([1, 0, 0])), [1, 0, 0])
    np.testing.assert_array_equal(encoding.encode(pd.Series([1.0, 0.0])), [1, 0])
    decoded = encoding.decode([1, 0])
    assert decoded.tolist() == [1, 0] and decoded.dtype == np.int64
    assert LabelEncoding.from_json(encoding.to_json()) == encoding


def test_label_encoding_of_strings() -> None:
    encoding = LabelEncoding.fit(pd.Series(["mid", "high", "low", "mid"]), Task.MULTICLASS)

    assert encoding.classes == ("high", "low", "mid")
    np.testing.assert_array_equal(
        encoding.encode(pd.Series(["low", "mid"], dtype="string")), [1, 2]
    )
    assert encoding.decode([0, 2]).tolist() == ["high", "mid"]
    assert LabelEncoding.from_json(encoding.to_json()).classes == encoding.classes
    with pytest.raises(ConfigError, match="not among the classes"):
        encoding.encode(pd.Series(["extreme"]))


@pytest.mark.parametrize(
    ("labels", "task", "message"),
    [
        ([0, 1, 2], Task.BINARY, "exactly 2 classes"),
        ([1, 1, 1], Task.MULTICLASS, "at least 2 classes"),
        ([0, "a"], Task.BINARY, "mix integers and strings"),
        ([0.5, 1.0], Task.BINARY, "neither an integer nor a string"),
    ],
)
def test_label_encoding_refuses_bad_labels(labels: list[object], task: Task, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LabelEncoding.fit(pd.Series(labels, dtype=object), task)


def test_unknown_integer_label_is_refused() -> None:
    encoding = LabelEncoding.fit(pd.Series([0, 1]), Task.BINARY)
    with pytest.raises(ConfigError, match="2 labels are not among"):
        encoding.encode(pd.Series([0, 2, 1.5]))


def test_as_training_frame_matches_the_training_set_layout() -> None:
    spec = DatasetSpec(
        name="card_fraud",
        entity="card_id",
        timestamp="event_timestamp",
        label="is_fraud",
        task=Task.BINARY,
        exclude=("transaction_id",),
    )
    raw = generate(Scenario.BASELINE, 50, datetime(2024, 3, 4, tzinfo=UTC), seed=1)
    schema = spec.resolve_schema(raw)
    frame = as_training_frame(raw, spec, schema)

    assert list(frame.columns) == ["card_id", "event_timestamp", *schema.columns, "is_fraud"]
    assert all(frame[c].dtype == "float64" for c in schema.numeric)
    assert all(isinstance(frame[c].dtype, pd.StringDtype) for c in schema.categorical)
    with pytest.raises(ConfigError, match="missing"):
        as_training_frame(raw, spec, FeatureSchema(numeric=("nope",), categorical=()))
