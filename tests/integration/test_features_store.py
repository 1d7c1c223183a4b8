"""The feature stage against real Feast stores: SQLite, Redis and PostgreSQL online,
duckdb over parquet offline.

Every test uses its own Feast project and state directory and tears the project down
afterwards; the Redis tests check that no key of the project is left behind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from feast.feature_view import FeatureViewState

from mlops.dataset_spec import DatasetSpec, FeatureSchema, Task
from mlops.errors import FeatureStoreError
from mlops.features.offline import (
    TIMESTAMP_TYPE,
    batch_files,
    labels_dir,
    offline_dir,
    write_offline_batch,
)
from mlops.features.store import (
    apply_and_materialize,
    feature_store,
    read_online_features,
    teardown_store,
)
from mlops.features.training import build_training_set
from mlops.settings import Settings
from tests.conftest import REDIS_HOST, REDIS_PORT

T0 = datetime(2024, 3, 1, tzinfo=UTC)  # far older than now - ttl: the first run must still see it
H = timedelta(hours=1)
D = timedelta(days=1)

CARDS = DatasetSpec(
    name="cards",
    entity="card_id",
    timestamp="event_timestamp",
    label="is_fraud",
    task=Task.BINARY,
)
SENSORS = DatasetSpec(
    name="sensor_faults",
    entity="device",
    timestamp="observed_at",
    label="fault_class",
    task=Task.MULTICLASS,
    categorical=("site",),
    features=("temp", "rpm", "site"),
)


def with_feast(settings: Settings, **feast: object) -> Settings:
    """The test's settings with other Feast settings (project, online store, ttl)."""
    return settings.model_copy(update={"feast": settings.feast.model_copy(update=feast)})


@pytest.fixture
def store_settings(settings: Settings, run_id: str) -> Iterator[Settings]:
    """SQLite online store in the tmp state dir, a project of its own, torn down after."""
    configured = with_feast(settings, project=f"t{run_id}")
    yield configured
    teardown_store(configured)


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def online_settings(
    request: pytest.FixtureRequest, settings: Settings, run_id: str
) -> Iterator[Settings]:
    """Settings on each online store; the Redis variant proves it leaves no key behind."""
    project = f"t{run_id}"
    kind = request.param
    configured = with_feast(settings, project=project, online_store=kind)
    if kind == "redis":
        db = request.getfixturevalue("redis_db")
        configured = with_feast(configured, redis_connection=f"{REDIS_HOST}:{REDIS_PORT},db={db}")
    elif kind == "postgres":
        url = request.getfixturevalue("postgres_url")
        configured = configured.model_copy(update={"database_url": url})
    yield configured
    if kind != "redis":
        teardown_store(configured)
        return
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
    pattern = f"*{project}".encode()
    try:
        written = list(client.scan_iter(match=pattern))
        teardown_store(configured)
        left = list(client.scan_iter(match=pattern))
    finally:
        client.close()
    assert written, f"the test wrote no Redis key of project {project}"
    assert left == [], f"{len(left)} Redis keys of project {project} left behind"


