"""The guardrails' rules, as pure functions of plain values and an injected `now`.

Both questions the ledger answers go through `judge`, with the rules in one order:

1. **data-quality incident**: a broken pipe is not drift; the request waits (pending,
   `QUALITY_HOLD`) until a retraining proceeds on fixed data;
2. **queued** (the monitor only): a retraining flow run that has not reached the ledger
   yet decides on the drift already;
3. **running**: a retraining of the model runs, and its process is alive (a heartbeat
   within `heartbeat_timeout_s`, started within `max_run_s`);
4. **cooldown**: the last retraining that did not fail started within `cooldown_s`;
5. **debounce** (drift alarms only): an alarm within `debounce_s` of the head of the
   latest burst of alarms is merged into it;
6. **rollout in progress**: deferred, pending for the next retraining;
7. **minimum data** (the retraining only: the monitor does not count rows).

`check_retrain` (the retraining's own guard) and `hold_alarm` (the drift monitor, before
it raises an alarm) ask the same `judge`, so the monitor holds exactly the alarms a
retraining would refuse, and never one it would accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mlops.retraining.models import AlarmRecord, GuardOutcome, RetrainRun, RetrainTrigger
from mlops.settings import RetrainingSettings

PENDING_OUTCOMES = (GuardOutcome.DEFERRED, GuardOutcome.QUALITY_HOLD)
"""Outcomes that wait for a later retraining whatever asked (plus drift alarms short of
data, see `is_pending`)."""


@dataclass(frozen=True)
class Facts:
    """What the rules look at, read from the ledger and the caller at decision time."""

    model: str
    trigger: RetrainTrigger
    last_run: RetrainRun | None = None
    """The model's latest retraining that did not fail (running or finished)."""
    burst_head: AlarmRecord | None = None
    """The latest drift alarm that was not itself merged into another one."""
    rollout_active: bool = False
    """A rollout holds retraining (`RolloutState.holds_retraining(now)`)."""
    quality_incident: str | None = None
    """An open data-quality incident, in words."""
    retraining_queued: str | None = None
    """A retraining flow run that is due and has not reached the ledger (monitor only)."""
    new_rows: int | None = None
    """Rows of the retraining window the model has not seen; None: not counted (monitor)."""


@dataclass(frozen=True)
class Verdict:
    """What `judge` decided: PROCEED, or the outcome that holds the request and why."""

    outcome: GuardOutcome
    reason: str
    merged_into: str | None = None
    held_by: str | None = None
    """The retraining run (ledger key) that holds the request: running, or its cooldown."""

    @property
    def held(self) -> bool:
        return self.outcome is not GuardOutcome.PROCEED


def judge(facts: Facts, rules: RetrainingSettings, now: datetime) -> Verdict:
    """Apply the rules in order (see the module docstring); the first that holds wins."""
    for verdict in (
        quality_hold(facts.model, facts.quality_incident),
        queued_hold(facts.model, facts.retraining_queued),
        running_hold(facts.model, facts.last_run, now, rules),
        cooldown_hold(facts.model, facts.last_run, now, rules.cooldown_s),
        debounce_hold(facts.trigger, facts.burst_head, now, rules.debounce_s),
        rollout_hold(facts.model, facts.rollout_active),
        data_hold(facts.new_rows, rules.min_new_rows),
    ):
        if verdict is not None:
            return verdict
    rows = "" if facts.new_rows is None else f" on {facts.new_rows:,} new rows"
    return Verdict(GuardOutcome.PROCEED, f"retraining {facts.model}{rows}")


def quality_hold(model: str, incident: str | None) -> Verdict | None:
    """An open data-quality incident holds every retraining: its data is broken."""
    if not incident:
        return None
    return Verdict(
        GuardOutcome.QUALITY_HOLD,
        f"data-quality incident on {model}: {incident}; recorded as pending, the first "
        "retraining that proceeds once the data is fixed takes it over",
    )


def queued_hold(model: str, queued: str | None) -> Verdict | None:
    """A due retraining flow run will decide on this drift already."""
    if queued is None:
        return None
    return Verdict(
        GuardOutcome.SUPPRESSED, f"retraining flow run {queued} of {model} has not finished"
    )


def stale_reason(
    run: RetrainRun, now: datetime, *, heartbeat_timeout_s: float, max_run_s: float
) -> str | None:
    """Why a run the ledger says is running is dead (None: alive, or not running).

    Its process beats at least every `heartbeat_interval_s`; silence for longer than
    `heartbeat_timeout_s` means it was killed. A run longer than `max_run_s` is taken
    as dead whatever its heartbeat says (a hung process beats too).
    """
    if not run.running:
        return None
    silent = now - run.last_seen
    if silent > timedelta(seconds=heartbeat_timeout_s):
        beat = "no heartbeat" if run.heartbeat_at is None else "last heartbeat"
        return (
            f"{beat} for {ago(silent)} (limit {ago(timedelta(seconds=heartbeat_timeout_s))}): "
            "its process is gone"
        )
    age = now - run.started_at
    if age > timedelta(seconds=max_run_s):
        return (
            f"running for {ago(age)}, longer than the limit of {ago(timedelta(seconds=max_run_s))}"
        )
    return None


