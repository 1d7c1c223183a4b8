"""The prediction log on a real PostgreSQL: no row lost across a database restart.

The outage test runs its own throwaway cluster (tests/pg_cluster.py) because it
stops the server mid-load; the round-trip test uses the shared server through the
`postgres_url` fixture. Both skip when PostgreSQL cannot be had on a developer
machine and fail when `CI=true`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import pandas as pd
import psycopg
import pytest

from mlops.settings import ServingSettings, Settings
from serving.prediction_log import (
    POSTGRES_DDL,
    FeedbackRecord,
    PostgresSink,
    PredictionLog,
    PredictionRecord,
    open_prediction_log,
    read_feedback,
    read_predictions,
)
from serving.prediction_log.records import to_table
from tests.pg_cluster import ClusterUnavailable, PrivateCluster
from tests.polling import wait_for

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _unavailable(what: str, reason: object) -> NoReturn:
    message = f"{what} is unavailable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: services are required, not skipped)")
    pytest.skip(message)


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster this test may stop and start; removed afterwards."""
    try:
        cluster = PrivateCluster.create()
    except ClusterUnavailable as exc:
        _unavailable("a private PostgreSQL cluster (initdb/pg_ctl)", exc)
    try:
        yield cluster
    finally:
        cluster.destroy()


def record(i: int, *, request: str = "load", model: str = "card_fraud") -> PredictionRecord:
    p1 = (i % 100) / 100
    return PredictionRecord(
        prediction_id=f"{request}-{i}",
        request_id=request,
        model_name=model,
        model_version="7",
        variant="challenger" if i % 4 == 0 else "champion",
        shadow=False,
        entity=None if i % 3 == 0 else f"card-{i}",
        features={"amount": i * 1.5, "merchant": f"m{i % 7}", "night": i % 2 == 0},
        probabilities=(1 - p1, p1),
        prediction=str(int(p1 >= 0.5)),
        latency_ms=0.8,
        status="ok",
        error=None,
        ts=T0 + timedelta(milliseconds=i),
    )


