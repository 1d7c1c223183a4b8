"""The prediction log: parquet round trip, spilling, replay, overflow, never blocking,
and the files of an older version (without the columns added since) still read."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import SecretStr

from mlops.errors import ConfigError
from mlops.settings import FeastSettings, Profile, ServingSettings, Settings
from serving.prediction_log import (
    PREDICTION_COLUMNS,
    FeedbackRecord,
    ParquetSink,
    PredictionLog,
    PredictionRecord,
    RecordKind,
    open_prediction_log,
    postgres_conninfo,
    prediction_log_url,
    read_feedback,
    read_predictions,
)
from serving.prediction_log.records import to_table
from serving.prediction_log.spill import SpillDir
from tests.polling import wait_for

T0 = datetime(2024, 5, 1, 23, 59, 0, tzinfo=UTC)


def prediction(
    i: int,
    *,
    request: str = "req",
    model: str = "card_fraud",
    ts: datetime | None = None,
    features: dict[str, object] | None = None,
) -> PredictionRecord:
    p1 = (i % 10) / 10
    return PredictionRecord(
        prediction_id=f"{request}-{i}",
        request_id=request,
        model_name=model,
        model_version="3",
        variant="champion" if i % 2 else "challenger",
        shadow=i % 5 == 0,
        entity=f"card-{i}",
        features=features if features is not None else {"amount": float(i), "country": "FR"},
        probabilities=(1 - p1, p1),
        prediction=str(int(p1 >= 0.5)),
        latency_ms=1.5,
        status="ok",
        error=None,
        ts=ts or T0 + timedelta(seconds=i),
    )


def predictions(n: int, *, request: str = "req", **kwargs: object) -> list[PredictionRecord]:
    return [prediction(i, request=request, **kwargs) for i in range(n)]  # type: ignore[arg-type]


class FakeSink:
    """Records what it receives; can fail a number of times or block on an Event."""

    def __init__(self, *, fail_times: int = 0, gate: threading.Event | None = None) -> None:
        self.fail_times = fail_times
        self.gate = gate
        self.in_write = threading.Event()
        self.calls = 0
        self.failures = 0
        self.rows: dict[RecordKind, list[str]] = {"predictions": [], "feedback": []}
        self.closed = False

    def write(self, kind: RecordKind, table: pa.Table) -> None:
        self.calls += 1
        self.in_write.set()
        if self.gate is not None:
            assert self.gate.wait(30), "test gate never opened"
        if self.failures < self.fail_times:
            self.failures += 1
            raise ConnectionError("sink down")
        self.rows[kind].extend(table.column("prediction_id").to_pylist())

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / "spill"


@pytest.fixture
def make_log(spill_dir: Path) -> Iterator[Callable[..., PredictionLog]]:
    logs: list[PredictionLog] = []

    def make(sink: FakeSink | ParquetSink, **kwargs: object) -> PredictionLog:
        options: dict[str, object] = {
            "flush_interval_s": 0.01,
            "retry_initial_s": 0.01,
            "retry_max_s": 0.05,
        }
        options.update(kwargs)
        log = PredictionLog(sink, spill_dir, **options)  # type: ignore[arg-type]
        logs.append(log)
        return log

    yield make
    for log in logs:
        if log._writer is not None:
            # Release any gated sink so close() cannot hang.
            sink = log._sink
            if isinstance(sink, FakeSink) and sink.gate is not None:
                sink.gate.set()
        log.close(timeout=5)


@pytest.fixture
def fast_settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "state",
        serving=ServingSettings(log_flush_interval_s=0.01),
        _env_file=None,  # type: ignore[call-arg]
    )


# --- parquet round trip -----------------------------------------------------------------


def test_parquet_round_trip_through_readers(fast_settings: Settings) -> None:
    rows = predictions(6) + [
        # 00:00:40 on the next UTC day: another partition
        prediction(100, model="other", features={"amount": 9.0, "ts": "collides", "extra": 1}),
        prediction(101, ts=T0 + timedelta(days=1)),
    ]
    with open_prediction_log(fast_settings) as log:
        log.submit(rows[:3])
        log.submit(rows[3:])
        log.submit_feedback(
            [
                FeedbackRecord("req-1", "0", T0 + timedelta(minutes=5)),
                FeedbackRecord("req-1", "1", T0 + timedelta(minutes=6)),  # corrected
                FeedbackRecord("req-2", "0", T0 + timedelta(minutes=5)),
            ]
        )
        log.flush(timeout=10)
        stats = log.stats()
    assert stats["written"] == 8 + 3
    assert stats["spilled"] == 0 and stats["queued"] == 0 and stats["spill_files"] == 0

    days = sorted(p.name for p in (fast_settings.predictions_dir / "predictions").iterdir())
    assert days == ["date=2024-05-01", "date=2024-05-02"]
    assert (fast_settings.predictions_dir / "feedback").is_dir()

    frame = read_predictions(fast_settings)
    assert len(frame) == 8
    assert list(frame.columns[: len(PREDICTION_COLUMNS)]) == list(PREDICTION_COLUMNS)
    assert set(frame.columns) >= {"amount", "country", "extra", "feature_ts"}
    assert frame["prediction_id"].is_unique
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert frame["ts"].is_monotonic_increasing
    first = frame.set_index("prediction_id").loc["req-3"]
    assert first["probabilities"] == pytest.approx([0.7, 0.3])
    assert first["score"] == pytest.approx(0.3)
    assert first["amount"] == 3.0 and first["country"] == "FR"
    assert math.isnan(first["extra"])
    assert frame.set_index("prediction_id").loc["req-100", "feature_ts"] == "collides"
    assert bool(frame.set_index("prediction_id").loc["req-0", "shadow"]) is True

    only_other = read_predictions(fast_settings, model_name="other")
    assert list(only_other["prediction_id"]) == ["req-100"]
    window = read_predictions(
        fast_settings, since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4)
    )
    assert list(window["prediction_id"]) == ["req-2", "req-3"]
    next_day = read_predictions(fast_settings, since=T0 + timedelta(hours=1))
    assert list(next_day["prediction_id"]) == ["req-101"]

    feedback = read_feedback(fast_settings)
    assert list(feedback.columns) == ["prediction_id", "label", "ts"]
    assert dict(zip(feedback["prediction_id"], feedback["label"], strict=True)) == {
        "req-1": "1",
        "req-2": "0",
    }
    late = read_feedback(fast_settings, since=T0 + timedelta(minutes=5, seconds=30))
    assert list(late["prediction_id"]) == ["req-1"]


def test_files_written_before_the_pinned_column_read_as_routed(
    fast_settings: Settings, make_log: Callable[..., PredictionLog], spill_dir: Path
) -> None:
    """Part files and spill files of a version before `pinned` lack the column: every
    row was routed then. Rows of a pinned version read back pinned."""
    sink = ParquetSink(fast_settings.predictions_dir)
    older, _ = to_table("predictions", predictions(3, request="old"))
    sink.write("predictions", older.drop_columns(["pinned"]))
    spilled, _ = to_table("predictions", predictions(2, request="spilled"))
    SpillDir(spill_dir).write("predictions", spilled.drop_columns(["pinned"]))
    log = make_log(sink)
    log.start()  # replays the older spill file
    log.submit([replace(row, pinned=True) for row in predictions(2, request="pinned")])
    log.flush(timeout=10)

    frame = read_predictions(fast_settings)
    assert dict(zip(frame["prediction_id"], frame["pinned"].tolist(), strict=True)) == {
        "old-0": False,
        "old-1": False,
        "old-2": False,
        "spilled-0": False,
        "spilled-1": False,
        "pinned-0": True,
        "pinned-1": True,
    }


def test_readers_on_an_empty_log(settings: Settings) -> None:
    frame = read_predictions(settings)
    assert list(frame.columns) == list(PREDICTION_COLUMNS) and frame.empty
    assert read_feedback(settings).empty


def test_parquet_sink_replay_does_not_duplicate(tmp_path: Path, settings: Settings) -> None:
    sink = ParquetSink(settings.predictions_dir)
    table, _ = to_table("predictions", predictions(5))
    sink.write("predictions", table)
    sink.write("predictions", table)  # a replay of a batch that had landed
    assert len(list(settings.predictions_dir.rglob("part-*.parquet"))) == 1
    assert len(read_predictions(settings)) == 5


# --- sink failures, spilling and replay -------------------------------------------------


def test_failing_sink_spills_then_flushes_with_exact_counts(
    make_log: Callable[..., PredictionLog], spill_dir: Path
) -> None:
    sink = FakeSink(fail_times=3)
    # A backoff long enough that the whole first pass happens inside it.
    log = make_log(sink, batch_rows=10, retry_initial_s=0.3, retry_max_s=0.3)
    rows = predictions(30)
    log.submit(rows)  # before start: the first pass sees all 30 rows
    log.submit_feedback([FeedbackRecord("req-1", "1", T0)])
    log.start()
    wait_for(lambda: log.stats()["spilled"] == 31, "31 rows spilled", 10)
    assert sink.rows["predictions"] == [] and log.stats()["sink_errors"] == 1
    log.flush(timeout=10)

    assert sorted(sink.rows["predictions"]) == sorted(r.prediction_id for r in rows)
    assert sink.rows["feedback"] == ["req-1"]
    stats = log.stats()
    assert stats["sink_errors"] == 3
    assert stats["spilled"] == 31  # the failed batch, then the rest while backing off
    assert stats["replayed"] == 31
    assert stats["written"] == 31
    assert stats["submitted"] == 30 and stats["feedback_submitted"] == 1
    assert stats["queued"] == stats["in_flight"] == stats["spill_files"] == 0
    assert SpillDir(spill_dir).files() == []


def test_rows_stay_spilled_when_closed_with_sink_down_and_land_on_next_start(
    make_log: Callable[..., PredictionLog], spill_dir: Path, fast_settings: Settings
) -> None:
    down = FakeSink(fail_times=10**9)
    first = make_log(down, batch_rows=7)
    first.start()
    first.submit(predictions(20))
    first.submit_feedback([FeedbackRecord("req-3", "1", T0)])
    first.close(timeout=0.2)  # cannot flush: rows go to the spill directory
    assert first.stats()["spilled"] == 21
    assert len(SpillDir(spill_dir).files()) >= 2

    # "The next process": a fresh log on the real parquet sink, same spill dir.
    second = make_log(ParquetSink(fast_settings.predictions_dir))
    second.start()
    second.flush(timeout=10)
    assert second.stats()["replayed"] == 21
    assert SpillDir(spill_dir).files() == []
    frame = read_predictions(fast_settings)
    assert sorted(frame["prediction_id"]) == sorted(f"req-{i}" for i in range(20))
    assert list(read_feedback(fast_settings)["prediction_id"]) == ["req-3"]


def test_leftover_spill_files_are_replayed_on_start(
    make_log: Callable[..., PredictionLog], spill_dir: Path
) -> None:
    spill = SpillDir(spill_dir)
    old, _ = to_table("predictions", predictions(4, request="old"))
    spill.write("predictions", old)
    labels, _ = to_table("feedback", [FeedbackRecord("old-1", "1", T0)])
    spill.write("feedback", labels)
    (spill_dir / ".half-written.parquet.abcd.tmp").write_bytes(b"crash")  # ignored
    (spill_dir / "00000000000000000001-1-x.predictions.parquet").write_bytes(b"junk")

    sink = FakeSink()
    log = make_log(sink)
    log.start()  # no submit at all: the first pass replays
    log.flush(timeout=10)
    assert sorted(sink.rows["predictions"]) == [f"old-{i}" for i in range(4)]
    assert sink.rows["feedback"] == ["old-1"]
    assert log.stats()["replayed"] == 5
    assert spill.files() == []
    assert (spill_dir / "corrupt" / "00000000000000000001-1-x.predictions.parquet").exists()


def test_spill_file_claimed_by_another_holder_is_skipped(spill_dir: Path) -> None:
    spill = SpillDir(spill_dir)
    table, _ = to_table("predictions", predictions(2))
    path = spill.write("predictions", table)
    with spill.claim(path) as mine:
        assert mine
        with spill.claim(path) as theirs:  # another open file description: refused
            assert not theirs
    path.unlink()
    with spill.claim(path) as gone:
        assert not gone


# --- never blocking the caller ----------------------------------------------------------


def test_submit_returns_while_the_sink_write_is_blocked(
    make_log: Callable[..., PredictionLog],
) -> None:
    gate = threading.Event()
    sink = FakeSink(gate=gate)
    log = make_log(sink, batch_rows=5, buffer_rows=1000)
    log.start()
    log.submit(predictions(5, request="a"))
    assert sink.in_write.wait(10)  # the writer is now stuck inside the sink

    submitter = threading.Thread(target=log.submit, args=(predictions(50, request="b"),))
    submitter.start()
    submitter.join(10)
    assert not submitter.is_alive(), "submit waited for the sink"
    assert not gate.is_set()  # ...and it returned while the sink write was still blocked
    assert log.stats()["queued"] == 50

    gate.set()
    log.flush(timeout=10)
    assert len(sink.rows["predictions"]) == 55
    assert log.stats()["spilled"] == 0


def test_buffer_overflow_spills_and_nothing_is_lost(
    make_log: Callable[..., PredictionLog], spill_dir: Path
) -> None:
    gate = threading.Event()
    sink = FakeSink(gate=gate)
    log = make_log(sink, batch_rows=5, buffer_rows=10)
    log.start()
    log.submit(predictions(5, request="first"))
    assert sink.in_write.wait(10)

    for chunk in range(10):  # 100 more rows while the sink is stuck
        log.submit(predictions(10, request=f"c{chunk}"))
    wait_for(lambda: log.stats()["overflowed"] >= 90, "90 rows overflowed", 10)
    assert not gate.is_set()
    stats = log.stats()
    assert stats["queued"] <= 10
    assert stats["spill_files"] >= 1
    assert sink.rows["predictions"] == []  # nothing landed yet: it all went to disk

    gate.set()
    log.flush(timeout=10)
    landed = sink.rows["predictions"]
    assert len(landed) == 105 and len(set(landed)) == 105
    stats = log.stats()
    assert stats["written"] == 105
    assert stats["replayed"] == stats["spilled"] == stats["overflowed"]
    assert SpillDir(spill_dir).files() == []


# --- odds and ends ----------------------------------------------------------------------


def test_malformed_record_costs_only_itself(make_log: Callable[..., PredictionLog]) -> None:
    sink = FakeSink()
    log = make_log(sink)
    bad = PredictionRecord(**{**_fields(prediction(99)), "probabilities": ("x",)})  # type: ignore[arg-type]
    log.submit([prediction(1), bad, prediction(2)])
    log.start()
    log.flush(timeout=10)
    assert sorted(sink.rows["predictions"]) == ["req-1", "req-2"]
    assert log.stats()["rejected"] == 1


def _fields(record: PredictionRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in PredictionRecord.__slots__}


def test_close_without_start_keeps_rows_and_refuses_new_ones(
    make_log: Callable[..., PredictionLog], spill_dir: Path
) -> None:
    sink = FakeSink()
    log = make_log(sink)
    log.submit(predictions(3))
    with pytest.raises(RuntimeError, match="not started"):
        log.flush()
    log.close()
    assert sink.closed
    assert sum(SpillDir.read("predictions", p).num_rows for p in SpillDir(spill_dir).files()) == 3
    with pytest.raises(RuntimeError, match="closed"):
        log.submit(predictions(1))


def test_log_backend_follows_settings(tmp_path: Path) -> None:
    embedded = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert prediction_log_url(embedded) is None
    explicit = Settings(
        home=tmp_path,
        serving=ServingSettings(prediction_log_url="postgresql+psycopg://u@h/db"),
        _env_file=None,  # type: ignore[call-arg]
    )
    assert prediction_log_url(explicit) == "postgresql+psycopg://u@h/db"
    production = Settings(
        home=tmp_path,
        profile=Profile.PRODUCTION,
        database_url="postgresql://u@h/prod",
        tracking_uri="http://mlflow:5000",
        optuna_storage="postgresql://u@h/optuna",
        feast=FeastSettings(online_store="redis"),
        admin_token=SecretStr("not-the-default"),
        _env_file=None,  # type: ignore[call-arg]
    )
    assert prediction_log_url(production) == "postgresql://u@h/prod"


def test_postgres_urls_accepted_and_others_refused() -> None:
    assert postgres_conninfo("postgresql+psycopg://u@h:5/db") == "postgresql://u@h:5/db"
    assert postgres_conninfo("postgres://u@h/db") == "postgresql://u@h/db"
    assert postgres_conninfo("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(ConfigError, match="needs a postgresql:// URL"):
        postgres_conninfo("sqlite:///x.db")
