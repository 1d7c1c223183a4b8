"""Guardrails between a drift alarm and a retraining run: the rules, applied to the ledger.

A drift monitor that fires every hour must not start a retraining every hour. Each
request (a drift alarm, a scheduled or a manual retraining) is decided here and the
decision is written to a ledger that every worker reads, so the rules hold across
processes and restarts ("waiting is state, not sleep"). The rules themselves live in
`rules` (pure: data-quality incident, queued, running, cooldown, debounce, rollout in
progress, minimum data), the tables in `ledger`; this module reads the facts under
the model's lock, asks `rules.judge` and records the answer:

* `check_retrain`: the retraining's own guard; a request that proceeds opens a run
  and takes over every pending alarm (deferred during a rollout, held by a quality
  incident, short of labelled rows, or reopened by an expired run);
* `hold_alarm`: the drift monitor asks it before it raises an alarm, and records the
  alarm here instead of emitting an event that could only be refused.

Both ask the same `judge`, so they never disagree. Decisions are idempotent on the
request's key (the Prefect event id, or the flow run id when there is no event): a
redelivered event is recognised and never counted twice, and a retried flow run gets
its own earlier decision back.

A retraining recorded as running whose process is gone (silent heartbeat, or its
Prefect flow run ended: `tasks.retraining.expire_stale_retrainings` asks Prefect) is
marked failed by `heartbeat.expire_stale_runs` (`ledger.expire_run`), which reopens
the alarms it held.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Connection

from mlops.errors import ConfigError
from mlops.retraining.ledger import (
    burst_head,
    find_alarm,
    insert_alarm,
    insert_run,
    last_run,
    locked,
    open_ledger,
    take_over_pending,
    taken_over_by,
)
from mlops.retraining.models import (
    AlarmRecord,
    GuardDecision,
    GuardOutcome,
    RetrainRequest,
)
from mlops.retraining.rules import Facts, judge
from mlops.settings import Settings
from mlops.timestamps import utc_or_none

logger = logging.getLogger(__name__)


def check_retrain(
    request: RetrainRequest,
    settings: Settings,
    *,
    now: datetime,
    rollout_active: bool,
    new_rows: int,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    run_id: str | None = None,
    quality_incident: str | None = None,
) -> GuardDecision:
    """Decide whether a retraining may start now, and record the decision.

    The rules apply in `rules.judge`'s order. A request whose key was decided before
    returns that decision: unchanged for the same `run_id` (a retried flow run proceeds
    again), marked `duplicate` (and so not proceeding) for anyone else.

    A proceeding request opens a run in the ledger (status `running`, beating from now;
    finish it with `record_outcome`) and takes over every pending alarm of the model.

    Args:
        request: what asks for the retraining; its `model_name` must be set.
        settings: where the ledger is and the guardrail settings.
        now: the decision time (timezone-aware).
        rollout_active: a canary rollout of the model holds retraining
            (`RolloutState.holds_retraining(now)`).
        new_rows: rows of the retraining window the current model has not seen.
        window_start: the retraining window, recorded for people and later runs.
        window_end: see `window_start`.
        run_id: the flow run deciding (Prefect's id), to recognise its retries.
        quality_incident: an open data-quality incident, in words: the request is held
            (`QUALITY_HOLD`, pending) and no retraining starts.
    """
    if not request.model_name:
        raise ConfigError("a retraining request needs a model_name")
    model = request.model_name
    moment = utc_or_none(now)
    assert moment is not None
    key = request.key(run_id)
    with open_ledger(settings) as engine, locked(engine, model) as conn:
        earlier = find_alarm(conn, key)
        if earlier is not None:
            duplicate = run_id is None or earlier.run_id != run_id
            logger.info("request %s was decided before (%s)", key, earlier.outcome.value)
            return _decision_of(conn, earlier, duplicate=duplicate)
        last = last_run(conn, model)
        facts = Facts(
            model=model,
            trigger=request.trigger,
            last_run=last,
            burst_head=burst_head(conn, model),
            rollout_active=rollout_active,
            quality_incident=quality_incident,
            new_rows=new_rows,
        )
        verdict = judge(facts, settings.retraining, moment)
        insert_alarm(
            conn,
            request,
            key,
            moment,
            verdict.outcome,
            verdict.reason,
            run_id=run_id,
            new_rows=new_rows,
            window_start=window_start,
            window_end=window_end,
            merged_into=verdict.merged_into,
            held_by=verdict.held_by,
        )
        takes_over: tuple[str, ...] = ()
        if verdict.outcome is GuardOutcome.PROCEED:
            takes_over = take_over_pending(conn, model, key, moment)
            insert_run(
                conn,
                key=key,
                model_name=model,
                started_at=moment,
                window_start=window_start,
                window_end=window_end,
                detail=verdict.reason,
                run_id=run_id,
            )
    logger.info("retraining request %s for %s: %s", key, model, verdict.reason)
    return GuardDecision(
        key=key,
        model_name=model,
        trigger=request.trigger,
        outcome=verdict.outcome,
        reason=verdict.reason,
        decided_at=moment,
        new_rows=new_rows,
        window_start=utc_or_none(window_start),
        window_end=utc_or_none(window_end),
        merged_into=verdict.merged_into,
        takes_over=takes_over,
        last_retrain_at=None if last is None else last.started_at,
        held_by=verdict.held_by,
    )


def hold_alarm(
    request: RetrainRequest,
    settings: Settings,
    *,
    now: datetime,
    rollout_active: bool,
    retraining_queued: str | None = None,
    run_id: str | None = None,
    quality_incident: str | None = None,
) -> GuardDecision | None:
    """Record a drift alarm in the ledger instead of raising it, when nothing could start.

    Asked by the drift monitor before it emits `mlops.drift.detected`, with the rules
    of `check_retrain` (less the row count, which only the retraining measures): while
    a retraining of the model is queued (`retraining_queued`: a flow run not yet in the
    ledger) or running, or its cooldown holds, the alarm is recorded as `suppressed`; a
    repeat within the debounce as `debounced`; while a rollout holds retraining, as
    `deferred`, and during a data-quality incident as `quality_hold` (both pending: the
    next retraining that proceeds takes them over). Either way no event is emitted, so
    no retraining flow run is started only to be refused.

    A run the ledger still says is `running` whose heartbeat is silent (or that started
    more than `max_run_s` ago) holds nothing back: a dead run must not silence the
    monitor.

    Returns:
        The recorded decision, or None when the alarm should be raised.
    """
    if not request.model_name:
        raise ConfigError("a drift alarm needs a model_name")
    model = request.model_name
    moment = utc_or_none(now)
    assert moment is not None
    key = request.key(run_id)
    with open_ledger(settings) as engine, locked(engine, model) as conn:
        earlier = find_alarm(conn, key)
        if earlier is not None:  # a retry of the same monitor run
            return _decision_of(conn, earlier, duplicate=False)
        last = last_run(conn, model)
        facts = Facts(
            model=model,
            trigger=request.trigger,
            last_run=last,
            burst_head=burst_head(conn, model),
            rollout_active=rollout_active,
            quality_incident=quality_incident,
            retraining_queued=retraining_queued,
        )
        verdict = judge(facts, settings.retraining, moment)
        if not verdict.held:
            return None
        reason = "held: " + verdict.reason
        insert_alarm(
            conn,
            request,
            key,
            moment,
            verdict.outcome,
            reason,
            run_id=run_id,
            window_start=request.window_start,
            merged_into=verdict.merged_into,
            held_by=verdict.held_by,
        )
    logger.info("drift alarm %s for %s not raised: %s", key, model, reason)
    return GuardDecision(
        key=key,
        model_name=model,
        trigger=request.trigger,
        outcome=verdict.outcome,
        reason=reason,
        decided_at=moment,
        window_start=request.window_start,
        merged_into=verdict.merged_into,
        last_retrain_at=None if last is None else last.started_at,
        held_by=verdict.held_by,
    )


def _decision_of(conn: Connection, alarm: AlarmRecord, *, duplicate: bool) -> GuardDecision:
    return GuardDecision(
        key=alarm.key,
        model_name=alarm.model_name,
        trigger=alarm.trigger,
        outcome=alarm.outcome,
        reason=(
            f"duplicate: request {alarm.key} was decided before ({alarm.detail})"
            if duplicate
            else alarm.detail
        ),
        decided_at=alarm.received_at,
        new_rows=alarm.new_rows,
        window_start=alarm.window_start,
        window_end=alarm.window_end,
        merged_into=alarm.merged_into,
        takes_over=taken_over_by(conn, alarm.key),
        held_by=alarm.held_by,
        duplicate=duplicate,
    )