def is_alive(run: RetrainRun, now: datetime, rules: RetrainingSettings) -> bool:
    """Running according to the ledger, and its process shows signs of life."""
    return run.running and (
        stale_reason(
            run, now, heartbeat_timeout_s=rules.heartbeat_timeout_s, max_run_s=rules.max_run_s
        )
        is None
    )


def running_hold(
    model: str, last: RetrainRun | None, now: datetime, rules: RetrainingSettings
) -> Verdict | None:
    """A live retraining of the model is under way: a second one could only race it.

    A run the ledger says is running whose process is dead (`stale_reason`) holds
    nothing back: a dead run must not silence the monitor.
    """
    if last is None or not is_alive(last, now, rules):
        return None
    return Verdict(
        GuardOutcome.SUPPRESSED,
        f"retraining {last.key} of {model} is running (started {ago(now - last.started_at)} "
        f"ago, last seen {ago(now - last.last_seen)} ago)",
        held_by=last.key,
    )


def cooldown_hold(
    model: str, last: RetrainRun | None, now: datetime, cooldown_s: float
) -> Verdict | None:
    """No retraining within `cooldown_s` of the last one that started (a failed one does
    not count: the caller passes the latest run that did not fail)."""
    if last is None or now - last.started_at >= timedelta(seconds=cooldown_s):
        return None
    until = last.started_at + timedelta(seconds=cooldown_s)
    return Verdict(
        GuardOutcome.SUPPRESSED,
        f"cooldown: the last retraining of {model} started {ago(now - last.started_at)} ago "
        f"({last.started_at:%Y-%m-%d %H:%M:%S} UTC); none before {until:%Y-%m-%d %H:%M:%S} UTC",
        held_by=last.key,
    )


def debounce_hold(
    trigger: RetrainTrigger, head: AlarmRecord | None, now: datetime, debounce_s: float
) -> Verdict | None:
    """A drift alarm this close to the head of the current burst is merged into it.

    Bursts do not chain: the distance is to the burst's first alarm, not to the last one.
    """
    if trigger is not RetrainTrigger.DRIFT or head is None:
        return None
    if now - head.received_at >= timedelta(seconds=debounce_s):
        return None
    return Verdict(
        GuardOutcome.DEBOUNCED,
        f"debounced: {ago(now - head.received_at)} after alarm {head.key} "
        f"({head.outcome.value}); alarms within {ago(timedelta(seconds=debounce_s))} "
        "are merged",
        merged_into=head.key,
    )


def rollout_hold(model: str, rollout_active: bool) -> Verdict | None:
    """A rollout of the model is in progress: the request waits for the next retraining."""
    if not rollout_active:
        return None
    return Verdict(
        GuardOutcome.DEFERRED,
        f"deferred: a canary rollout of {model} is in progress; recorded as pending, "
        "the next retraining that proceeds takes it over",
    )


def data_hold(new_rows: int | None, min_new_rows: int) -> Verdict | None:
    """Too few rows the model has not seen (None: not counted, nothing to say)."""
    if new_rows is None or new_rows >= min_new_rows:
        return None
    return Verdict(
        GuardOutcome.INSUFFICIENT_DATA,
        f"insufficient data: {new_rows:,} new rows in the window, {min_new_rows:,} needed",
    )


def is_pending(outcome: GuardOutcome, trigger: RetrainTrigger) -> bool:
    """Whether a request with this outcome waits for a later retraining to take it over:
    deferred or quality-held requests, and drift alarms held back for too few rows
    (labels arrive late; the retraining that proceeds reaches back to their onset)."""
    if outcome in PENDING_OUTCOMES:
        return True
    return outcome is GuardOutcome.INSUFFICIENT_DATA and trigger is RetrainTrigger.DRIFT


def overdue_reason(alarm: AlarmRecord, now: datetime, max_wait_s: float) -> str | None:
    """Why a pending alarm has waited too long for a retraining (None: not yet)."""
    waited = now - alarm.received_at
    if waited <= timedelta(seconds=max_wait_s):
        return None
    return (
        f"drift alarm {alarm.key} of {alarm.model_name} has waited {ago(waited)} for a "
        f"retraining (limit {ago(timedelta(seconds=max_wait_s))}); it is "
        f"{alarm.outcome.value}: {alarm.detail}"
    )


def ago(delta: timedelta) -> str:
    """A duration for people: seconds, minutes or hours."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
