"""Behaviour of the drift library: method choice, verdicts, share, cache, edge cases.

Parity with a real Evidently run is in tests/integration/test_drift_evidently.py; here
the numbers are checked against scipy and against the rules Evidently applies.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from mlops.dataset_spec import FeatureSchema
from mlops.drift import (
    ColumnKind,
    DriftColumns,
    DriftInputError,
    DriftMethod,
    DriftReport,
    DriftSettings,
    DriftStatus,
    PerformanceMetrics,
    ReferenceCacheError,
    ReferenceStats,
    build_reference,
    compute_drift,
    load_or_build_reference,
    load_reference,
    measure_performance,
    save_reference,
    select_method,
)
from mlops.drift.methods import (
    chisquare_p_value,
    jensenshannon_distance,
    wasserstein_normed,
    z_p_value,
)

COLUMNS = DriftColumns(
    numeric=("amount", "velocity", "flag"),
    categorical=("channel", "region"),
    prediction="score",
    label="is_fraud",
)


def make_frame(rows: int, *, seed: int, shift: bool = False) -> pd.DataFrame:
    """`amount`, `channel` and `score` move when shifted; the rest keep their law."""
    rng = np.random.default_rng(seed)
    label = rng.random(rows) < 0.3
    score = np.clip(rng.normal(np.where(label, 0.7, 0.3), 0.15), 0.0, 1.0)
    if shift:
        score = np.clip(score + rng.normal(0.0, 0.3, rows), 0.0, 1.0)  # a worse model
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3.0 + (0.8 if shift else 0.0), 1.0, rows),
            "velocity": rng.normal(5.0, 2.0, rows),
            "flag": rng.choice([0.0, 1.0], rows, p=[0.7, 0.3]),
            "channel": rng.choice(
                ["web", "pos", "atm"], rows, p=[0.2, 0.2, 0.6] if shift else [0.5, 0.3, 0.2]
            ),
            "region": rng.choice(["n", "s", "e", "w"], rows),
            "score": score,
            "is_fraud": label.astype(int),
        }
    )


@pytest.fixture(scope="module")
def reference_frame() -> pd.DataFrame:
    return make_frame(4000, seed=1)


@pytest.fixture(scope="module")
def reference(reference_frame: pd.DataFrame) -> ReferenceStats:
    return build_reference(reference_frame, COLUMNS, reference_id="champion-v1")


# --- method choice and verdict rules (Evidently's defaults) -------------------------


@pytest.mark.parametrize(
    ("kind", "reference_rows", "n_values", "expected"),
    [
        (ColumnKind.NUMERIC, 1000, 6, DriftMethod.KS),
        (ColumnKind.NUMERIC, 1000, 5, DriftMethod.CHISQUARE),
        (ColumnKind.NUMERIC, 1000, 3, DriftMethod.CHISQUARE),
        (ColumnKind.NUMERIC, 1000, 2, DriftMethod.Z),
        (ColumnKind.CATEGORICAL, 1000, 30, DriftMethod.CHISQUARE),
        (ColumnKind.CATEGORICAL, 10, 2, DriftMethod.Z),
        (ColumnKind.NUMERIC, 1001, 6, DriftMethod.WASSERSTEIN),
        (ColumnKind.NUMERIC, 1001, 5, DriftMethod.JENSENSHANNON),
        (ColumnKind.CATEGORICAL, 1001, 2, DriftMethod.JENSENSHANNON),
        (ColumnKind.CATEGORICAL, 50_000, 40, DriftMethod.JENSENSHANNON),
    ],
)
def test_method_follows_reference_size_kind_and_distinct_values(
    kind: ColumnKind, reference_rows: int, n_values: int, expected: DriftMethod
) -> None:
    assert select_method(kind, reference_rows, n_values) is expected


def test_p_values_drift_below_and_distances_at_or_above_their_threshold() -> None:
    assert DriftMethod.KS.drifted(0.05, 0.05)  # Evidently: p <= threshold
    assert not DriftMethod.CHISQUARE.drifted(0.05, 0.05)  # p < threshold
    assert not DriftMethod.Z.drifted(0.05, 0.05)
    assert DriftMethod.WASSERSTEIN.drifted(0.1, 0.1)  # distance >= threshold
    assert not DriftMethod.JENSENSHANNON.drifted(0.0999, 0.1)
    assert not DriftMethod.Z.drifted(float("nan"), 0.05)
    assert DriftMethod.KS.default_threshold == 0.05
    assert DriftMethod.WASSERSTEIN.default_threshold == 0.1


# --- the tests' numbers ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_wasserstein_from_sorted_runs_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = np.round(rng.normal(0, 1, 3000), 1)  # many ties
    current = np.round(rng.normal(0.2, 1.1, 1700), 1)
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    got = wasserstein_normed(np.sort(reference), np.sort(current), float(np.std(reference)))
    assert got == pytest.approx(expected, rel=1e-12)


def test_wasserstein_norm_has_a_floor_for_a_constant_reference() -> None:
    reference = np.zeros(2000)
    current = np.full(100, 0.01)
    assert wasserstein_normed(reference, current, 0.0) == pytest.approx(0.01 / 0.001)


def test_count_tests_equal_scipy_on_the_same_counts() -> None:
    ref = {"a": 50, "b": 30, "c": 20}
    cur = {"a": 20, "b": 30, "c": 40, "d": 10}  # "d" is new
    assert chisquare_p_value(ref, 100, cur, 100) == 0.0  # expected 0 for "d": infinite chi2
    same = {"a": 25, "b": 15, "c": 10}
    expected = stats.chisquare([25, 15, 10], [25.0, 15.0, 10.0])[1]
    assert chisquare_p_value(ref, 100, same, 50) == pytest.approx(expected)
    keys = ["a", "b", "c", "d"]
    js = distance.jensenshannon(
        [ref.get(k, 0) / 100 for k in keys], [cur.get(k, 0) / 100 for k in keys]
    )
    assert jensenshannon_distance(ref, 100, cur, 100) == pytest.approx(js)


def test_z_test_compares_the_share_of_the_smallest_value() -> None:
    p_same = z_p_value({0.0: 70, 1.0: 30}, 100, {0.0: 140, 1.0: 60}, 200)
    assert p_same == pytest.approx(1.0)
    p_moved = z_p_value({0.0: 70, 1.0: 30}, 100, {0.0: 100, 1.0: 100}, 200)
    z = (0.3 - 0.5) / np.sqrt(0.4333333333333333 * (1 - 0.4333333333333333) * (1 / 100 + 1 / 200))
    assert p_moved == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))))
    assert z_p_value({"x": 10}, 10, {"x": 5}, 5) == 1.0  # one identical value on both sides


# --- compute_drift -------------------------------------------------------------------


def test_shifted_columns_drift_and_unshifted_do_not(reference: ReferenceStats) -> None:
    report = compute_drift(reference, make_frame(3000, seed=2, shift=True))
    assert report.status is DriftStatus.EVALUATED
    assert report.column("amount").drifted
    assert report.column("amount").method is DriftMethod.WASSERSTEIN
    assert report.column("channel").drifted
    assert report.column("channel").method is DriftMethod.JENSENSHANNON
    assert not report.column("velocity").drifted
    assert not report.column("region").drifted
    assert not report.column("flag").drifted
    assert report.column("flag").method is DriftMethod.JENSENSHANNON  # 2 values, > 1000 rows
    assert report.drifted_columns == ("amount", "channel")


def test_share_and_dataset_drift_follow_the_drifted_columns(reference: ReferenceStats) -> None:
    current = make_frame(3000, seed=2, shift=True)
    report = compute_drift(reference, current)
    assert report.n_drifted == 2
    assert report.share_drifted == pytest.approx(2 / 5)
    assert not report.dataset_drift  # 0.4 < 0.5, Evidently's default share
    stricter = compute_drift(reference, current, DriftSettings(drift_share=0.4))
    assert stricter.dataset_drift  # share >= drift_share
    assert stricter.drift_detected


def test_an_unshifted_window_shows_no_drift(reference: ReferenceStats) -> None:
    report = compute_drift(reference, make_frame(3000, seed=3))
    assert report.n_drifted == 0
    assert not report.dataset_drift
    assert not report.prediction_drift
    assert report.performance is not None and not report.performance.degraded
    assert not report.drift_detected


def test_threshold_overrides_take_evidently_precedence(reference: ReferenceStats) -> None:
    current = make_frame(3000, seed=2, shift=True)
    settings = DriftSettings(
        threshold=0.9, num_threshold=5.0, per_column_threshold={"channel": 0.99}
    )
    report = compute_drift(reference, current, settings)
    assert report.column("amount").threshold == 5.0  # numeric beats all-columns
    assert not report.column("amount").drifted
    assert report.column("channel").threshold == 0.99  # per column beats all
    assert not report.column("channel").drifted
    assert report.column("region").threshold == 0.9
    assert report.prediction is not None and report.prediction.threshold == 0.1  # own default


def test_prediction_drift_and_degraded_performance_are_reported(reference: ReferenceStats) -> None:
    report = compute_drift(reference, make_frame(3000, seed=2, shift=True))
    assert report.prediction is not None and report.prediction.column == "score"
    assert report.prediction_drift
    perf = report.performance
    assert perf is not None and perf.reference is not None
    assert perf.reference.roc_auc is not None and perf.reference.roc_auc > 0.9
    assert perf.roc_auc_drop is not None and perf.roc_auc_drop > 0.05
    assert perf.degraded
    assert report.drift_detected


def test_performance_is_compared_with_a_reference_value_passed_in(
    reference: ReferenceStats,
) -> None:
    given = PerformanceMetrics(rows=10, positives=5, roc_auc=0.5, accuracy=0.5)
    report = compute_drift(reference, make_frame(3000, seed=3), reference_performance=given)
    assert report.performance is not None and report.performance.reference == given
    assert not report.performance.degraded  # better than the reference passed in


def test_roc_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    probabilities = np.round(rng.random(300) * 0.5 + labels * 0.3, 2)  # with ties
    pos, neg = probabilities[labels == 1], probabilities[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    metrics = measure_performance(probabilities, labels)
    assert metrics.roc_auc == pytest.approx(pairs / (pos.size * neg.size))
    assert metrics.accuracy == pytest.approx(((probabilities >= 0.5) == labels).mean())
    one_class = measure_performance(probabilities, np.zeros(300, dtype=np.int64))
    assert one_class.roc_auc is None


def test_small_reference_uses_p_value_tests() -> None:
    reference = build_reference(make_frame(800, seed=4), COLUMNS, reference_id="small")
    report = compute_drift(reference, make_frame(500, seed=5, shift=True))
    assert report.column("amount").method is DriftMethod.KS
    assert report.column("amount").drifted
    assert report.column("velocity").method is DriftMethod.KS
    assert report.column("flag").method is DriftMethod.Z
    assert report.column("channel").method is DriftMethod.CHISQUARE
    assert report.column("channel").drifted
    assert not report.column("region").drifted


def test_missing_and_infinite_values_are_dropped_per_column(reference: ReferenceStats) -> None:
    current = make_frame(3000, seed=3)
    current.loc[::3, "velocity"] = np.nan
    current.loc[1::50, "velocity"] = np.inf
    current.loc[::4, "channel"] = None
    report = compute_drift(reference, current)
    velocity = report.column("velocity")
    assert velocity.current_rows == int(np.isfinite(current["velocity"]).sum()) < 2000
    assert not velocity.drifted
    assert report.column("channel").current_rows == 3000 - 750


# --- too little data -------------------------------------------------------------------


def test_a_window_below_min_rows_gets_an_insufficient_data_verdict(
    reference: ReferenceStats,
) -> None:
    report = compute_drift(reference, make_frame(99, seed=3))
    assert report.status is DriftStatus.INSUFFICIENT_DATA
    assert report.columns == ()
    assert not report.dataset_drift and not report.drift_detected
    assert "99 rows" in report.message and "min_rows=100" in report.message
    assert "Insufficient data" in report.markdown()


def test_a_column_without_values_is_insufficient_and_left_out_of_the_share(
    reference: ReferenceStats,
) -> None:
    current = make_frame(3000, seed=2, shift=True)
    current["velocity"] = np.nan
    report = compute_drift(reference, current)
    velocity = report.column("velocity")
    assert velocity.status is DriftStatus.INSUFFICIENT_DATA
    assert velocity.method is None and not velocity.drifted
    assert report.share_drifted == pytest.approx(2 / 4)
    assert report.dataset_drift
    assert "velocity" in report.message


def test_missing_or_mistyped_columns_are_refused(reference: ReferenceStats) -> None:
    current = make_frame(500, seed=3)
    with pytest.raises(DriftInputError, match="region"):
        compute_drift(reference, current.drop(columns=["region"]))
    current["amount"] = current["amount"].astype(str)
    with pytest.raises(DriftInputError, match="amount"):
        compute_drift(reference, current)


# --- the cached reference ----------------------------------------------------------------


def _verdicts(report: DriftReport) -> list[dict[str, object]]:
    dumped = report.model_dump(mode="json")
    dumped.pop("duration_s")
    return [dumped]


def test_a_cached_reference_gives_identical_results(
    reference: ReferenceStats, reference_frame: pd.DataFrame, tmp_path: Path
) -> None:
    current = make_frame(3000, seed=2, shift=True)
    folder = save_reference(reference, tmp_path)
    assert folder.name.startswith("champion-v1--")
    loaded = load_reference(tmp_path, "champion-v1", COLUMNS)
    assert loaded.performance == reference.performance
    assert _verdicts(compute_drift(loaded, current)) == _verdicts(compute_drift(reference, current))
    rebuilt = build_reference(reference_frame, COLUMNS, reference_id="champion-v1")
    assert _verdicts(compute_drift(rebuilt, current)) == _verdicts(compute_drift(loaded, current))


def test_load_or_build_reads_the_frame_only_on_a_miss(
    reference_frame: pd.DataFrame, tmp_path: Path
) -> None:
    calls = []

    def load() -> pd.DataFrame:
        calls.append(1)
        return reference_frame

    first = load_or_build_reference(tmp_path, "champion-v2", COLUMNS, load)
    second = load_or_build_reference(tmp_path, "champion-v2", COLUMNS, load)
    assert len(calls) == 1
    assert second.rows == first.rows == len(reference_frame)
    other = COLUMNS.model_copy(update={"categorical": ("channel",)})
    load_or_build_reference(tmp_path, "champion-v2", other, load)
    assert len(calls) == 2  # another column set is another cache entry


def test_a_cache_of_another_format_is_refused(reference: ReferenceStats, tmp_path: Path) -> None:
    folder = save_reference(reference, tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    meta["format_version"] = 999
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ReferenceCacheError, match="format"):
        load_reference(tmp_path, "champion-v1", COLUMNS)
    with pytest.raises(ReferenceCacheError, match="not cached"):
        load_reference(tmp_path, "champion-v9", COLUMNS)


def test_a_broken_cache_entry_is_rebuilt_once(
    reference: ReferenceStats, reference_frame: pd.DataFrame, tmp_path: Path
) -> None:
    folder = save_reference(reference, tmp_path)
    (folder / "values.npy").write_bytes(b"not numpy")
    with pytest.raises(ReferenceCacheError, match="unreadable"):
        load_reference(tmp_path, "champion-v1", COLUMNS)
    rebuilt = load_or_build_reference(tmp_path, "champion-v1", COLUMNS, lambda: reference_frame)
    assert rebuilt.rows == reference.rows
    assert load_reference(tmp_path, "champion-v1", COLUMNS).rows == reference.rows


def test_reference_ids_must_be_safe_folder_names(reference_frame: pd.DataFrame) -> None:
    with pytest.raises(DriftInputError, match="reference id"):
        build_reference(reference_frame, COLUMNS, reference_id="../escape")
    derived = build_reference(reference_frame.head(100), COLUMNS)
    assert derived.reference_id.startswith("sha256-")


def test_categorical_values_keep_their_type_through_the_cache(tmp_path: Path) -> None:
    columns = DriftColumns(numeric=("x",), categorical=("code", "ok"))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=2000), "code": rng.integers(1, 4, 2000), "ok": rng.random(2000) > 0.5}
    )
    save_reference(build_reference(frame, columns, reference_id="typed"), tmp_path)
    loaded = load_reference(tmp_path, "typed", columns)
    assert set(loaded.categorical["code"].counts) == {1, 2, 3}
    assert set(loaded.categorical["ok"].counts) == {True, False}
    report = compute_drift(loaded, frame.sample(1000, random_state=1))
    assert report.column("code").score is not None and report.column("code").score < 0.05
    assert not report.dataset_drift


# --- contracts and summary ---------------------------------------------------------------


def test_columns_come_from_a_feature_schema() -> None:
    schema = FeatureSchema(numeric=("amount",), categorical=("channel",))
    columns = DriftColumns.from_schema(schema, prediction="score", label="is_fraud")
    assert columns.features == ("amount", "channel")
    with pytest.raises(ValueError, match="twice"):
        DriftColumns(numeric=("a",), categorical=("a",))
    with pytest.raises(ValueError, match="prediction and label"):
        DriftColumns(numeric=("a",), prediction="a")


def test_markdown_lists_drifted_columns_first(reference: ReferenceStats) -> None:
    report = compute_drift(reference, make_frame(3000, seed=2, shift=True))
    text = report.markdown()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows[:2]] == ["amount", "channel"]
    assert "**drift detected**" in text
    assert "Wasserstein distance (normed)" in text
    assert "| --- |" in text
    with pytest.raises(Exception, match="frozen"):
        report.n_drifted = 0  # type: ignore[misc]


def test_parallel_and_serial_runs_agree(reference: ReferenceStats) -> None:
    current = make_frame(3000, seed=2, shift=True)
    serial = compute_drift(reference, current, DriftSettings(max_workers=1))
    parallel = compute_drift(reference, current, DriftSettings(max_workers=4))
    assert _verdicts(serial) == _verdicts(parallel)


# --- the performance alarm in the report ---------------------------------------------


def test_the_report_shows_estimate_bound_and_label_counts(reference: ReferenceStats) -> None:
    report = compute_drift(reference, make_frame(3000, seed=2, shift=True))
    perf = report.performance
    assert perf is not None and perf.degraded and "roc_auc" in perf.degraded_metrics
    auc = perf.drop_of("roc_auc")
    assert auc is not None and 0.0 < auc.lower_bound < auc.drop
    text = report.markdown()
    assert f"{perf.current.positives:,} positives" in text
    assert f"{perf.current.negatives:,} negatives" in text
    assert f"{auc.lower_bound:+.4f}" in text and "**degraded** (roc_auc" in text
    dumped = report.model_dump(mode="json")["performance"]
    assert dumped["verdict"] == "degraded" and dumped["drops"][0]["degraded"]


def test_a_window_with_few_labelled_positives_is_insufficient(reference: ReferenceStats) -> None:
    current = make_frame(3000, seed=2, shift=True)
    positives = current.index[current["is_fraud"] == 1]
    current.loc[positives[20:], "is_fraud"] = np.nan  # 20 labelled positives arrived
    report = compute_drift(reference, current)
    assert report.performance is not None
    assert report.performance.verdict.value == "insufficient-labels"
    assert not report.performance.degraded
    assert "insufficient labels" in report.markdown()


def test_the_reference_quality_is_measured_on_marked_holdout_rows() -> None:
    frame = make_frame(4000, seed=1)
    frame["_drift_performance_rows"] = np.arange(4000) >= 3000
    frame.loc[:2999, "score"] = frame.loc[:2999, "is_fraud"].astype(float)  # "memorised"
    stats = build_reference(frame, COLUMNS, reference_id="holdout")
    assert stats.performance is not None and stats.performance.rows == 1000
    assert stats.performance.roc_auc is not None and stats.performance.roc_auc < 0.99
    assert stats.performance.roc_auc_variance is not None