def card_frame(rows: list[tuple[object, datetime, float, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["card_id", "event_timestamp", "amount", "merchant", "is_fraud"]
    )


def cards_schema() -> FeatureSchema:
    return FeatureSchema(numeric=("amount",), categorical=("merchant",))


def replace_labels(spec: DatasetSpec, settings: Settings, batch: str, rows: pd.DataFrame) -> None:
    """Stand-in for labels that arrive apart from their features (the entity frame)."""
    table = pa.table(
        {
            spec.entity: pa.array(rows[spec.entity]),
            spec.timestamp: pa.array(rows[spec.timestamp], TIMESTAMP_TYPE),
            spec.label: pa.array(rows[spec.label], pa.int64()),
        }
    )
    pq.write_table(table, labels_dir(spec, settings) / f"{batch}.parquet")


def offline_rows(spec: DatasetSpec, settings: Settings) -> int:
    return sum(pq.read_metadata(f).num_rows for f in batch_files(offline_dir(spec, settings)))


def test_point_in_time_join_never_leaks_later_values(store_settings: Settings) -> None:
    features = card_frame(
        [
            ("a", T0, 1.0, "m1", 0),
            ("a", T0 + 2 * D, 3.0, "m3", 1),
            ("b", T0 + D, 5.0, "m5", 0),
        ]
    )
    write_offline_batch(CARDS, cards_schema(), features, "pit", store_settings)
    labels = pd.DataFrame(
        {
            "card_id": ["a", "a", "b", "b", "a"],
            "event_timestamp": [T0 + D, T0 + 3 * D, T0, T0 + D, T0 + 2 * D - H],
            "is_fraud": [0, 1, 0, 1, 0],
        }
    )
    replace_labels(CARDS, store_settings, "pit", labels)
    apply_and_materialize(CARDS, cards_schema(), store_settings, until=T0 + 3 * D)

    ref = build_training_set(CARDS, cards_schema(), store_settings)
    out = pd.read_parquet(ref.uri)

    assert ref.rows == len(out) == 5
    by_key = out.set_index(["card_id", "event_timestamp"])
    assert by_key.loc[("a", T0 + D), "amount"] == 1.0  # the T0 value, not the later 3.0
    assert by_key.loc[("a", T0 + 2 * D - H), "merchant"] == "m1"  # an hour before the change
    assert by_key.loc[("a", T0 + 3 * D), "amount"] == 3.0
    assert np.isnan(by_key.loc[("b", T0), "amount"])  # b's only value is stamped later
    assert by_key.loc[("b", T0 + D), "amount"] == 5.0  # stamped exactly at the row: included


@pytest.mark.parametrize("ids", [["c1", "c2", "c3"], [101, 202, 303]], ids=["str-ids", "int-ids"])
def test_training_set_keeps_every_row_in_entity_order(
    store_settings: Settings, ids: list[object]
) -> None:
    settings = with_feast(store_settings, ttl_days=30)
    rng = np.random.default_rng(7)
    minutes = rng.choice(20_000, size=300, replace=False)  # unique stamps: no ambiguous ties
    stamps = [T0 + timedelta(minutes=int(m)) for m in minutes]
    frame = card_frame(
        [
            (ids[i % 3], stamp, float(i), f"m{i % 5}", int(i % 7 == 0))
            for i, stamp in enumerate(stamps)
        ]
    )
    duplicate = frame.iloc[[0, 0]]  # the same entity row twice: both must survive
    frame = pd.concat([frame, duplicate], ignore_index=True)
    write_offline_batch(CARDS, cards_schema(), frame, "batch1", settings)
    labels = pd.read_parquet(labels_dir(CARDS, settings) / "batch1.parquet")
    old = pd.DataFrame(  # an entity whose only feature row is older than the ttl
        {"card_id": [ids[0]], "event_timestamp": [T0 + 200 * D], "is_fraud": [1]}
    )
    replace_labels(CARDS, settings, "batch1", pd.concat([labels, old], ignore_index=True))
    apply_and_materialize(CARDS, cards_schema(), settings, until=T0 + 200 * D)

    ref = build_training_set(CARDS, cards_schema(), settings)
    out = pd.read_parquet(ref.uri)

    assert ref.rows == len(out) == len(frame) + 1
    assert out["event_timestamp"].is_monotonic_increasing
    assert list(out.columns) == ["card_id", "event_timestamp", "amount", "merchant", "is_fraud"]
    is_int = pd.api.types.is_integer_dtype(out["card_id"])
    assert is_int == isinstance(ids[0], int)
    assert np.isnan(out.iloc[-1]["amount"])  # past the ttl: no feature, but the row is kept
    body = out.iloc[:-1]
    own = frame.drop_duplicates().set_index(["card_id", "event_timestamp"])["amount"]
    expected = own.loc[list(zip(body["card_id"], body["event_timestamp"], strict=True))]
    np.testing.assert_array_equal(body["amount"].to_numpy(), expected.to_numpy())
    assert ref.label_counts == {
        str(k): int(v) for k, v in out["is_fraud"].value_counts().sort_index().items()
    }


def test_other_column_names_and_multiclass_label(store_settings: Settings) -> None:
    rng = np.random.default_rng(3)
    n = 240
    frame = pd.DataFrame(
        {
            "device": rng.integers(1, 40, size=n),
            "observed_at": [T0 + timedelta(minutes=5 * i) for i in range(n)],
            "temp": rng.normal(60, 5, size=n),
            "rpm": rng.integers(500, 3000, size=n),  # integers become Float64 features
            "site": rng.choice(["north", "south", "east"], size=n),
            "fault_class": rng.choice(["ok", "overheat", "vibration"], size=n),
        }
    )
    schema = SENSORS.resolve_schema(frame)
    write_offline_batch(SENSORS, schema, frame, "sensors1", store_settings)
    ref_fs = apply_and_materialize(SENSORS, schema, store_settings, until=T0 + 2 * D)
    ref = build_training_set(SENSORS, schema, store_settings)
    out = pd.read_parquet(ref.uri)

    assert ref_fs.feature_service == "sensor_faults_v1"
    assert ref_fs.feature_view == "sensor_faults_fv"
    assert ref.rows == len(out) == n
    assert ref.label_counts == frame["fault_class"].value_counts().sort_index().to_dict()
    assert list(out.columns) == ["device", "observed_at", "temp", "rpm", "site", "fault_class"]
    np.testing.assert_allclose(out["rpm"], frame["rpm"].astype(float))  # own row, same order
    assert (out["fault_class"].to_numpy() == frame["fault_class"].to_numpy()).all()

    online = read_online_features(SENSORS, schema, store_settings, [int(frame["device"].iloc[-1])])
    assert online["temp"].iloc[0] == pytest.approx(frame["temp"].iloc[-1])


def test_same_batch_twice_is_a_no_op(store_settings: Settings) -> None:
    frame = card_frame([("a", T0 + i * H, float(i), "m", 0) for i in range(24)])
    schema = cards_schema()
    first = write_offline_batch(CARDS, schema, frame, "same", store_settings)
    apply_and_materialize(CARDS, schema, store_settings, until=T0 + D)
    ref1 = build_training_set(CARDS, schema, store_settings)

    second = write_offline_batch(CARDS, schema, frame, "same", store_settings)
    apply_and_materialize(CARDS, schema, store_settings, until=T0 + D)
    ref2 = build_training_set(CARDS, schema, store_settings)

    assert first == second
    assert len(batch_files(offline_dir(CARDS, store_settings))) == 1
    assert offline_rows(CARDS, store_settings) == 24
    assert ref1.rows == ref2.rows == 24
    assert ref1.sha256 == ref2.sha256  # same inputs, same content-addressed file
    assert read_online_features(CARDS, schema, store_settings, ["a"])["amount"].iloc[0] == 23.0


def test_online_store_serves_latest_values(online_settings: Settings) -> None:
    schema = cards_schema()
    frame = card_frame(
        [
            ("a", T0, 1.0, "first", 0),
            ("a", T0 + H, 2.0, "latest", 0),
            ("b", T0 + D, 7.0, "at-until", 1),  # stamped exactly at `until`
            ("c", T0 + 2 * D, 9.0, "after-until", 0),  # after `until`: not served yet
        ]
    )
    write_offline_batch(CARDS, schema, frame, "online", online_settings)
    ref = apply_and_materialize(CARDS, schema, online_settings, until=T0 + D)

    online = read_online_features(CARDS, schema, online_settings, ["a", "b", "c", "nobody"])

    assert ref.rows_written == 2
    assert ref.online_store == online_settings.feast.online_store
    assert list(online["card_id"]) == ["a", "b", "c", "nobody"]
    assert list(online["amount"].iloc[:2]) == [2.0, 7.0]
    assert list(online["merchant"].iloc[:2]) == ["latest", "at-until"]
    assert online["amount"].iloc[2:].isna().all()


def test_second_batch_extends_training_set_and_updates_online(store_settings: Settings) -> None:
    schema = cards_schema()
    batch1 = card_frame([(f"c{i}", T0 + i * H, float(i), "m", 0) for i in range(10)])
    batch2 = card_frame([(f"c{i}", T0 + D + i * H, 100.0 + i, "n", 1) for i in range(5)])
    write_offline_batch(CARDS, schema, batch1, "b1", store_settings)
    apply_and_materialize(CARDS, schema, store_settings, until=T0 + D - H)
    first = build_training_set(CARDS, schema, store_settings)

    write_offline_batch(CARDS, schema, batch2, "b2", store_settings)
    ref = apply_and_materialize(CARDS, schema, store_settings, until=T0 + 2 * D)
    second = build_training_set(CARDS, schema, store_settings)
    online = read_online_features(CARDS, schema, store_settings, ["c0", "c4", "c9"])

    assert (first.rows, second.rows) == (10, 15)
    assert ref.rows_written == 5  # incremental: only the window after the first run
    assert list(online["amount"]) == [100.0, 104.0, 9.0]
    window = build_training_set(CARDS, schema, store_settings, start=T0 + D)
    assert window.rows == 5 and window.label_counts == {"1": 5}

    # Late data: events older than the last materialized end, announced by `since`.
    late = card_frame([("c9", T0 + D + 12 * H, 999.0, "late", 0)])
    write_offline_batch(CARDS, schema, late, "b3", store_settings)
    apply_and_materialize(CARDS, schema, store_settings, until=T0 + 2 * D, since=T0 + D + 12 * H)
    assert read_online_features(CARDS, schema, store_settings, ["c9"])["amount"].iloc[0] == 999.0


def test_later_batch_wins_a_tie_on_entity_and_timestamp(store_settings: Settings) -> None:
    schema = cards_schema()
    write_offline_batch(CARDS, schema, card_frame([("a", T0, 1.0, "old", 0)]), "t1", store_settings)
    write_offline_batch(CARDS, schema, card_frame([("a", T0, 2.0, "new", 0)]), "t2", store_settings)
    apply_and_materialize(CARDS, schema, store_settings, until=T0)

    out = pd.read_parquet(build_training_set(CARDS, schema, store_settings).uri)

    assert list(out["amount"]) == [2.0, 2.0]
    assert read_online_features(CARDS, schema, store_settings, ["a"])["merchant"].iloc[0] == "new"


def test_a_batch_with_another_schema_is_refused(store_settings: Settings) -> None:
    write_offline_batch(
        CARDS, cards_schema(), card_frame([("a", T0, 1.0, "m", 0)]), "s1", store_settings
    )
    ints = card_frame([(7, T0, 1.0, "m", 0)])
    with pytest.raises(FeatureStoreError, match="schema differs"):
        write_offline_batch(CARDS, cards_schema(), ints, "s2", store_settings)
    assert not (offline_dir(CARDS, store_settings) / "s2.parquet").exists()


def test_training_set_without_definitions_is_a_clear_error(store_settings: Settings) -> None:
    write_offline_batch(
        CARDS, cards_schema(), card_frame([("a", T0, 1.0, "m", 0)]), "x", store_settings
    )
    with pytest.raises(FeatureStoreError, match="never applied"):
        build_training_set(CARDS, cards_schema(), store_settings)


def test_lost_rows_are_reported_with_both_counts() -> None:
    from mlops.features.training import ROW_NUMBER, _in_entity_order

    joined = pd.DataFrame({ROW_NUMBER: [0, 2], "amount": [1.0, 2.0], "merchant": ["a", "b"]})
    with pytest.raises(FeatureStoreError, match="returned 2 training rows for 3 entity rows"):
        _in_entity_order(joined, 3, cards_schema(), CARDS)


def test_state_stays_in_the_state_dir(store_settings: Settings, tmp_path: Path) -> None:
    write_offline_batch(
        CARDS, cards_schema(), card_frame([("a", T0, 1.0, "m", 0)]), "p", store_settings
    )
    ref = apply_and_materialize(CARDS, cards_schema(), store_settings, until=T0)
    training = build_training_set(CARDS, cards_schema(), store_settings)
    for path in (ref.offline_uri, training.uri):
        assert Path(path).is_relative_to(tmp_path)


def test_online_reads_go_on_while_a_materialization_runs(store_settings: Settings) -> None:
    schema = cards_schema()
    write_offline_batch(CARDS, schema, card_frame([("a", T0, 1.0, "m", 0)]), "m1", store_settings)
    apply_and_materialize(CARDS, schema, store_settings, until=T0)
    writer = feature_store(store_settings)  # another process, mid-materialization
    view = writer.get_feature_view("cards_fv")
    view.state = FeatureViewState.MATERIALIZING
    writer.registry.apply_feature_view(view, store_settings.feast.project, commit=True)

    online = read_online_features(CARDS, schema, store_settings, ["a"])

    assert online["amount"].iloc[0] == 1.0
    with sqlite3.connect(store_settings.feast_dir / "online.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
