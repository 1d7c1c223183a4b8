"""Which flow runs died without a word: the judgement of the silent-run sweep (pure).

Prefect marks a run Crashed only when a live worker sees its process die. A run whose
worker was killed stays Running (or Pending, when it was killed before the process
started) on the server for ever and holds its deployment's concurrency slot: a
`CANCEL_NEW` schedule such as `canary-rollout/resume` then never runs again. The
automation `mlops: crash silent flow runs` catches most of them from the runs'
heartbeats, but its trigger state lives in the server and does not survive every
restart (seen on the embedded SQLite server under load). The sweep
(`flows/maintenance.py`) is the second net: every minute it reads the runs of
deployments that are Running or Pending and crashes those that `silence` condemns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RunPhase(StrEnum):
    """The states the sweep looks at."""

    RUNNING = "RUNNING"
    PENDING = "PENDING"


@dataclass(frozen=True)
class RunSighting:
    """What the server knows of one run that should still be alive."""

    run_id: str
    name: str
    phase: RunPhase
    since: datetime
    """When the run entered its phase (the state's timestamp)."""
    last_heartbeat: datetime | None
    """The run's latest `prefect.flow-run.heartbeat` event, if any."""


def silence(
    run: RunSighting, now: datetime, *, crashed_after_s: float, pending_after_s: float
) -> str | None:
    """Why `run` is dead, or None while it may be alive.

    A Running run is dead when neither its state change nor any heartbeat happened in the
    last `crashed_after_s` (runs beat every `runs.heartbeat_s`, at most half that); a
    Pending run when its process has not started within `pending_after_s`.
    """
    if run.phase is RunPhase.PENDING:
        waited = (now - run.since).total_seconds()
        if waited <= pending_after_s:
            return None
        return (
            f"Pending for {waited:.0f} s (limit {pending_after_s:g} s): its process never started"
        )
    heard = max(run.since, run.last_heartbeat) if run.last_heartbeat else run.since
    quiet = (now - heard).total_seconds()
    if quiet <= crashed_after_s:
        return None
    source = "heartbeat" if run.last_heartbeat and run.last_heartbeat >= run.since else "start"
    return (
        f"no heartbeat for {quiet:.0f} s (last sign: {source} at {heard:%H:%M:%S} UTC, "
        f"limit {crashed_after_s:g} s): its worker is gone"
    )
