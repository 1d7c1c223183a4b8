"""Micro-batching: rows of concurrent requests share one call (one forward pass, one lookup).

A small tabular network costs about the same for 1 row as for 32 (per-call overhead of
a few hundred microseconds dominates), so the service gathers the rows of requests
that arrive together and runs them in one call. The batcher is a pipeline rather than
a timer: while a call runs, new rows queue up, and the moment it ends they all go in
the next call. So under load batches grow by themselves, and an idle service answers
a lone request at once instead of waiting for company.

The bounded wait (`wait_s`, `settings.serving.batch_wait_ms`) is only spent while the
caller says more rows are on their way (`expecting()`: requests already accepted but
still reading their body or their online features), and ends as soon as they have all
been submitted; it never delays a lone request.
A batch holds at most `max_rows` rows, except a single submission larger than that,
which runs alone (the model chunks it internally).

Small calls (up to `inline_rows` rows: a fraction of a millisecond) run inline on the
event loop, where they cost less than two thread hand-offs, and measured tails were
shorter; larger ones run on `executor` (one thread per model), so a 10,000-row request
does not freeze the event loop for every other request while torch computes.

Results are handed back in submission order; if a combined call fails, each
submission is retried alone so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BatchObserver = Callable[[int, float], None]
"""Called after each call with (rows, seconds)."""


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future[list[R]] = field(repr=False)


class MicroBatcher(Generic[T, R]):
    """Gathers submissions into calls of `run(items) -> one result per item`.

    Must be used from one event loop (the one submitting). Thread-safe hand-back from
    the executor goes through `call_soon_threadsafe`.
    """

    def __init__(
        self,
        run: Callable[[list[T]], list[R]],
        *,
        max_rows: int,
        wait_s: float = 0.0,
        executor: Executor | None = None,
        inline_rows: int = 0,
        expecting: Callable[[], bool] | None = None,
        observe: BatchObserver | None = None,
        name: str = "batcher",
    ) -> None:
        """
        Args:
            run: scores a list of items, one result per item.
            max_rows: rows per call (a larger single submission runs alone).
            wait_s: longest wait for announced rows (`expecting()`).
            executor: where calls run; None runs them on the event loop.
            inline_rows: calls of at most this many rows run on the event loop even
                with an executor: they cost less than the two thread hand-offs.
            expecting: whether more rows are on their way.
            observe: told (rows, seconds) after each call.
        """
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self._run = run
        self.max_rows = max_rows
        self.wait_s = max(0.0, wait_s)
        self._executor = executor
        self.inline_rows = inline_rows
        self._expecting = expecting or (lambda: False)
        self._observe = observe
        self.name = name
        self._queue: list[_Pending[T, R]] = []
        self._queued_rows = 0
        self._busy = False
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self._closed = False
        self._waiting = False
        self._opened_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.calls = 0
        self.rows = 0

    @property
    def idle(self) -> bool:
        """Nothing queued and no call running."""
        return not self._busy and not self._queue

    async def submit(self, items: Sequence[T]) -> list[R]:
        """The results of `items` (one per item, in order), computed with others' rows.

        Raises:
            Whatever `run` raised for these items (alone).
        """
        if not items:
            return []
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[list[R]] = loop.create_future()
        self._queue.append(_Pending(items, future))
        self._queued_rows += len(items)
        if not self._busy:
            if self._queued_rows >= self.max_rows:
                self._cancel_scheduled()
                self._flush()
            elif self._scheduled is None:
                self._opened_at = loop.time()
                # After the handlers already runnable in this loop iteration, which may
                # add their rows to the same call.
                self._scheduled = loop.call_soon(self._flush)
            elif self._waiting and not self._expecting():
                # The rows waited for have all arrived: go now.
                self._cancel_scheduled()
                self._scheduled = loop.call_soon(self._flush)
        return await future

    def close(self) -> None:
        """Stop accepting work once what is queued or running has finished.

        The executor is not shut down here (its owner does that); submissions after
        closing still run, inline, so a request holding an old model never fails.
        """
        self._closed = True

    def _cancel_scheduled(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None

    def _take(self) -> list[_Pending[T, R]]:
        """The next batch: queued submissions up to `max_rows` rows (at least one)."""
        taken: list[_Pending[T, R]] = []
        rows = 0
        while self._queue:
            size = len(self._queue[0].items)
            if taken and rows + size > self.max_rows:
                break
            taken.append(self._queue.pop(0))
            rows += size
        self._queued_rows -= rows
        return taken

    def _flush(self) -> None:
        self._scheduled = None
        if self._busy or not self._queue:
            return
        if self.wait_s > 0.0 and self._queued_rows < self.max_rows and self._expecting():
            loop = self._loop
            assert loop is not None
            remaining = self._opened_at + self.wait_s - loop.time()
            if remaining > 0.0:
                self._waiting = True
                self._scheduled = loop.call_later(remaining, self._flush)
                return
        self._waiting = False
        batch = [p for p in self._take() if not p.future.done()]
        if not batch:
            self._after_call()
            return
        items: list[T] = [item for pending in batch for item in pending.items]
        if self._executor is None or self._closed or len(items) <= self.inline_rows:
            started = time.perf_counter()
            self._deliver(batch, self._call(items, batch), len(items), started)
            self._after_call()
            return
        self._busy = True
        started = time.perf_counter()
        try:
            done = self._executor.submit(self._call, items, batch)
        except RuntimeError:  # executor shut down: run here
            self._busy = False
            self._deliver(batch, self._call(items, batch), len(items), started)
            self._after_call()
            return
        loop = self._loop
        assert loop is not None

        def hand_back(_: object) -> None:
            loop.call_soon_threadsafe(self._delivered, batch, done, len(items), started)

        done.add_done_callback(hand_back)

    def _delivered(
        self,
        batch: list[_Pending[T, R]],
        done: Future[list[list[R] | BaseException]],
        rows: int,
        started: float,
    ) -> None:
        self._busy = False
        outcome: list[list[R] | BaseException] = done.result()
        self._deliver(batch, outcome, rows, started)
        self._after_call()

    def _after_call(self) -> None:
        if self._queue and self._scheduled is None and not self._busy:
            loop = self._loop
            assert loop is not None
            self._opened_at = loop.time()
            self._scheduled = loop.call_soon(self._flush)

    def _call(self, items: list[T], batch: list[_Pending[T, R]]) -> list[list[R] | BaseException]:
        """Run the batch; on failure run each submission alone. Never raises."""
        try:
            results = self._run(items)
            if len(results) != len(items):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(items)} items")
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            logger.warning(
                "%s: a batch of %d failed (%s); retrying alone", self.name, len(batch), exc
            )
            return [self._alone(pending.items) for pending in batch]
        out: list[list[R] | BaseException] = []
        start = 0
        for pending in batch:
            stop = start + len(pending.items)
            out.append(results[start:stop])
            start = stop
        return out

    def _alone(self, items: Sequence[T]) -> list[R] | BaseException:
        try:
            return self._run(list(items))
        except Exception as exc:
            return exc

    def _deliver(
        self,
        batch: list[_Pending[T, R]],
        outcome: list[list[R] | BaseException],
        rows: int,
        started: float,
    ) -> None:
        self.calls += 1
        self.rows += rows
        if self._observe is not None:
            self._observe(rows, time.perf_counter() - started)
        for pending, result in zip(batch, outcome, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
