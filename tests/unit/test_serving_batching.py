"""Micro-batching: concurrent submissions share calls, results go back to their owners."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from serving.batching import MicroBatcher


def _run(coroutine: Any) -> Any:
    """`asyncio.run` in a thread of its own: the calling thread may hold another loop
    (an earlier test's Prefect client), and a loop cannot run inside a running one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Recorder:
    """A `run` function that doubles numbers and records each call's size."""

    def __init__(self, fail_on: int | None = None, delay: threading.Event | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_on = fail_on
        self.delay = delay

    def __call__(self, items: list[int]) -> list[int]:
        if self.delay is not None:
            self.delay.wait(5)
        self.calls.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        return [2 * x for x in items]


@pytest.mark.parametrize("threaded", [False, True])
def test_concurrent_submissions_share_one_call(threaded: bool) -> None:
    run = Recorder()

    async def main() -> list[list[int]]:
        executor = ThreadPoolExecutor(1) if threaded else None
        batcher = MicroBatcher(run, max_rows=100, executor=executor)
        results = await asyncio.gather(*(batcher.submit([i, 10 + i]) for i in range(5)))
        if executor is not None:
            executor.shutdown()
        return results

    results = _run(main())
    assert results == [[2 * i, 2 * (10 + i)] for i in range(5)]
    assert len(run.calls) == 1 and len(run.calls[0]) == 10


def test_a_lone_submission_is_not_delayed_by_the_wait() -> None:
    run = Recorder()

    async def main() -> float:
        batcher = MicroBatcher(run, max_rows=100, wait_s=5.0, expecting=lambda: False)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await batcher.submit([1]) == [2]
        return loop.time() - started

    assert _run(main()) < 1.0


def test_the_wait_gathers_rows_announced_as_coming() -> None:
    run = Recorder()

    async def main() -> None:
        batcher = MicroBatcher(run, max_rows=100, wait_s=0.05, expecting=lambda: True)
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(batcher.submit([2]))
        assert await asyncio.gather(first, second) == [[2], [4]]

    _run(main())
    assert run.calls == [[1, 2]]


def test_the_wait_ends_when_the_announced_rows_have_arrived() -> None:
    run = Recorder()
    coming = [True]

    async def main() -> float:
        batcher = MicroBatcher(run, max_rows=100, wait_s=5.0, expecting=lambda: coming[0])
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.02)
        coming[0] = False  # the last announced request submits now
        assert await asyncio.gather(first, batcher.submit([2])) == [[2], [4]]
        return loop.time() - started

    assert _run(main()) < 1.0
    assert run.calls == [[1, 2]]


def test_small_calls_run_inline_and_large_ones_on_the_executor() -> None:
    threads: list[str] = []

    def run(items: list[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return items

    async def main() -> str:
        executor = ThreadPoolExecutor(1, thread_name_prefix="model")
        batcher = MicroBatcher(run, max_rows=100, executor=executor, inline_rows=4)
        assert await batcher.submit([1, 2]) == [1, 2]
        assert await batcher.submit(list(range(10))) == list(range(10))
        executor.shutdown()
        return threading.current_thread().name

    loop_thread = _run(main())
    assert threads == [loop_thread, threads[1]]
    assert threads[1].startswith("model")


def test_batches_stop_at_max_rows_and_rows_queued_meanwhile_go_next() -> None:
    gate = threading.Event()
    run = Recorder(delay=gate)

    async def main() -> None:
        executor = ThreadPoolExecutor(1)
        batcher = MicroBatcher(run, max_rows=4, executor=executor)
        first = asyncio.ensure_future(batcher.submit([0]))
        await asyncio.sleep(0.01)  # the first call is running (blocked on the gate)
        rest = [asyncio.ensure_future(batcher.submit([i, i])) for i in range(1, 5)]
        await asyncio.sleep(0.01)
        gate.set()
        assert await first == [0]
        assert await asyncio.gather(*rest) == [[2 * i, 2 * i] for i in range(1, 5)]
        executor.shutdown()

    _run(main())
    assert [len(c) for c in run.calls] == [1, 4, 4]


def test_one_bad_submission_does_not_fail_its_neighbours() -> None:
    run = Recorder(fail_on=13)

    async def main() -> list[object]:
        batcher = MicroBatcher(run, max_rows=100)
        return await asyncio.gather(
            batcher.submit([1]), batcher.submit([13]), batcher.submit([3]), return_exceptions=True
        )

    first, bad, third = _run(main())
    assert first == [2] and third == [6]
    assert isinstance(bad, ValueError)


def test_a_closed_batcher_still_answers_inline() -> None:
    run = Recorder()

    async def main() -> list[int]:
        executor = ThreadPoolExecutor(1)
        batcher = MicroBatcher(run, max_rows=10, executor=executor)
        batcher.close()
        executor.shutdown()
        return await batcher.submit([5])

    assert _run(main()) == [10]
