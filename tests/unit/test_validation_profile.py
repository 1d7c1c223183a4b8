"""The reference profile: learned faithfully, stored as JSON, refused when broken."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from mlops.dataset_spec import Task
from mlops.errors import ConfigError
from mlops.settings import Settings
from mlops.validation import (
    ColumnKind,
    DtypeFamily,
    learn_profile,
    load_profile,
    profile_path,
    save_profile,
)
from tests.unit.validation_frames import MERCHANTS, SPEC, make_frame, reference_profile


def test_profile_learns_kinds_ranges_nulls_and_categories() -> None:
    frame = make_frame()
    profile = learn_profile(SPEC, frame, "a" * 64)

    assert profile.dataset == "payments"
    assert profile.rows == len(frame)
    assert profile.reference_sha256 == "a" * 64
    assert profile.feature_schema.numeric == ("amount", "score", "age", "tip")
    assert profile.feature_schema.categorical == ("merchant", "country")
    assert [c.name for c in profile.columns][:3] == ["customer_id", "event_timestamp", "is_fraud"]
    assert profile.column("customer_id").kind is ColumnKind.ENTITY
    assert profile.column("event_timestamp").family is DtypeFamily.DATETIME
    amount = profile.column("amount")
    assert amount.kind is ColumnKind.NUMERIC and amount.family is DtypeFamily.NUMERIC
    assert amount.min == pytest.approx(frame["amount"].min())
    assert amount.max == pytest.approx(frame["amount"].max())
    assert profile.column("tip").null_rate == pytest.approx(0.1)
    assert profile.column("amount").null_rate == 0.0
    assert profile.column("merchant").categories == MERCHANTS
    assert profile.column("merchant").family is DtypeFamily.STRING
    assert profile.label_classes == (0, 1)


def test_profile_round_trips_through_json(settings: Settings) -> None:
    assert load_profile(SPEC, settings) is None
    profile = reference_profile()

    path = save_profile(profile, settings)

    assert path == settings.references_dir / "payments" / "profile.json"
    assert path == profile_path("payments", settings)
    assert json.loads(path.read_text())["dataset"] == "payments"
    loaded = load_profile(SPEC, settings)
    assert loaded == profile
    assert isinstance(loaded.label_classes[0], int)


def test_text_labels_and_nullable_dtypes_are_profiled() -> None:
    frame = make_frame()
    frame["is_fraud"] = np.where(frame["is_fraud"] == 1, "fraud", "ok")
    frame["age"] = frame["age"].astype("Int64")
    frame["merchant"] = frame["merchant"].astype("category")
    frame["country"] = frame["country"].astype("string")

    profile = learn_profile(SPEC, frame, "b" * 64)

    assert profile.label_classes == ("fraud", "ok")
    assert profile.column("age").family is DtypeFamily.NUMERIC
    assert profile.column("merchant").categories == MERCHANTS
    assert profile.column("country").family is DtypeFamily.STRING


def test_iso_text_timestamps_are_accepted() -> None:
    frame = make_frame()
    frame["event_timestamp"] = frame["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")

    profile = learn_profile(SPEC, frame, "c" * 64)

    assert profile.column("event_timestamp").family is DtypeFamily.STRING


def _missing_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["is_fraud"])


def _duplicate_keys(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[1, ["customer_id", "event_timestamp"]] = frame.loc[
        0, ["customer_id", "event_timestamp"]
    ]
    return frame


def _null_entity(frame: pd.DataFrame) -> pd.DataFrame:
    frame["customer_id"] = frame["customer_id"].astype(float)
    frame.loc[3, "customer_id"] = np.nan
    return frame


def _null_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame["is_fraud"] = frame["is_fraud"].astype(float)
    frame.loc[3, "is_fraud"] = np.nan
    return frame


def _three_classes(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, "is_fraud"] = 2
    return frame


def _one_class(frame: pd.DataFrame) -> pd.DataFrame:
    frame["is_fraud"] = 0
    return frame


def _fractional_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame["is_fraud"] = frame["is_fraud"] * 0.5
    return frame


def _unparseable_timestamp(frame: pd.DataFrame) -> pd.DataFrame:
    frame["event_timestamp"] = frame["event_timestamp"].astype(str)
    frame.loc[5, "event_timestamp"] = "yesterday"
    return frame


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_missing_column, "missing"),
        (_duplicate_keys, "duplicate"),
        (_null_entity, "null values in 'customer_id'"),
        (_null_label, "null values in 'is_fraud'"),
        (_three_classes, "exactly 2 label classes"),
        (_one_class, "exactly 2 label classes"),
        (_fractional_label, "non-integer"),
        (_unparseable_timestamp, "not ISO 8601"),
        (lambda frame: frame.iloc[:0], "empty"),
    ],
)
def test_a_broken_reference_is_refused(
    breakage: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        learn_profile(SPEC, breakage(make_frame()), "d" * 64)


def test_multiclass_needs_two_classes_but_accepts_more() -> None:
    spec = SPEC.model_copy(update={"task": Task.MULTICLASS})
    frame = make_frame()
    frame["is_fraud"] = frame.index % 3

    assert learn_profile(spec, frame, "e" * 64).label_classes == (0, 1, 2)
    with pytest.raises(ConfigError, match="at least 2"):
        learn_profile(spec, _one_class(make_frame()), "e" * 64)


def test_a_profile_learned_for_other_roles_is_refused(settings: Settings) -> None:
    save_profile(reference_profile(), settings)
    changed = SPEC.model_copy(update={"label": "amount"})

    with pytest.raises(ConfigError, match="re-learn"):
        load_profile(changed, settings)


def test_a_corrupt_profile_is_refused(settings: Settings) -> None:
    path = profile_path("payments", settings)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")

    with pytest.raises(ConfigError, match="corrupt"):
        load_profile(SPEC, settings)
