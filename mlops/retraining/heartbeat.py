"""The heartbeat of a running retraining: a daemon thread that beats its ledger row.

A worker killed hard (OOM, SIGKILL, a lost machine) cannot record how its retraining
ended; its row would say `running` until `max_run_s`. While the training process lives,
`keep_beating` stamps the row every `heartbeat_interval_s`; silence for longer than
`heartbeat_timeout_s` tells every other process the run is gone (`rules.stale_reason`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from mlops.retraining.ledger import beat
from mlops.settings import Settings

logger = logging.getLogger(__name__)


@contextmanager
def keep_beating(
    settings: Settings,
    key: str,
    *,
    interval_s: float | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[threading.Event]:
    """Beat the running retraining `key` until the block ends (once more on entry).

    A failed beat (the database unreachable for a moment) is logged and retried at the
    next interval: the timeout is several intervals long. Yields the event that stops
    the thread (set on exit).
    """
    every = settings.retraining.heartbeat_interval_s if interval_s is None else interval_s
    stop = threading.Event()

    def _beat_once() -> None:
        try:
            if not beat(settings, key, now=clock()):
                logger.warning(
                    "retraining %s is no longer running in the ledger (ended or expired)", key
                )
        except Exception:  # a beat must never kill the training
            logger.warning("heartbeat of retraining %s failed", key, exc_info=True)

    def _loop() -> None:
        while not stop.wait(every):
            _beat_once()

    _beat_once()
    thread = threading.Thread(target=_loop, name=f"retraining-heartbeat-{key}", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=max(every, 5.0))
