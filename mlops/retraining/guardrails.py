"""Guardrails between a drift alarm and a retraining run, kept in a small SQL ledger.

A drift monitor that fires every hour must not start a retraining every hour. Each
request (a drift alarm, a scheduled or a manual retraining) is decided here and the
decision is written to a ledger that every worker reads, so the rules hold across
processes and restarts ("waiting is state, not sleep"):

* **cooldown**: no retraining within `cooldown_s` of the last one that started
  (a run that crashed does not count);
* **debounce**: a drift alarm within `debounce_s` of an earlier alarm is merged into it;
* **rollout in progress**: the request is *deferred*: recorded as pending, and the next
  retraining that proceeds (the next alarm after the rollout, or the schedule) takes it
  over, reaching back to its drift onset;
* **minimum data**: the retraining window must hold `min_new_rows` rows the current
  model has not seen. A drift alarm held back for this reason stays pending too: labels
  arrive late, and the retraining that proceeds once they have arrived reaches back to
  the first alarm's onset instead of only to the latest alarm's window.

The drift monitor asks `hold_alarm` before it raises an alarm: while a retraining runs,
its cooldown holds or a rollout is in progress, it records the alarm here instead of
emitting an event that could only be refused.

Decisions are idempotent on the request's key (the Prefect event id, or the flow run
id when there is no event): a redelivered event is recognised and never counted twice,
and a retried flow run gets its own earlier decision back.

The ledger is SQLite under the state directory in the embedded profile and the
PostgreSQL database of `MLOPS_DATABASE_URL` in production; decisions for one model are
serialised (SQLite `BEGIN IMMEDIATE`, a PostgreSQL advisory lock), so two alarms
arriving together cannot both start a retraining.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Engine,
    Float,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from mlops.errors import ConfigError
from mlops.retraining.window import as_utc
from mlops.settings import Profile, Settings

logger = logging.getLogger(__name__)


class RetrainTrigger(StrEnum):
    """What asked for a retraining."""

    DRIFT = "drift"
    SCHEDULE = "schedule"
    MANUAL = "manual"


class GuardOutcome(StrEnum):
    """What the guardrails decided for one request."""

    PROCEED = "proceed"
    SUPPRESSED = "suppressed"
    """Inside the cooldown after the last retraining."""
    DEBOUNCED = "debounced"
    """A repeat of a recent drift alarm, merged into it."""
    DEFERRED = "deferred"
    """A rollout is in progress: recorded as pending for a later retraining."""
    INSUFFICIENT_DATA = "insufficient_data"
    """The retraining window holds too few new rows."""


class RunStatus(StrEnum):
    """How a retraining run that the guardrails let through ended, as the ledger keeps it."""

    RUNNING = "running"
    FAILED = "failed"
    """Crashed or refused before training: does not start a cooldown."""


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


class RetrainRequest(BaseModel):
    """Why a retraining is asked for; the `on-drift` trigger fills it from the event."""

    model_config = ConfigDict(frozen=True)

    trigger: RetrainTrigger = Field(
        default=RetrainTrigger.DRIFT, description="drift (an alarm), schedule or manual."
    )
    event_id: str | None = Field(
        default=None,
        description="The Prefect event that raised the alarm: a redelivered event is not "
        "counted twice. Empty: the flow run id is used.",
    )
    reason: str = Field(default="", description="Free text shown in the ledger and artifacts.")
    drift_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share of the features that drifted."
    )
    drifted_features: tuple[str, ...] = Field(
        default=(), description="The features the monitor found drifted."
    )
    onset: datetime | None = Field(
        default=None,
        description="When the drifted data begins: the window reaches back at least to it.",
    )
    window_start: datetime | None = Field(
        default=None,
        description="Start of the retraining window; default: now minus the window_days setting.",
    )
    model_name: str | None = Field(
        default=None, description="The registered model; default: the dataset spec's name."
    )

    @field_validator("event_id", "model_name", "onset", "window_start", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # Event templates render a missing payload key as an empty string.
        return None if value == "" else value

    @field_validator("drifted_features", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return () if value is None or value == "" else value

    @field_validator("onset", "window_start")
    @classmethod
    def _as_utc(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    def key(self, run_id: str | None = None) -> str:
        """The idempotency key: the event id, else the flow run id, else a fresh id."""
        if self.event_id:
            return f"event:{self.event_id}"
        return f"run:{run_id}" if run_id else f"request:{uuid.uuid4()}"


class GuardDecision(BaseModel):
    """The guardrails' answer to one request, as recorded in the ledger."""

    model_config = ConfigDict(frozen=True)

    key: str
    model_name: str
    trigger: RetrainTrigger
    outcome: GuardOutcome
    reason: str
    decided_at: datetime
    new_rows: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    merged_into: str | None = None
    """For a debounced alarm: the alarm it was merged into."""
    takes_over: tuple[str, ...] = ()
    """For a proceeding request: the pending (deferred) alarms this retraining covers."""
    last_retrain_at: datetime | None = None
    duplicate: bool = False
    """True when this key was decided before by another caller (a redelivered event)."""

    @property
    def proceed(self) -> bool:
        """Train now: the guardrails let it through and this caller owns the decision."""
        return self.outcome is GuardOutcome.PROCEED and not self.duplicate


