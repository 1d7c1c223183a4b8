"""The synthetic fraud generator: reproducible, well-formed, and broken only on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.dataset_spec import load_spec
from mlops.synthetic import (
    CATEGORICAL_FEATURES,
    COLUMNS,
    DEFECT_COLUMNS,
    ENTITY,
    FEATURES,
    LABEL,
    NUMERIC_FEATURES,
    TIMESTAMP,
    TRANSACTION_ID,
    Defect,
    Scenario,
    derive_seed,
    generate,
    write_batch,
)

SPEC_PATH = Path(__file__).resolve().parents[2] / "datasets" / "card_fraud.yaml"
START = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
CLEAN = (Scenario.BASELINE, Scenario.COVARIATE_SHIFT, Scenario.CONCEPT_SHIFT)
KEYS = [ENTITY, TIMESTAMP]


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    return generate(Scenario.BASELINE, 20_000, START, seed=3)


def _bad(defects: list[Defect] | None, rows: int = 5_000) -> pd.DataFrame:
    return generate(Scenario.BAD_BATCH, rows, START, seed=3, defects=defects)


# ------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("scenario", list(Scenario))
def test_same_arguments_give_an_identical_frame(scenario: Scenario) -> None:
    first = generate(scenario, 2_000, START, days=3.0, seed=42)
    second = generate(scenario, 2_000, START, days=3.0, seed=42)
    pd.testing.assert_frame_equal(first, second)


def test_another_seed_gives_another_frame() -> None:
    first = generate(Scenario.BASELINE, 2_000, START, seed=1)
    second = generate(Scenario.BASELINE, 2_000, START, seed=2)
    assert not first.equals(second)
    assert not first[TRANSACTION_ID].isin(second[TRANSACTION_ID]).any()


def test_transaction_ids_stay_unique_when_a_seed_is_reused_for_the_next_week() -> None:
    first = generate(Scenario.BASELINE, 1_000, START, seed=1)
    second = generate(Scenario.BASELINE, 1_000, START + timedelta(days=7), seed=1)
    assert not first[TRANSACTION_ID].isin(second[TRANSACTION_ID]).any()


def test_without_a_seed_the_batch_depends_on_scenario_and_start_only() -> None:
    pd.testing.assert_frame_equal(
        generate(Scenario.BASELINE, 500, START), generate(Scenario.BASELINE, 500, START)
    )
    assert not generate(Scenario.BASELINE, 500, START).equals(
        generate(Scenario.BASELINE, 500, START + timedelta(days=7))
    )
    assert derive_seed(Scenario.BASELINE, START) != derive_seed(Scenario.CONCEPT_SHIFT, START)
    assert derive_seed(Scenario.BASELINE, START.replace(tzinfo=None)) == derive_seed(
        Scenario.BASELINE, START
    )


def test_derived_seed_is_the_same_in_another_process() -> None:
    code = (
        "from datetime import datetime, UTC; from mlops.synthetic import derive_seed, Scenario; "
        "print(derive_seed(Scenario.BASELINE, datetime(2024, 3, 4, 9, 30, tzinfo=UTC)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert int(out.stdout) == derive_seed(Scenario.BASELINE, START)


def test_naive_start_is_read_as_utc() -> None:
    naive = generate(Scenario.BASELINE, 300, START.replace(tzinfo=None))
    pd.testing.assert_frame_equal(naive, generate(Scenario.BASELINE, 300, START))
    paris = START.astimezone(timezone(timedelta(hours=1)))
    pd.testing.assert_frame_equal(
        generate(Scenario.BASELINE, 300, paris), generate(Scenario.BASELINE, 300, START)
    )


# ----------------------------------------------------------------------------- shape


def test_columns_rows_and_dtypes(baseline: pd.DataFrame) -> None:
    assert len(baseline) == 20_000
    assert tuple(baseline.columns) == COLUMNS
    assert 15 <= len(FEATURES) <= 30
    for column in NUMERIC_FEATURES:
        assert baseline[column].dtype in (np.int64, np.float64), column
    for column in (*CATEGORICAL_FEATURES, TRANSACTION_ID, ENTITY):
        assert baseline[column].dtype == object, column
        assert baseline[column].map(type).eq(str).all(), column
    assert baseline[LABEL].dtype == np.int64
    assert set(baseline[LABEL].unique()) == {0, 1}


def test_timestamps_are_utc_inside_the_window_and_sorted(baseline: pd.DataFrame) -> None:
    stamps = baseline[TIMESTAMP]
    assert isinstance(stamps.dtype, pd.DatetimeTZDtype)
    assert str(stamps.dt.tz) == "UTC"
    assert stamps.min() >= pd.Timestamp(START)
    assert stamps.max() < pd.Timestamp(START + timedelta(days=7))
    assert stamps.is_monotonic_increasing
    assert (baseline["hour_of_day"] == stamps.dt.hour).all()
    assert (baseline["day_of_week"] == stamps.dt.dayofweek).all()


def test_fractional_window() -> None:
    frame = generate(Scenario.BASELINE, 1_000, START, days=0.25, seed=5)
    assert frame[TIMESTAMP].min() >= pd.Timestamp(START)
    assert frame[TIMESTAMP].max() < pd.Timestamp(START + timedelta(hours=6))


def test_daily_cycle_has_quiet_nights(baseline: pd.DataFrame) -> None:
    per_hour = baseline["hour_of_day"].value_counts()
    assert per_hour.loc[[2, 3, 4]].mean() < 0.3 * per_hour.loc[[12, 13, 14]].mean()


def test_tiny_batch() -> None:
    frame = generate(Scenario.BASELINE, 1, START, seed=0)
    assert len(frame) == 1
    assert frame.notna().all().all()


# ------------------------------------------------------------------------ spec and data


def test_spec_resolves_the_features(baseline: pd.DataFrame) -> None:
    spec = load_spec(SPEC_PATH)
    assert (spec.name, spec.entity, spec.timestamp, spec.label) == (
        "card_fraud",
        ENTITY,
        TIMESTAMP,
        LABEL,
    )
    assert spec.source is None
    schema = spec.resolve_schema(baseline)
    assert 15 <= len(schema.columns) <= 30
    assert set(schema.categorical) == set(CATEGORICAL_FEATURES)
    assert set(schema.numeric) == set(NUMERIC_FEATURES)
    assert TRANSACTION_ID not in schema.columns


def test_fraud_rate_is_realistic(baseline: pd.DataFrame) -> None:
    assert 0.05 <= baseline[LABEL].mean() <= 0.12


@pytest.mark.parametrize("scenario", CLEAN)
def test_clean_batches_have_no_nulls_and_unique_keys(scenario: Scenario) -> None:
    frame = generate(scenario, 10_000, START, seed=9)
    assert frame.notna().all().all()
    assert frame[TRANSACTION_ID].is_unique
    assert not frame.duplicated(KEYS).any()


def test_values_are_in_their_domains(baseline: pd.DataFrame) -> None:
    assert (baseline["amount"] > 0).all()
    assert baseline["hour_of_day"].between(0, 23).all()
    assert baseline["day_of_week"].between(0, 6).all()
    assert baseline["customer_age"].between(18, 95).all()
    assert (baseline["card_age_days"] >= 0).all()
    for score in ("utilization", "merchant_risk_score", "device_trust_score"):
        assert baseline[score].between(0.0, 1.0).all(), score
    for flag in ("is_weekend", "foreign_transaction"):
        assert set(baseline[flag].unique()) <= {0, 1}, flag
    assert (baseline["txn_count_24h"] >= baseline["txn_count_1h"]).all()
    assert baseline["channel"].isin(["pos", "online", "atm"]).all()
    assert (baseline.loc[baseline["channel"] == "online", "entry_mode"] == "online").all()
    assert 500 <= baseline[ENTITY].nunique() <= 20_000 // 20


def test_cards_keep_their_attributes(baseline: pd.DataFrame) -> None:
    per_card = baseline.groupby(ENTITY)[
        ["customer_age", "credit_limit", "card_type", "home_region"]
    ].nunique()
    assert (per_card == 1).all().all()
    other = generate(Scenario.COVARIATE_SHIFT, 5_000, START + timedelta(days=30), seed=8)
    both = other.merge(baseline, on=ENTITY, suffixes=("", "_before"))
    assert len(both) > 0
    assert (both["customer_age"] == both["customer_age_before"]).all()


def test_concept_shift_changes_only_the_labels() -> None:
    base = generate(Scenario.BASELINE, 5_000, START, seed=4)
    shifted = generate(Scenario.CONCEPT_SHIFT, 5_000, START, seed=4)
    pd.testing.assert_frame_equal(base.drop(columns=LABEL), shifted.drop(columns=LABEL))
    assert (base[LABEL] != shifted[LABEL]).mean() > 0.05


def test_covariate_shift_moves_the_inputs(baseline: pd.DataFrame) -> None:
    shifted = generate(Scenario.COVARIATE_SHIFT, 20_000, START, seed=3)
    assert (shifted["channel"] == "online").mean() > (baseline["channel"] == "online").mean() + 0.1
    assert shifted["amount"].median() > 1.3 * baseline["amount"].median()
    assert (
        shifted["hour_of_day"].isin(range(6)).mean()
        > 1.5 * baseline["hour_of_day"].isin(range(6)).mean()
    )


# --------------------------------------------------------------------------- defects


def test_defect_columns_are_known_and_do_not_overlap() -> None:
    assert set(DEFECT_COLUMNS) == set(Defect)
    assert DEFECT_COLUMNS[Defect.DUPLICATE_KEYS] == (ENTITY, TIMESTAMP)
    touched = [
        c for d, cols in DEFECT_COLUMNS.items() if d is not Defect.DUPLICATE_KEYS for c in cols
    ]
    assert len(touched) == len(set(touched))
    assert set(touched) <= set(FEATURES)


@pytest.mark.parametrize(
    "defect", [Defect.NULLS, Defect.OUT_OF_RANGE, Defect.WRONG_DTYPE, Defect.MISSING_COLUMN]
)
def test_a_defect_touches_only_its_columns(defect: Defect) -> None:
    clean = generate(Scenario.BASELINE, 5_000, START, seed=3)
    bad = _bad([defect])
    assert len(bad) == len(clean)
    assert set(clean.columns) - set(bad.columns) == (
        set(DEFECT_COLUMNS[defect]) if defect is Defect.MISSING_COLUMN else set()
    )
    changed = {c for c in bad.columns if not bad[c].equals(clean[c])}
    expected = set() if defect is Defect.MISSING_COLUMN else set(DEFECT_COLUMNS[defect])
    assert changed == expected


def test_nulls() -> None:
    bad = _bad([Defect.NULLS])
    numeric, categorical = DEFECT_COLUMNS[Defect.NULLS]
    assert bad[numeric].isna().mean() == pytest.approx(0.02, abs=0.005)
    assert bad[categorical].isna().sum() > 0
    assert bad[numeric].dtype == np.float64


def test_out_of_range() -> None:
    bad = _bad([Defect.OUT_OF_RANGE])
    assert 0 < (bad["amount"] < 0).sum() <= 10
    assert 0 < (bad["customer_age"] == 250).sum() <= 10
    assert 0 < (bad["hour_of_day"] == 30).sum() <= 10
    assert bad["customer_age"].dtype == np.int64


def test_wrong_dtype() -> None:
    clean = generate(Scenario.BASELINE, 5_000, START, seed=3)
    bad = _bad([Defect.WRONG_DTYPE])
    (column,) = DEFECT_COLUMNS[Defect.WRONG_DTYPE]
    assert bad[column].dtype == object
    assert bad[column].str.contains(",").any()
    parsed = bad[column].str.replace(",", "").astype(float)
    pd.testing.assert_series_equal(parsed, clean[column])


def test_missing_column() -> None:
    bad = _bad([Defect.MISSING_COLUMN])
    assert (
        tuple(c for c in COLUMNS if c not in bad.columns) == DEFECT_COLUMNS[Defect.MISSING_COLUMN]
    )


def test_duplicate_keys() -> None:
    clean = generate(Scenario.BASELINE, 5_000, START, seed=3)
    bad = _bad([Defect.DUPLICATE_KEYS])
    assert len(bad) == len(clean)
    assert bad.duplicated(KEYS).sum() == 50
    assert bad[TRANSACTION_ID].is_unique
    assert set(bad[TRANSACTION_ID]) == set(clean[TRANSACTION_ID])
    assert bad[TIMESTAMP].is_monotonic_increasing
    assert bad.notna().all().all()
    assert (bad.dtypes == clean.dtypes).all()
    # Rows not overwritten are untouched.
    merged = bad.merge(clean, on=TRANSACTION_ID, suffixes=("", "_clean"))
    same = (merged[ENTITY] == merged[f"{ENTITY}_clean"]) & (
        merged[TIMESTAMP] == merged[f"{TIMESTAMP}_clean"]
    )
    assert (~same).sum() == 50


def test_all_defects_by_default() -> None:
    bad = _bad(None)
    assert set(DEFECT_COLUMNS[Defect.MISSING_COLUMN]).isdisjoint(bad.columns)
    assert bad["distance_from_home_km"].isna().any()
    assert (bad["customer_age"] == 250).any()
    assert bad["credit_limit"].dtype == object
    assert bad.duplicated(KEYS).any()


# ------------------------------------------------------------------------------ files


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_batch_round_trip(tmp_path: Path, suffix: str) -> None:
    frame = generate(Scenario.BASELINE, 1_000, START, seed=6)
    out = write_batch(frame, tmp_path / "nested" / "dir" / f"batch{suffix}")
    assert out.is_file()
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    if suffix == ".parquet":
        back = pd.read_parquet(out)
    else:
        back = pd.read_csv(out)
        assert back[TIMESTAMP].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$").all()
        back[TIMESTAMP] = pd.to_datetime(back[TIMESTAMP], utc=True, format="ISO8601")
    pd.testing.assert_frame_equal(back, frame, check_dtype=suffix == ".parquet")


def test_write_batch_refuses_other_suffixes(tmp_path: Path) -> None:
    frame = generate(Scenario.BASELINE, 10, START, seed=6)
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        write_batch(frame, tmp_path / "batch.json")
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": 0}, "rows must be an integer >= 1"),
        ({"rows": 2.5}, "rows must be an integer >= 1"),
        ({"days": 0.0}, "days must be a positive number"),
        ({"days": -1.0}, "days must be a positive number"),
        ({"days": float("nan")}, "days must be a positive number"),
        ({"days": 1e-9}, "too short"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"defects": [Defect.NULLS]}, "defects apply only to the bad-batch scenario"),
        ({"scenario": "sideways"}, "unknown scenario 'sideways'"),
        ({"scenario": Scenario.BAD_BATCH, "defects": []}, "at least one defect"),
        ({"scenario": Scenario.BAD_BATCH, "defects": ["typo"]}, "unknown defect 'typo'"),
        ({"scenario": Scenario.BAD_BATCH, "defects": "nulls"}, "not a single string"),
        ({"scenario": Scenario.BAD_BATCH, "rows": 1}, "at least 2 rows"),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "scenario": Scenario.BASELINE,
        "rows": 100,
        "start": START,
        "seed": 1,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        generate(**arguments)  # type: ignore[arg-type]


def test_scenario_and_defect_values() -> None:
    assert [s.value for s in Scenario] == [
        "baseline",
        "covariate-shift",
        "concept-shift",
        "bad-batch",
    ]
    assert [d.value for d in Defect] == [
        "nulls",
        "out-of-range",
        "wrong-dtype",
        "missing-column",
        "duplicate-keys",
    ]
    frame = generate("bad-batch", 200, START, seed=1, defects=["nulls"])  # type: ignore[arg-type,list-item]
    assert frame["distance_from_home_km"].isna().any()
