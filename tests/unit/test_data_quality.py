"""The data contract judging served traffic: a broken pipe is degraded, noise is not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.quality import (
    DataQualityReport,
    FeatureBounds,
    IncidentChange,
    QualityStatus,
    check_quality,
    current_incident,
    incidents,
    open_incident,
    record_window,
)
from mlops.settings import QualitySettings, Settings, ValidationSettings
from mlops.validation import ReferenceProfile
from tests.unit.validation_frames import make_frame, reference_profile

VALIDATION = ValidationSettings()
QUALITY = QualitySettings()
FEATURES = ["amount", "score", "age", "tip", "merchant", "country"]


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return reference_profile()


def _window(rows: int = 1_000, seed: int = 3) -> pd.DataFrame:
    """Served features as the monitor reads them (no keys, no label)."""
    return make_frame(rows, seed=seed, start="2026-03-01")[FEATURES].copy()


def _judge(profile: ReferenceProfile, window: pd.DataFrame) -> DataQualityReport:
    return check_quality(profile, window, VALIDATION, QUALITY)


# --- verdicts ---------------------------------------------------------------------


def test_a_clean_window_is_ok(profile: ReferenceProfile) -> None:
    report = _judge(profile, _window())
    assert report.status is QualityStatus.OK, report.reason()
    assert report.failing == () and report.features == len(FEATURES)


def _one_bad_row(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"amount": object, "merchant": object})
    frame.loc[5, "amount"] = 1e9
    frame.loc[6, "score"] = np.nan
    frame.loc[7, "merchant"] = "casino"
    frame.loc[8, "age"] = -3
    frame.loc[9, "amount"] = "twelve"
    return frame


def test_one_noisy_row_raises_no_incident(profile: ReferenceProfile) -> None:
    report = _judge(profile, _one_bad_row(_window()))
    assert report.status is QualityStatus.OK, report.reason()


def _all_null(frame: pd.DataFrame) -> pd.DataFrame:
    frame["amount"] = None
    return frame


def _unit_change(frame: pd.DataFrame) -> pd.DataFrame:
    frame["amount"] = frame["amount"] * 1000
    return frame


def _unseen_categories(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index % 3 == 0, "merchant"] = "casino"
    return frame


def _numbers_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    frame["age"] = frame["age"].astype(str)
    return frame


def _missing_feature(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["country"])


@pytest.mark.parametrize(
    ("defect", "expectation", "examples"),
    [
        (_all_null, "amount.not_null", (None,)),
        (_unit_change, "amount.in_range", None),
        (_unseen_categories, "merchant.in_set", ("casino",)),
        (_numbers_as_text, "age.dtype", None),
        (_missing_feature, "country.exists", ()),
    ],
    ids=["all-null", "unit-x1000", "unseen-categories", "dtype", "missing-feature"],
)
def test_a_broken_pipe_is_degraded_and_named(
    profile: ReferenceProfile,
    defect: Callable[[pd.DataFrame], pd.DataFrame],
    expectation: str,
    examples: tuple[object, ...] | None,
) -> None:
    report = _judge(profile, defect(_window()))
    assert report.status is QualityStatus.DEGRADED
    assert [f.name for f in report.failing] == [expectation], report.reason()
    failed = report.failing[0]
    assert failed.observed > failed.threshold and failed.count > 0
    assert failed.expected
    if examples is not None:
        assert failed.examples == examples
    else:
        assert 0 < len(failed.examples) <= QUALITY.example_values
    assert failed.column in report.reason() and report.broken_features == (failed.column,)


def test_the_evidence_carries_values_and_the_learned_range(profile: ReferenceProfile) -> None:
    report = _judge(profile, _unit_change(_window()))
    failed = report.failing[0]
    assert failed.observed > 0.9
    assert "values in [0," in failed.expected
    assert all(isinstance(v, float) and v > 125 for v in failed.examples)
    payload = report.failing_payload()
    assert payload[0]["name"] == "amount.in_range" and payload[0]["examples"]
    assert "`amount.in_range`" in report.markdown()


def test_the_null_bound_respects_the_reference_rate(profile: ReferenceProfile) -> None:
    window = _window()
    assert profile.column("tip").null_rate == pytest.approx(0.1)
    window.loc[window.index % 10 == 1, "tip"] = np.nan  # 20 % null; the reference had 10 %
    assert _judge(profile, window).status is QualityStatus.DEGRADED
    window = _window()
    window.loc[np.isin(window.index % 100, (1, 2, 3)), "tip"] = np.nan  # 13 %: within bounds
    assert _judge(profile, window).status is QualityStatus.OK


def test_a_small_window_is_not_judged(profile: ReferenceProfile) -> None:
    report = _judge(profile, _all_null(_window(rows=QUALITY.min_rows - 1)))
    assert report.status is QualityStatus.INSUFFICIENT_DATA
    assert not report.degraded and report.failing == ()


def test_a_window_of_mixed_json_types_is_judged_like_a_typed_one(
    profile: ReferenceProfile,
) -> None:
    window = _window(rows=10_000).astype(object)  # as mixed JSON reads back, worst case
    report = _judge(profile, window)  # its cost: benchmarks/hot_paths.py
    assert report.status is QualityStatus.OK, report.reason()


# --- incidents as state -------------------------------------------------------------


def test_an_incident_opens_continues_and_closes(tmp_path: Path, profile: ReferenceProfile) -> None:
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    broken = _judge(profile, _all_null(_window()))
    clean = _judge(profile, _window())
    small = _judge(profile, _window(rows=10))

    assert record_window(settings, "m", "1", clean, now=t0).change is IncidentChange.NONE
    assert open_incident(settings, "m") is None
    opened = record_window(settings, "m", "1", broken, now=t0)
    assert opened.change is IncidentChange.OPENED and opened.incident is not None
    assert opened.incident.broken_features == ("amount",)
    again = record_window(settings, "m", "2", broken, now=t0 + timedelta(hours=1))
    assert again.change is IncidentChange.CONTINUED and again.incident is not None
    assert again.incident.opened_at == t0 and again.incident.windows == 2
    assert record_window(settings, "m", "2", small).change is IncidentChange.NONE
    assert current_incident(settings, "m", now=t0 + timedelta(hours=2)) is not None
    reason = open_incident(settings, "other")
    assert reason is None, "incidents are per model"

    closed = record_window(settings, "m", "2", clean, now=t0 + timedelta(hours=2))
    assert closed.change is IncidentChange.CLOSED and closed.incident is not None
    assert closed.incident.closed_at == t0 + timedelta(hours=2)
    assert current_incident(settings, "m", now=t0 + timedelta(hours=2)) is None
    assert [i.open for i in incidents(settings, "m")] == [False]


def test_open_incident_names_the_breakage_and_goes_stale(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    now = datetime.now(UTC)
    record_window(settings, "m", "1", _judge(profile, _all_null(_window())), now=now)
    reason = open_incident(settings, "m")
    assert reason is not None and "amount" in reason and "incident open since" in reason
    later = now + timedelta(seconds=settings.quality.incident_stale_s + 1)
    assert current_incident(settings, "m", now=later) is None


# --- serving's per-request counts ---------------------------------------------------


def test_feature_bounds_count_nulls_out_of_range_and_unseen(profile: ReferenceProfile) -> None:
    bounds = FeatureBounds.build(("amount", "age", "unknown"), ("merchant",), profile, VALIDATION)
    rows = [
        {"amount": 10.0, "age": 30, "unknown": 1.0, "merchant": "fuel"},
        {"amount": None, "age": 30, "unknown": 1e12, "merchant": None},
        {"amount": 1e9, "age": -5, "unknown": None, "merchant": "casino"},
    ]
    counts = bounds.count(rows)
    assert counts.rows == 3
    assert counts.numeric_nulls.tolist() == [1, 0, 1]
    assert counts.out_of_range.tolist() == [1, 1, 0], "a feature the profile lacks is unbounded"
    assert counts.categorical_nulls.tolist() == [1]
    assert counts.unseen.tolist() == [1]


def test_feature_bounds_without_a_profile_count_nulls_only() -> None:
    bounds = FeatureBounds.build(("x",), ("c",), None, VALIDATION)
    counts = bounds.count([{"x": None, "c": None}, {"x": 1e30, "c": "new"}, {"x": "text"}])
    assert counts.numeric_nulls.tolist() == [2]
    assert counts.out_of_range.tolist() == [0]
    assert counts.categorical_nulls.tolist() == [2] and counts.unseen.tolist() == [0]


def test_a_broken_window_is_conformed_for_the_drift_computation(
    profile: ReferenceProfile,
) -> None:
    from mlops.quality import conform_window

    clean = _window()
    assert conform_window(clean, profile.feature_schema) is clean
    broken = _missing_feature(_numbers_as_text(_all_null(_window())))
    view = conform_window(broken, profile.feature_schema)
    assert view["amount"].dtype == float and view["amount"].isna().all()
    assert view["age"].dtype == float and view["age"].iloc[0] == float(broken["age"].iloc[0])
    assert view["country"].isna().all()
    assert broken["amount"].dtype == object, "the original window is left as it was"
