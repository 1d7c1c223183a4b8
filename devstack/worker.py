"""The local stack's process worker: `prefect worker start`, collecting its garbage.

A Prefect 3.8 process worker opens, for every flow run it submits, two API clients and
two event websockets, each client with an OpenSSL context of its own (about 0.7 MiB of
native memory). After the run they are left in reference cycles that only a full
collection frees, and a long-lived process runs those rarely: the worker's RSS grew by
0.3-0.6 MiB per completed run, linearly (cancelled runs cost nothing). A thread that
collects every `MLOPS_RUNS__WORKER_GC_S` seconds (settings) keeps it to what a minute of
runs leaves behind: side by side over 62 completed runs each, a plain worker grew 28.8 MiB
per 100 runs, this one 0.5 MiB (138 -> 154 MiB against 139 -> 139 MiB).

Run as `python -m devstack.worker <prefect worker start options>`.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

from prefect.cli import app

from mlops.settings import get_settings


def collect_garbage_every(seconds: float) -> threading.Thread:
    """Start a daemon thread running a full `gc.collect()` every `seconds`."""

    def loop() -> None:
        while True:
            time.sleep(seconds)
            gc.collect()

    thread = threading.Thread(target=loop, name="collect-garbage", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> None:
    """`prefect worker start` with the collector running beside it."""
    collect_garbage_every(get_settings().runs.worker_gc_s)
    sys.argv = ["prefect", "worker", "start", *(sys.argv[1:] if argv is None else argv)]
    app()


if __name__ == "__main__":
    main()