def test_no_row_lost_when_the_database_stops_and_starts_mid_load(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    url = cluster.url.replace("postgresql://", "postgresql+psycopg://")
    log = PredictionLog(
        PostgresSink(url, connect_timeout=2),
        tmp_path / "spill",
        buffer_rows=2_000,
        batch_rows=100,
        flush_interval_s=0.02,
        retry_initial_s=0.05,
        retry_max_s=0.3,
    )
    log.start()
    produced: list[str] = []
    labelled: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            batch = [record(n) for n in range(i, i + 10)]
            log.submit(batch)
            produced.extend(r.prediction_id for r in batch)
            if i % 50 == 0:
                label = FeedbackRecord(batch[0].prediction_id, "1", batch[0].ts)
                log.submit_feedback([label])
                labelled.append(label.prediction_id)
            i += 10
            stop.wait(0.002)

    producer = threading.Thread(target=produce, name="producer")
    producer.start()
    try:
        wait_for(lambda: log.stats()["written"] >= 300, "rows landing before the outage")
        cluster.stop("fast")
        down_at = len(produced)
        wait_for(
            lambda: log.stats()["sink_errors"] >= 1 and len(produced) >= down_at + 500,
            "the load to go on while the database is down",
        )
        wait_for(lambda: log.stats()["spilled"] >= 300, "rows spilled during the outage")
        cluster.start()
        up_at = len(produced)
        wait_for(lambda: log.stats()["replayed"] >= 1, "spill files replayed after the restart")
        wait_for(lambda: len(produced) >= up_at + 500, "load after the restart")
    finally:
        stop.set()
        producer.join(10)
    log.flush(timeout=60)
    stats = log.stats()
    log.close()

    with psycopg.connect(cluster.url) as conn:
        rows = conn.execute("SELECT prediction_id FROM prediction_log").fetchall()
        labels = conn.execute("SELECT prediction_id FROM prediction_feedback").fetchall()
    stored = [row[0] for row in rows]
    assert len(stored) == len(produced), "rows lost or duplicated"
    assert set(stored) == set(produced)
    assert sorted(row[0] for row in labels) == sorted(labelled)
    assert stats["submitted"] == len(produced)
    assert stats["written"] == len(produced) + len(labelled)
    assert stats["sink_errors"] >= 1
    assert stats["spilled"] > 0 and stats["replayed"] == stats["spilled"]
    assert stats["queued"] == stats["in_flight"] == stats["spill_files"] == 0


def on_server(postgres_url: str, tmp_path: Path) -> Settings:
    """Settings whose prediction log is the database of `postgres_url`."""
    return Settings(
        home=tmp_path / "state",
        serving=ServingSettings(
            prediction_log_url=postgres_url.replace("postgresql://", "postgresql+psycopg://"),
            log_flush_interval_s=0.01,
        ),
        _env_file=None,  # type: ignore[call-arg]
    )


def test_round_trip_on_the_shared_server(postgres_url: str, tmp_path: Path) -> None:
    settings = on_server(postgres_url, tmp_path)
    rows = [record(i, request="rt") for i in range(20)] + [record(100, request="rt", model="other")]
    with open_prediction_log(settings) as log:
        log.submit(rows)
        log.submit_feedback(
            [
                FeedbackRecord("rt-1", "0", T0 + timedelta(minutes=1)),
                FeedbackRecord("rt-1", "1", T0 + timedelta(minutes=2)),  # corrected
                FeedbackRecord("rt-2", "1", T0 + timedelta(minutes=1)),
            ]
        )
        log.flush(timeout=20)
        # A late, older label must not override the newer one.
        log.submit_feedback([FeedbackRecord("rt-1", "0", T0 + timedelta(seconds=30))])
        log.flush(timeout=20)
    assert not settings.predictions_dir.exists(), "the PostgreSQL profile wrote parquet"

    # Replaying a batch that already landed changes nothing (idempotent sink).
    sink = PostgresSink(postgres_url)
    table, _ = to_table("predictions", rows[:5])
    sink.write("predictions", table)
    sink.close()

    frame = read_predictions(settings)
    assert len(frame) == 21 and frame["prediction_id"].is_unique
    assert frame["ts"].is_monotonic_increasing
    row = frame.set_index("prediction_id").loc["rt-3"]
    assert row["amount"] == pytest.approx(4.5) and row["merchant"] == "m3"
    assert not row["night"]
    assert row["probabilities"] == pytest.approx([0.97, 0.03])
    assert row["score"] == pytest.approx(0.03)
    assert pd.isna(row["entity"])  # i % 3 == 0: stored as NULL

    assert list(read_predictions(settings, model_name="other")["prediction_id"]) == ["rt-100"]
    window = read_predictions(
        settings, since=T0 + timedelta(milliseconds=5), until=T0 + timedelta(milliseconds=8)
    )
    assert list(window["prediction_id"]) == ["rt-5", "rt-6", "rt-7"]

    feedback = read_feedback(settings)
    assert dict(zip(feedback["prediction_id"], feedback["label"], strict=True)) == {
        "rt-1": "1",
        "rt-2": "1",
    }
    assert list(read_feedback(settings, since=T0 + timedelta(seconds=90))["prediction_id"]) == [
        "rt-1"
    ]

    with psycopg.connect(postgres_url) as conn:
        amount = conn.execute(
            "SELECT features->>'amount', probabilities FROM prediction_log "
            "WHERE prediction_id = 'rt-3'"
        ).fetchone()
    assert amount == ("4.5", [0.97, 0.03])


OLDER_INSERT = (
    "INSERT INTO prediction_log (prediction_id, request_id, model_name, model_version, "
    "variant, shadow, features, probabilities, prediction, latency_ms, status, ts) "
    "VALUES (%s, 'old', 'card_fraud', '7', 'champion', false, '{}', '{0.9,0.1}', '0', 1.0, "
    "'ok', %s)"
)
"""An insert of the version before `pinned`, which names only the columns it knew."""


def test_a_table_of_an_older_version_gains_the_pinned_column(
    postgres_url: str, tmp_path: Path
) -> None:
    """Its rows were all routed and read so, before and after the new writer adds the
    column; an older writer beside the new one still inserts (the column's default)."""
    pinned_column = "    pinned         boolean NOT NULL DEFAULT false,\n"
    assert pinned_column in POSTGRES_DDL
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(POSTGRES_DDL.replace(pinned_column, ""))
        conn.execute(OLDER_INSERT, ("old-1", T0))
    settings = on_server(postgres_url, tmp_path)
    assert read_predictions(settings)["pinned"].tolist() == [False]

    with open_prediction_log(settings) as log:
        log.submit([replace(record(1, request="new"), pinned=True), record(2, request="new")])
        log.flush(timeout=20)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(OLDER_INSERT, ("old-2", T0 + timedelta(seconds=1)))

    frame = read_predictions(settings)
    assert dict(zip(frame["prediction_id"], frame["pinned"].tolist(), strict=True)) == {
        "old-1": False,
        "old-2": False,
        "new-1": True,
        "new-2": False,
    }
