"""`PredictionLog`: a bounded in-memory buffer, a writer thread and a spill directory.

Guarantees:

- `submit` / `submit_feedback` never wait for the sink or the disk: they append to a
  deque under a lock held for microseconds. No serialisation happens there.
- A row accepted by `submit` ends in the sink exactly once (the sinks are idempotent
  on replays), unless the process dies while the row is still in memory (at most one
  flush interval of rows, or `log_buffer_rows` while the sink is slow).
- The writer thread drains the buffer every `flush_interval_s`, or as soon as a
  batch (`batch_rows`) is full, and writes batches to the sink. A failed write puts
  the batch into the spill directory; the writer then backs off exponentially
  (`retry_initial_s` doubling up to `retry_max_s`): while backing off it spills
  without trying the sink, and when the backoff expires it replays spill files,
  oldest first, deleting each once the sink has it. Spill files left by an earlier
  process (or by another worker) are replayed the same way, from the first pass on.
- Overflow: when the buffer holds more than `buffer_rows` rows of a kind (the sink
  is slow, so the writer is stuck in a write), a separate overflow thread - which
  never talks to the sink - moves the oldest rows to the spill directory until half
  the bound is left. Nothing is dropped and the caller is never blocked: the bound is
  soft by the amount the overflow thread has not spilled yet.
- If even the spill directory cannot be written, the batch stays in memory
  (`queued`) and is retried on the next pass; `spill_errors` counts such failures.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from serving.prediction_log.records import (
    FeedbackRecord,
    PredictionRecord,
    RecordKind,
    to_table,
)
from serving.prediction_log.sinks import PredictionSink
from serving.prediction_log.spill import SpillDir

logger = logging.getLogger(__name__)

_FLUSH_POLL_S = 0.02


class PredictionLog:
    """Asynchronous, loss-free prediction and feedback log in front of one sink.

    Typical life: `log = open_prediction_log(settings); log.start()` at service start,
    `log.submit(records)` per request, `log.close()` at shutdown (flushes what it can
    and leaves the rest in the spill directory for the next process). Also a context
    manager that starts and closes it.
    """

    def __init__(
        self,
        sink: PredictionSink,
        spill_dir: Path,
        *,
        buffer_rows: int = 100_000,
        batch_rows: int | None = None,
        flush_interval_s: float = 1.0,
        retry_initial_s: float | None = None,
        retry_max_s: float = 30.0,
        replay_budget_s: float | None = None,
    ) -> None:
        if buffer_rows < 1:
            raise ValueError("buffer_rows must be at least 1")
        self._sink = sink
        self._spill = SpillDir(spill_dir)
        self._bound = buffer_rows
        self._batch_rows = max(1, min(batch_rows or 10_000, buffer_rows))
        self._interval = flush_interval_s
        self._retry_initial = retry_initial_s if retry_initial_s is not None else flush_interval_s
        self._retry_max = max(retry_max_s, self._retry_initial)
        self._replay_budget = (
            replay_budget_s if replay_budget_s is not None else max(flush_interval_s, 1.0)
        )

        self._lock = threading.Lock()
        self._writer_wake = threading.Condition(self._lock)
        self._overflow_wake = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._predictions: deque[PredictionRecord] = deque()
        self._feedback: deque[FeedbackRecord] = deque()
        self._unspilled: deque[tuple[RecordKind, pa.Table]] = deque()
        self._in_flight = 0
        self._flush_requested = False
        self._stopping = False
        self._closed = False
        self._writer: threading.Thread | None = None
        self._overflow: threading.Thread | None = None

        # Sink health, touched by the writer thread (and reset by flush).
        self._backoff = 0.0
        self._next_attempt = 0.0

        self._counts: dict[str, int] = {
            "submitted": 0,
            "feedback_submitted": 0,
            "written": 0,
            "spilled": 0,
            "overflowed": 0,
            "replayed": 0,
            "rejected": 0,
            "sink_errors": 0,
            "spill_errors": 0,
        }

    # --- the request path ------------------------------------------------------------

    def submit(self, records: Sequence[PredictionRecord]) -> None:
        """Queue scored rows; returns at once (never waits for the sink or the disk)."""
        if not records:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("the prediction log is closed")
            self._predictions.extend(records)
            self._counts["submitted"] += len(records)
            queued = len(self._predictions)
            if queued >= self._batch_rows:
                self._writer_wake.notify()
            if queued > self._bound:
                self._overflow_wake.notify()

    def submit_feedback(self, records: Sequence[FeedbackRecord]) -> None:
        """Queue late labels; same guarantees as `submit`."""
        if not records:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("the prediction log is closed")
            self._feedback.extend(records)
            self._counts["feedback_submitted"] += len(records)
            queued = len(self._feedback)
            if queued >= self._batch_rows:
                self._writer_wake.notify()
            if queued > self._bound:
                self._overflow_wake.notify()

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer and overflow threads (the first pass replays leftovers)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the prediction log is closed")
            if self._writer is not None:
                return
            self._writer = threading.Thread(
                target=self._writer_loop, name="prediction-log-writer", daemon=True
            )
            self._overflow = threading.Thread(
                target=self._overflow_loop, name="prediction-log-overflow", daemon=True
            )
        self._writer.start()
        self._overflow.start()
        atexit.register(self.close)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every row submitted so far is in the sink and no spill file is
        left; tries the sink at once even while backing off.

        Raises:
            TimeoutError: the sink did not take everything within `timeout` (the rows
                are safe: in memory or in the spill directory).
            RuntimeError: the log was never started, or its writer died.
        """
        writer = self._writer
        if writer is None:
            raise RuntimeError("the prediction log is not started")
        deadline = time.monotonic() + timeout
        with self._lock:
            self._next_attempt = 0.0
        while True:
            with self._lock:
                self._flush_requested = True
                self._writer_wake.notify()
                busy = self._queued_rows() > 0 or self._in_flight > 0
            # Counts first, files second: a row that left memory is in the sink or in
            # a file already renamed into place, so this listing sees it.
            if not busy and not self._spill.files():
                return
            if not writer.is_alive():
                raise RuntimeError("the prediction-log writer thread is not running")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"prediction log not flushed in {timeout} s: {self.stats()}")
            with self._lock:
                self._progress.wait(_FLUSH_POLL_S)

    def close(self, timeout: float = 10.0) -> None:
        """Flush (up to `timeout`), stop the threads; what the sink did not take stays
        in the spill directory for the next start (of this or another process)."""
        with self._lock:
            if self._closed:
                return
            started = self._writer is not None
        if started:
            atexit.unregister(self.close)
            try:
                self.flush(timeout)
            except (TimeoutError, RuntimeError) as exc:
                logger.warning("prediction log: closing unflushed, rows stay spilled: %s", exc)
        with self._lock:
            self._stopping = True
            self._writer_wake.notify_all()
            self._overflow_wake.notify_all()
        for thread in (self._writer, self._overflow):
            if thread is not None:
                thread.join(timeout)
        with self._lock:
            self._closed = True
        leftovers = self._take_all()
        for kind, table in leftovers:  # writer hung or never started: keep the rows
            self._spill_batch(kind, table)
        with self._lock:
            if self._in_flight:
                logger.error(
                    "prediction log: writer still busy at close, %d rows in flight",
                    self._in_flight,
                )
        self._sink.close()

    def __enter__(self) -> PredictionLog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Counters in rows (both kinds together unless named `feedback_*`).

        `queued` rows in memory, `in_flight` rows being written or spilled,
        `written` rows the sink took (directly or from a spill file), `spilled` rows
        put into spill files by this process (`overflowed` of them because the buffer
        was full), `replayed` rows from spill files (of any process) the sink took,
        `rejected` malformed records dropped, `sink_errors` / `spill_errors` failed
        writes, `spill_files` files waiting in the spill directory now.
        """
        with self._lock:
            counts = dict(self._counts)
            counts["queued"] = self._queued_rows()
            counts["in_flight"] = self._in_flight
        counts["spill_files"] = len(self._spill.files())
        return counts

    # --- internals (the lock guards deques, counters and flags) ----------------------

    def _queued_rows(self) -> int:
        return (
            len(self._predictions)
            + len(self._feedback)
            + sum(int(table.num_rows) for _, table in self._unspilled)
        )

    def _take_all(self) -> list[tuple[RecordKind, pa.Table]]:
        """Everything still in memory, as tables (only close() calls it, when the
        threads have stopped)."""
        with self._lock:
            batches: list[tuple[RecordKind, pa.Table]] = list(self._unspilled)
            self._unspilled.clear()
            predictions = list(self._predictions)
            self._predictions.clear()
            feedback = list(self._feedback)
            self._feedback.clear()
        if predictions:
            batches.append(self._convert("predictions", predictions))
        if feedback:
            batches.append(self._convert("feedback", feedback))
        return batches

    def _convert(
        self, kind: RecordKind, records: Sequence[PredictionRecord] | Sequence[FeedbackRecord]
    ) -> tuple[RecordKind, pa.Table]:
        """Records to a table, off the lock (malformed records are counted, dropped)."""
        table, rejected = to_table(kind, records)
        if rejected:
            with self._lock:
                self._counts["rejected"] += rejected
        return kind, table

    def _notify_progress(self) -> None:
        with self._lock:
            self._progress.notify_all()

    def _sink_ready(self) -> bool:
        return time.monotonic() >= self._next_attempt

    def _sink_failed(self, exc: BaseException, rows: int) -> None:
        self._backoff = (
            self._retry_initial if self._backoff == 0 else min(self._backoff * 2, self._retry_max)
        )
        self._next_attempt = time.monotonic() + self._backoff
        with self._lock:
            self._counts["sink_errors"] += 1
        logger.warning(
            "prediction log: sink write of %d rows failed (%s: %s); spilling, retry in %.2f s",
            rows,
            type(exc).__name__,
            exc,
            self._backoff,
        )

    def _sink_ok(self) -> None:
        if self._backoff:
            logger.info("prediction log: sink reachable again")
        self._backoff = 0.0
        self._next_attempt = 0.0

    def _spill_batch(self, kind: RecordKind, table: pa.Table, *, overflow: bool = False) -> None:
        """Into a spill file, or back into memory when even that fails."""
        try:
            self._spill.write(kind, table)
        except Exception as exc:
            logger.error("prediction log: cannot spill %d rows: %s", table.num_rows, exc)
            with self._lock:
                self._counts["spill_errors"] += 1
                self._unspilled.append((kind, table))
            return
        with self._lock:
            self._counts["spilled"] += table.num_rows
            if overflow:
                self._counts["overflowed"] += table.num_rows

    def _deliver(self, kind: RecordKind, table: pa.Table) -> None:
        """To the sink when it is not backing off, else (or on failure) to a spill file."""
        if table.num_rows == 0:
            return
        if self._sink_ready():
            try:
                self._sink.write(kind, table)
            except Exception as exc:
                self._sink_failed(exc, table.num_rows)
            else:
                self._sink_ok()
                with self._lock:
                    self._counts["written"] += table.num_rows
                return
        self._spill_batch(kind, table)

    def _drain_live(self) -> None:
        """Write what is in memory now, batch by batch (not what arrives meanwhile)."""
        with self._lock:
            budget: dict[str, int] = {
                "unspilled": len(self._unspilled),
                "predictions": len(self._predictions),
                "feedback": len(self._feedback),
            }
        while any(budget.values()):
            with self._lock:
                batch: tuple[RecordKind, pa.Table] | None = None
                records: list[Any] = []
                kind: RecordKind = "predictions"
                if budget["unspilled"] and self._unspilled:
                    budget["unspilled"] -= 1
                    batch = self._unspilled.popleft()
                    rows = batch[1].num_rows
                else:
                    budget["unspilled"] = 0
                    source: deque[Any]
                    if budget["predictions"] and self._predictions:
                        kind, source = "predictions", self._predictions
                    elif budget["feedback"] and self._feedback:
                        kind, source = "feedback", self._feedback
                    else:
                        return  # the overflow thread took the rest
                    take = min(self._batch_rows, budget[kind], len(source))
                    budget[kind] -= take
                    records = [source.popleft() for _ in range(take)]
                    rows = take
                self._in_flight += rows
            try:
                if batch is None:
                    batch = self._convert(kind, records)
                self._deliver(*batch)
            finally:
                with self._lock:
                    self._in_flight -= rows
                    self._progress.notify_all()

    def _replay_spill_files(self, deadline: float | None) -> bool:
        """Replay spill files oldest first while the sink takes them; True when the
        time budget ran out with files left."""
        for path in self._spill.files():
            if not self._sink_ready():
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return True
            kind = self._spill.kind_of(path)
            if kind is None:
                continue
            with self._spill.claim(path) as claimed:
                if not claimed:
                    continue
                try:
                    table = self._spill.read(kind, path)
                except Exception as exc:
                    self._spill.quarantine(path, exc)
                    continue
                try:
                    self._sink.write(kind, table)
                except Exception as exc:
                    self._sink_failed(exc, table.num_rows)
                    return False
                self._sink_ok()
                path.unlink(missing_ok=True)
                with self._lock:
                    self._counts["written"] += table.num_rows
                    self._counts["replayed"] += table.num_rows
                    self._progress.notify_all()
        return False

    def _writer_loop(self) -> None:
        next_pass = time.monotonic()  # the first pass at once: replays leftovers
        while True:
            with self._lock:
                while not self._stopping and not self._flush_requested:
                    now = time.monotonic()
                    if now >= next_pass:
                        break
                    if len(self._predictions) >= self._batch_rows:
                        break
                    if len(self._feedback) >= self._batch_rows:
                        break
                    self._writer_wake.wait(next_pass - now)
                stopping = self._stopping
                flushing = self._flush_requested
                self._flush_requested = False
            next_pass = time.monotonic() + self._interval
            try:
                self._drain_live()
                if stopping:
                    return
                deadline = None if flushing else time.monotonic() + self._replay_budget
                if self._replay_spill_files(deadline):
                    next_pass = time.monotonic()  # more files: go on after the live rows
            except Exception:
                logger.exception("prediction log: writer pass failed; retrying")
            finally:
                self._notify_progress()

    def _overflow_loop(self) -> None:
        keep = self._bound // 2
        while True:
            with self._lock:
                while (
                    not self._stopping
                    and len(self._predictions) <= self._bound
                    and len(self._feedback) <= self._bound
                ):
                    self._overflow_wake.wait()
                if self._stopping:
                    return
                kind: RecordKind
                source: deque[Any]
                if len(self._predictions) > self._bound:
                    kind, source = "predictions", self._predictions
                else:
                    kind, source = "feedback", self._feedback
                records: list[Any] = [source.popleft() for _ in range(len(source) - keep)]
                self._in_flight += len(records)
            try:
                self._spill_batch(*self._convert(kind, records), overflow=True)
            except Exception:
                logger.exception("prediction log: overflow spill failed")
            finally:
                with self._lock:
                    self._in_flight -= len(records)
                    self._progress.notify_all()