class AlarmRecord(BaseModel):
    """One row of the ledger's alarm table (every request, whatever its outcome)."""

    model_config = ConfigDict(frozen=True)

    key: str
    model_name: str
    trigger: RetrainTrigger
    received_at: datetime
    onset: datetime | None
    drift_share: float | None
    drifted_features: tuple[str, ...]
    reason: str
    outcome: GuardOutcome
    detail: str
    new_rows: int | None
    window_start: datetime | None
    window_end: datetime | None
    run_id: str | None
    merged_into: str | None
    resolved_by: str | None
    resolved_at: datetime | None


class RetrainRun(BaseModel):
    """One row of the ledger's run table: a retraining the guardrails let through."""

    model_config = ConfigDict(frozen=True)

    key: str
    model_name: str
    started_at: datetime
    finished_at: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    data_end: datetime | None
    rows: int | None
    batch_sha256: str | None
    status: str
    detail: str
    run_id: str | None


# --------------------------------------------------------------------------- the ledger


class _UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (portable across SQLite and PostgreSQL), read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        moment = _utc(value)
        return None if moment is None else moment.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _utc(value)


_metadata = MetaData()
_alarms = Table(
    "retraining_alarms",
    _metadata,
    Column("key", String(200), primary_key=True),
    Column("model_name", String(200), nullable=False, index=True),
    Column("trigger", String(32), nullable=False),
    Column("received_at", _UTCDateTime, nullable=False),
    Column("onset", _UTCDateTime),
    Column("drift_share", Float),
    Column("drifted_features", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("new_rows", Integer),
    Column("window_start", _UTCDateTime),
    Column("window_end", _UTCDateTime),
    Column("run_id", String(64)),
    Column("merged_into", String(200)),
    Column("resolved_by", String(200)),
    Column("resolved_at", _UTCDateTime),
)
_runs = Table(
    "retraining_runs",
    _metadata,
    Column("key", String(200), primary_key=True),
    Column("model_name", String(200), nullable=False, index=True),
    Column("started_at", _UTCDateTime, nullable=False),
    Column("finished_at", _UTCDateTime),
    Column("window_start", _UTCDateTime),
    Column("window_end", _UTCDateTime),
    Column("data_end", _UTCDateTime),
    Column("rows", Integer),
    Column("batch_sha256", String(64)),
    Column("status", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("run_id", String(64)),
)


def ledger_url(settings: Settings) -> str:
    """SQLite under the state directory, or the production PostgreSQL database.

    `postgresql://` URLs (what the rest of the settings use) are given the psycopg 3
    driver SQLAlchemy needs; the embedded profile keeps its own file even when a
    database URL is set for table sources.
    """
    if settings.profile is Profile.PRODUCTION:
        url = settings.require_database_url()
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        if not url.startswith("postgresql+"):
            raise ConfigError(f"the retraining ledger needs a PostgreSQL URL, got {url!r}")
        return url
    return f"sqlite:///{settings.home / 'retraining.db'}"


@contextmanager
def _ledger(settings: Settings) -> Iterator[Engine]:
    url = ledger_url(settings)
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        _serialise_sqlite_writers(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    try:
        with _locked(engine, "schema") as conn:
            _metadata.create_all(conn)
        yield engine
    finally:
        engine.dispose()


def _serialise_sqlite_writers(engine: Engine) -> None:
    """Make every transaction `BEGIN IMMEDIATE`: one writer at a time, reads included.

    pysqlite otherwise opens transactions lazily, so two processes could both read
    "no retraining yet" before either writes.
    """

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def _locked(engine: Engine, name: str) -> Iterator[Connection]:
    """A transaction that holds the lock of `name` (a model) until it commits."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            digest = hashlib.sha256(f"mlops.retraining.{name}".encode()).digest()
            lock_id = int.from_bytes(digest[:8], "big", signed=True)
            conn.execute(select(func.pg_advisory_xact_lock(lock_id)))
        yield conn


# --------------------------------------------------------------------------- decisions


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
) -> GuardDecision:
    """Decide whether a retraining may start now, and record the decision.

    The rules apply in this order: cooldown, debounce (drift alarms only), rollout in
    progress, minimum new rows. A request whose key was decided before returns that
    decision: unchanged for the same `run_id` (a retried flow run proceeds again),
    marked `duplicate` (and so not proceeding) for anyone else.

    A proceeding request opens a run in the ledger (status `running`; finish it with
    `record_outcome`) and takes over every pending alarm of the model.

    Args:
        request: what asks for the retraining; its `model_name` must be set.
        settings: where the ledger is and the guardrail settings.
        now: the decision time (timezone-aware).
        rollout_active: a canary rollout of the model is running or paused.
        new_rows: rows of the retraining window the current model has not seen.
        window_start: the retraining window, recorded for people and later runs.
        window_end: see `window_start`.
        run_id: the flow run deciding (Prefect's id), to recognise its retries.
    """
    if not request.model_name:
        raise ConfigError("a retraining request needs a model_name")
    model = request.model_name
    moment = _utc(now)
    assert moment is not None
    cfg = settings.retraining
    key = request.key(run_id)
    with _ledger(settings) as engine, _locked(engine, model) as conn:
        seen = conn.execute(select(_alarms).where(_alarms.c.key == key)).first()
        if seen is not None:
            earlier = _alarm(seen)
            duplicate = run_id is None or earlier.run_id != run_id
            logger.info("request %s was decided before (%s)", key, earlier.outcome.value)
            return _decision_of(conn, earlier, duplicate=duplicate)
        last = _last_run(conn, model)
        last_at = None if last is None else last.started_at
        head = _burst_head(conn, model) if request.trigger is RetrainTrigger.DRIFT else None
        merged_into: str | None = None
        if last_at is not None and moment - last_at < timedelta(seconds=cfg.cooldown_s):
            outcome = GuardOutcome.SUPPRESSED
            reason = _cooldown_reason(model, moment, last_at, cfg.cooldown_s)
        elif head is not None and moment - head.received_at < timedelta(seconds=cfg.debounce_s):
            outcome = GuardOutcome.DEBOUNCED
            merged_into = head.key
            reason = (
                f"debounced: {_ago(moment - head.received_at)} after alarm {head.key} "
                f"({head.outcome.value}); alarms within {_ago(timedelta(seconds=cfg.debounce_s))} "
                "are merged"
            )
        elif rollout_active:
            outcome = GuardOutcome.DEFERRED
            reason = (
                f"deferred: a canary rollout of {model} is in progress; recorded as pending, "
                "the next retraining that proceeds takes it over"
            )
        elif new_rows < cfg.min_new_rows:
            outcome = GuardOutcome.INSUFFICIENT_DATA
            reason = (
                f"insufficient data: {new_rows:,} new rows in the window, "
                f"{cfg.min_new_rows:,} needed"
            )
        else:
            outcome = GuardOutcome.PROCEED
            reason = f"retraining {model} on {new_rows:,} new rows"
        _insert_alarm(
            conn,
            request,
            key,
            moment,
            outcome,
            reason,
            run_id=run_id,
            new_rows=new_rows,
            window_start=window_start,
            window_end=window_end,
            merged_into=merged_into,
        )
        takes_over: tuple[str, ...] = ()
        if outcome is GuardOutcome.PROCEED:
            takes_over = _take_over_pending(conn, model, key, moment)
            conn.execute(
                _runs.insert().values(
                    key=key,
                    model_name=model,
                    started_at=moment,
                    window_start=window_start,
                    window_end=window_end,
                    status=RunStatus.RUNNING.value,
                    detail=reason,
                    run_id=run_id,
                )
            )
    logger.info("retraining request %s for %s: %s", key, model, reason)
    return GuardDecision(
        key=key,
        model_name=model,
        trigger=request.trigger,
        outcome=outcome,
        reason=reason,
        decided_at=moment,
        new_rows=new_rows,
        window_start=_utc(window_start),
        window_end=_utc(window_end),
        merged_into=merged_into,
        takes_over=takes_over,
        last_retrain_at=last_at,
    )


def hold_alarm(
    request: RetrainRequest,
    settings: Settings,
    *,
    now: datetime,
    rollout_active: bool,
    retraining_queued: str | None = None,
    run_id: str | None = None,
) -> GuardDecision | None:
    """Record a drift alarm in the ledger instead of raising it, when nothing could start.

    Asked by the drift monitor before it emits `mlops.drift.detected`: while a
    retraining of the model is queued (`retraining_queued`: a flow run not yet in the
    ledger) or running, or its cooldown holds, the alarm is recorded as `suppressed`;
    while a rollout is in progress, as `deferred` (pending: the next retraining that
    proceeds takes it over). Either way no event is emitted, so no retraining flow run
    is started only to be refused: a monitor that alarms every window during a
    retraining would otherwise start a process per window.

    A run the ledger still says is `running` after `max_run_s` holds nothing back: its
    worker was killed, and a dead run must not silence the monitor.

    Returns:
        The recorded decision, or None when the alarm should be raised.
    """
    if not request.model_name:
        raise ConfigError("a drift alarm needs a model_name")
    model = request.model_name
    moment = _utc(now)
    assert moment is not None
    key = request.key(run_id)
    cooldown_s = settings.retraining.cooldown_s
    with _ledger(settings) as engine, _locked(engine, model) as conn:
        seen = conn.execute(select(_alarms).where(_alarms.c.key == key)).first()
        if seen is not None:  # a retry of the same monitor run
            return _decision_of(conn, _alarm(seen), duplicate=False)
        last = _last_run(conn, model)
        last_at = None if last is None else last.started_at
        running = (
            last is not None
            and last.status == RunStatus.RUNNING.value
            and moment - last.started_at < timedelta(seconds=settings.retraining.max_run_s)
        )
        if retraining_queued is not None:
            outcome = GuardOutcome.SUPPRESSED
            reason = f"held: retraining flow run {retraining_queued} of {model} has not finished"
        elif running:
            assert last is not None
            outcome = GuardOutcome.SUPPRESSED
            reason = (
                f"held: retraining {last.key} of {model} is running "
                f"(started {_ago(moment - last.started_at)} ago)"
            )
        elif last_at is not None and moment - last_at < timedelta(seconds=cooldown_s):
            outcome = GuardOutcome.SUPPRESSED
            reason = "held: " + _cooldown_reason(model, moment, last_at, cooldown_s)
        elif rollout_active:
            outcome = GuardOutcome.DEFERRED
            reason = (
                f"held: a canary rollout of {model} is in progress; recorded as pending, "
                "the next retraining that proceeds takes it over"
            )
        else:
            return None
        _insert_alarm(
            conn,
            request,
            key,
            moment,
            outcome,
            reason,
            run_id=run_id,
            window_start=request.window_start,
        )
    logger.info("drift alarm %s for %s not raised: %s", key, model, reason)
    return GuardDecision(
        key=key,
        model_name=model,
        trigger=request.trigger,
        outcome=outcome,
        reason=reason,
        decided_at=moment,
        window_start=request.window_start,
        last_retrain_at=last_at,
    )


def record_outcome(
    settings: Settings,
    key: str,
    status: str,
    *,
    now: datetime,
    detail: str = "",
    rows: int | None = None,
    batch_sha256: str | None = None,
    data_end: datetime | None = None,
) -> None:
    """Record how a retraining run ended (or the batch it trains on, while running).

    `status` is the pipeline's status (`registered`, `not_promoted`, `rejected`, ...)
    or `RunStatus.FAILED`; fields left None keep their value.
    """
    values: dict[str, object] = {"status": status}
    if status != RunStatus.RUNNING.value:
        values["finished_at"] = now
    if detail:
        values["detail"] = detail
    if rows is not None:
        values["rows"] = rows
    if batch_sha256 is not None:
        values["batch_sha256"] = batch_sha256
    if data_end is not None:
        values["data_end"] = data_end
    with _ledger(settings) as engine, engine.begin() as conn:
        done = conn.execute(update(_runs).where(_runs.c.key == key).values(**values))
        if done.rowcount == 0:
            raise ConfigError(f"no retraining run {key!r} in the ledger")


def pending_alarms(settings: Settings, model_name: str) -> tuple[AlarmRecord, ...]:
    """Alarms waiting for a retraining, oldest first: deferred during a rollout, or drift
    alarms held back for too few labelled rows, that no retraining has taken over yet."""
    with _ledger(settings) as engine, engine.connect() as conn:
        rows = conn.execute(
            select(_alarms)
            .where(_alarms.c.model_name == model_name, _waiting())
            .order_by(_alarms.c.received_at)
        ).all()
    return tuple(_alarm(row) for row in rows)


def recent_alarms(settings: Settings, model_name: str, limit: int = 10) -> tuple[AlarmRecord, ...]:
    """The latest requests for a model, newest first (for reports)."""
    with _ledger(settings) as engine, engine.connect() as conn:
        rows = conn.execute(
            select(_alarms)
            .where(_alarms.c.model_name == model_name)
            .order_by(_alarms.c.received_at.desc())
            .limit(limit)
        ).all()
    return tuple(_alarm(row) for row in rows)


def retrain_runs(settings: Settings, model_name: str) -> tuple[RetrainRun, ...]:
    """Every retraining run of a model, newest first."""
    with _ledger(settings) as engine, engine.connect() as conn:
        rows = conn.execute(
            select(_runs)
            .where(_runs.c.model_name == model_name)
            .order_by(_runs.c.started_at.desc())
        ).all()
    return tuple(_run(row) for row in rows)


def trained_until(settings: Settings, model_name: str) -> datetime | None:
    """The newest row the last *registered* retraining saw: later rows are new data.

    Only registered runs count: rows a candidate that was not promoted trained on are
    still new to the model in service.
    """
    with _ledger(settings) as engine, engine.connect() as conn:
        latest = conn.execute(
            select(func.max(_runs.c.data_end)).where(
                _runs.c.model_name == model_name, _runs.c.status == "registered"
            )
        ).scalar_one_or_none()
    return _utc(latest)


# --------------------------------------------------------------------------- helpers


def _last_run(conn: Connection, model: str) -> RetrainRun | None:
    row = conn.execute(
        select(_runs)
        .where(_runs.c.model_name == model, _runs.c.status != RunStatus.FAILED.value)
        .order_by(_runs.c.started_at.desc())
        .limit(1)
    ).first()
    return None if row is None else _run(row)


def _insert_alarm(
    conn: Connection,
    request: RetrainRequest,
    key: str,
    moment: datetime,
    outcome: GuardOutcome,
    detail: str,
    *,
    run_id: str | None,
    **decided: object,
) -> None:
    """Record a request and what was decided about it (`decided`: the decision's columns)."""
    conn.execute(
        _alarms.insert().values(
            key=key,
            model_name=request.model_name,
            trigger=request.trigger.value,
            received_at=moment,
            onset=request.onset,
            drift_share=request.drift_share,
            drifted_features=list(request.drifted_features),
            reason=request.reason,
            outcome=outcome.value,
            detail=detail,
            run_id=run_id,
            **decided,
        )
    )


def _cooldown_reason(model: str, moment: datetime, last_at: datetime, cooldown_s: float) -> str:
    until = last_at + timedelta(seconds=cooldown_s)
    return (
        f"cooldown: the last retraining of {model} started {_ago(moment - last_at)} ago "
        f"({last_at:%Y-%m-%d %H:%M:%S} UTC); none before {until:%Y-%m-%d %H:%M:%S} UTC"
    )


def _burst_head(conn: Connection, model: str) -> AlarmRecord | None:
    """The latest drift alarm that was not itself merged into another one."""
    row = conn.execute(
        select(_alarms)
        .where(
            _alarms.c.model_name == model,
            _alarms.c.trigger == RetrainTrigger.DRIFT.value,
            _alarms.c.outcome != GuardOutcome.DEBOUNCED.value,
        )
        .order_by(_alarms.c.received_at.desc())
        .limit(1)
    ).first()
    return None if row is None else _alarm(row)


def _waiting() -> ColumnElement[bool]:
    """Alarms a later retraining takes over (see `pending_alarms`)."""
    short_of_data = and_(
        _alarms.c.outcome == GuardOutcome.INSUFFICIENT_DATA.value,
        _alarms.c.trigger == RetrainTrigger.DRIFT.value,
    )
    return and_(
        or_(_alarms.c.outcome == GuardOutcome.DEFERRED.value, short_of_data),
        _alarms.c.resolved_by.is_(None),
    )


def _take_over_pending(conn: Connection, model: str, key: str, now: datetime) -> tuple[str, ...]:
    pending = (
        conn.execute(select(_alarms.c.key).where(_alarms.c.model_name == model, _waiting()))
        .scalars()
        .all()
    )
    if pending:
        conn.execute(
            update(_alarms)
            .where(_alarms.c.key.in_(pending))
            .values(resolved_by=key, resolved_at=now)
        )
    return tuple(sorted(pending))


def _decision_of(conn: Connection, alarm: AlarmRecord, *, duplicate: bool) -> GuardDecision:
    taken = (
        conn.execute(select(_alarms.c.key).where(_alarms.c.resolved_by == alarm.key))
        .scalars()
        .all()
    )
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
        takes_over=tuple(sorted(taken)),
        duplicate=duplicate,
    )


def _alarm(row: Row[Any]) -> AlarmRecord:
    return AlarmRecord.model_validate(dict(row._mapping))


def _run(row: Row[Any]) -> RetrainRun:
    return RetrainRun.model_validate(dict(row._mapping))


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
