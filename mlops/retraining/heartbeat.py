"""The heartbeat of a running retraining: a daemon thread that beats its ledger row.

A worker killed hard (OOM, SIGKILL, a lost machine) cannot record how its retraining
ended; its row would say `running` until `max_run_s`. While the training process lives,
`keep_beating` stamps the row every `heartbeat_interval_s`; silence for longer than
`heartbeat_timeout_s` tells every other process the run is gone (`rules.stale_reason`).

`expire_stale_runs` marks such runs failed (and the ones whose flow run the caller
knows is gone), and `retraining_alive` tells whether a flow run still running for
Prefect is still training by its ledger row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from mlops.retraining.ledger import beat, expire_run, run_of_flow_run, running_retrainings
from mlops.retraining.models import ExpiredRun
from mlops.retraining.rules import is_alive, stale_reason
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


FlowRunGone = Callable[[str], str | None]
"""Why the flow run with this id no longer runs its retraining, or None (alive, or
nobody can say): the orchestrator's answer, asked about a run whose heartbeat is fine."""


def expire_stale_runs(
    settings: Settings, model_name: str, *, now: datetime, flow_run_gone: FlowRunGone
) -> tuple[ExpiredRun, ...]:
    """Expire the model's retrainings recorded as running whose process is gone.

    A run is gone when its heartbeat is silent for longer than
    `retraining.heartbeat_timeout_s` (or it started more than `max_run_s` ago), or when
    `flow_run_gone` names a reason for its flow run (ended without recording an
    outcome, deleted). Each is marked failed with the reason (`ledger.expire_run`,
    compare-and-set: a run that ended meanwhile, or that another process expired
    first, is left out) and the alarms it held become pending again.
    """
    cfg = settings.retraining
    expired: list[ExpiredRun] = []
    for run in running_retrainings(settings, model_name):
        reason = stale_reason(
            run, now, heartbeat_timeout_s=cfg.heartbeat_timeout_s, max_run_s=cfg.max_run_s
        )
        if reason is None and run.run_id:
            reason = flow_run_gone(run.run_id)
        if reason is None:
            continue
        done = expire_run(settings, run.key, reason, now=now)
        if done is not None:
            expired.append(done)
    return tuple(expired)


def expiry_payload(expired: ExpiredRun) -> dict[str, object]:
    """What `mlops.retraining.expired` carries about an expired run."""
    return {
        "key": expired.run.key,
        "run_id": expired.run.run_id,
        "reason": expired.reason,
        "started_at": expired.run.started_at.isoformat(),
        "reopened": list(expired.reopened),
    }


def retraining_alive(
    settings: Settings, run_id: str, started: datetime | None, now: datetime
) -> bool:
    """Whether a flow run the orchestrator says is running still runs its retraining.

    A killed worker's run stays Running on the server. Within
    `retraining.heartbeat_timeout_s` of its start it is taken as alive (deciding takes
    seconds); later only while the ledger row it opened is alive (training beats it).
    """
    limit = timedelta(seconds=settings.retraining.heartbeat_timeout_s)
    if started is None or now - started <= limit:
        return True
    opened = run_of_flow_run(settings, run_id)
    return opened is not None and is_alive(opened, now, settings.retraining)
