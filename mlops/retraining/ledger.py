"""The retraining ledger: two SQL tables every worker reads, and the lock that orders them.

`retraining_alarms` holds every request (drift alarm, schedule, manual) with what was
decided; `retraining_runs` every retraining the guardrails let through, with its
heartbeat and how it ended. SQLite under the state directory in the embedded profile,
the PostgreSQL database of `MLOPS_DATABASE_URL` in production. Decisions for one model
are serialised (SQLite `BEGIN IMMEDIATE`, a PostgreSQL advisory lock), so two alarms
arriving together cannot both start a retraining.

`create_all` adds missing tables, not missing columns: `_upgrade` adds the columns a
newer version brought (`heartbeat_at`, `held_by`) to a ledger an older one created.
URLs, the shared engine, the schema created once and the lock are `mlops.db`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    and_,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from mlops import db
from mlops.db import UTCDateTime
from mlops.errors import ConfigError
from mlops.retraining.models import (
    AlarmRecord,
    ExpiredRun,
    GuardOutcome,
    RetrainRequest,
    RetrainRun,
    RetrainTrigger,
    RunStatus,
)
from mlops.retraining.rules import PENDING_OUTCOMES, is_pending
from mlops.settings import Profile, Settings
from mlops.timestamps import utc_or_none

logger = logging.getLogger(__name__)


_metadata = MetaData()
alarms = Table(
    "retraining_alarms",
    _metadata,
    Column("key", String(200), primary_key=True),
    Column("model_name", String(200), nullable=False, index=True),
    Column("trigger", String(32), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("onset", UTCDateTime),
    Column("drift_share", Float),
    Column("drifted_features", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("new_rows", Integer),
    Column("window_start", UTCDateTime),
    Column("window_end", UTCDateTime),
    Column("run_id", String(64)),
    Column("merged_into", String(200)),
    Column("resolved_by", String(200)),
    Column("resolved_at", UTCDateTime),
    Column("held_by", String(200)),  # added after the first release: see _upgrade
)
runs = Table(
    "retraining_runs",
    _metadata,
    Column("key", String(200), primary_key=True),
    Column("model_name", String(200), nullable=False, index=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("window_start", UTCDateTime),
    Column("window_end", UTCDateTime),
    Column("data_end", UTCDateTime),
    Column("rows", Integer),
    Column("batch_sha256", String(64)),
    Column("status", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("run_id", String(64)),
    Column("heartbeat_at", UTCDateTime),  # added after the first release: see _upgrade
)


def ledger_url(settings: Settings) -> str:
    """SQLite under the state directory, or the production PostgreSQL database.

    `postgresql://` URLs (what the rest of the settings use) are given the psycopg 3
    driver SQLAlchemy needs; the embedded profile keeps its own file even when a
    database URL is set for table sources.
    """
    url = db.control_url(settings, "retraining.db")
    if settings.profile is Profile.PRODUCTION and not url.startswith("postgresql+"):
        raise ConfigError(
            f"the retraining ledger needs a PostgreSQL URL, got {settings.database_url!r}"
        )
    return url


def ledger_engine(settings: Settings) -> Engine:
    """The engine on the ledger (shared per process), its tables created or upgraded."""
    engine = db.get_engine(ledger_url(settings), serialise_writers=True)
    db.ensure_schema(engine, _metadata, upgrade=_upgrade, lock="mlops.retraining.schema")
    return engine


@contextmanager
def open_ledger(settings: Settings) -> Iterator[Engine]:
    """`ledger_engine` as a context (the engine is shared: nothing to release on exit)."""
    yield ledger_engine(settings)


def _upgrade(conn: Connection) -> None:
    """Add the columns of `_metadata` an older ledger lacks (all nullable, no default).

    Runs under the schema lock, so two processes never both add a column.
    """
    inspector = inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table in _metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
            )
            logger.info("retraining ledger: added column %s.%s", table.name, column.name)


def locked(engine: Engine, name: str) -> AbstractContextManager[Connection]:
    """A transaction that holds the lock of `name` (a model) until it commits."""
    return db.begin(engine, lock=f"mlops.retraining.{name}")


# --------------------------------------------------------------------------- rows


def alarm_of(row: Row[Any]) -> AlarmRecord:
    return AlarmRecord.model_validate(dict(row._mapping))


def run_of(row: Row[Any]) -> RetrainRun:
    return RetrainRun.model_validate(dict(row._mapping))


def find_alarm(conn: Connection, key: str) -> AlarmRecord | None:
    row = conn.execute(select(alarms).where(alarms.c.key == key)).first()
    return None if row is None else alarm_of(row)


def find_run(conn: Connection, key: str) -> RetrainRun | None:
    row = conn.execute(select(runs).where(runs.c.key == key)).first()
    return None if row is None else run_of(row)


def last_run(conn: Connection, model: str) -> RetrainRun | None:
    """The latest retraining of the model that did not fail (running or finished)."""
    row = conn.execute(
        select(runs)
        .where(runs.c.model_name == model, runs.c.status != RunStatus.FAILED.value)
        .order_by(runs.c.started_at.desc())
        .limit(1)
    ).first()
    return None if row is None else run_of(row)


def burst_head(conn: Connection, model: str) -> AlarmRecord | None:
    """The latest drift alarm that was not itself merged into another one."""
    row = conn.execute(
        select(alarms)
        .where(
            alarms.c.model_name == model,
            alarms.c.trigger == RetrainTrigger.DRIFT.value,
            alarms.c.outcome != GuardOutcome.DEBOUNCED.value,
        )
        .order_by(alarms.c.received_at.desc())
        .limit(1)
    ).first()
    return None if row is None else alarm_of(row)


def taken_over_by(conn: Connection, key: str) -> tuple[str, ...]:
    """The alarms a retraining took over (resolved), sorted."""
    taken = conn.execute(select(alarms.c.key).where(alarms.c.resolved_by == key)).scalars()
    return tuple(sorted(taken.all()))


def insert_alarm(
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
        alarms.insert().values(
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


def insert_run(conn: Connection, **values: object) -> None:
    """Open a retraining run (status `running`, its first heartbeat at its start)."""
    values.setdefault("heartbeat_at", values["started_at"])
    conn.execute(runs.insert().values(status=RunStatus.RUNNING.value, **values))


def waiting() -> ColumnElement[bool]:
    """Alarms a later retraining takes over (`rules.is_pending`), not yet taken over."""
    short_of_data = and_(
        alarms.c.outcome == GuardOutcome.INSUFFICIENT_DATA.value,
        alarms.c.trigger == RetrainTrigger.DRIFT.value,
    )
    return and_(
        or_(alarms.c.outcome.in_([o.value for o in PENDING_OUTCOMES]), short_of_data),
        alarms.c.resolved_by.is_(None),
    )


def take_over_pending(conn: Connection, model: str, key: str, now: datetime) -> tuple[str, ...]:
    """Resolve every pending alarm of the model by the retraining `key`."""
    pending = (
        conn.execute(select(alarms.c.key).where(alarms.c.model_name == model, waiting()))
        .scalars()
        .all()
    )
    if pending:
        conn.execute(
            update(alarms).where(alarms.c.key.in_(pending)).values(resolved_by=key, resolved_at=now)
        )
    return tuple(sorted(pending))


# --------------------------------------------------------------------------- writes


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
    or `RunStatus.FAILED`; fields left None keep their value. Recording `running` is a
    heartbeat too. A run that ends after it was expired records its real outcome.
    """
    values: dict[str, object] = {"status": status}
    if status != RunStatus.RUNNING.value:
        values["finished_at"] = now
    else:
        values["heartbeat_at"] = now
    if detail:
        values["detail"] = detail
    if rows is not None:
        values["rows"] = rows
    if batch_sha256 is not None:
        values["batch_sha256"] = batch_sha256
    if data_end is not None:
        values["data_end"] = data_end
    with ledger_engine(settings).begin() as conn:
        done = conn.execute(update(runs).where(runs.c.key == key).values(**values))
        if done.rowcount == 0:
            raise ConfigError(f"no retraining run {key!r} in the ledger")


def beat(settings: Settings, key: str, *, now: datetime) -> bool:
    """The running retraining `key` is alive at `now`. False when the ledger no longer
    says it runs (it ended, or expired: its process was taken for dead)."""
    with ledger_engine(settings).begin() as conn:
        done = conn.execute(
            update(runs)
            .where(runs.c.key == key, runs.c.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=now)
        )
    return done.rowcount > 0


def expire_run(settings: Settings, key: str, reason: str, *, now: datetime) -> ExpiredRun | None:
    """Mark a retraining recorded as running failed (its process is gone), and reopen
    what it held: the alarms it took over, the requests its run or its cooldown held
    back (`held_by`), and its own request when that was a drift alarm become pending,
    so the next retraining that proceeds takes them over.

    Compare-and-set under the model's lock: a run that ended meanwhile (or that another
    process expired first) is left as it is and None is returned.
    """
    moment = utc_or_none(now)
    assert moment is not None
    engine = ledger_engine(settings)
    with engine.connect() as conn:
        found = find_run(conn, key)
    if found is None or not found.running:
        return None
    with locked(engine, found.model_name) as conn:
        run = find_run(conn, key)
        if run is None or not run.running:
            return None
        conn.execute(
            update(runs)
            .where(runs.c.key == key, runs.c.status == RunStatus.RUNNING.value)
            .values(
                status=RunStatus.FAILED.value,
                finished_at=moment,
                detail=f"expired: {reason}",
            )
        )
        reopened = _reopen(conn, run, reason, moment)
    logger.warning("retraining %s of %s expired: %s", key, run.model_name, reason)
    return ExpiredRun(run=run, reason=reason, expired_at=moment, reopened=reopened)


def _reopen(conn: Connection, run: RetrainRun, reason: str, now: datetime) -> tuple[str, ...]:
    held = conn.execute(
        select(alarms).where(
            alarms.c.model_name == run.model_name,
            or_(
                alarms.c.resolved_by == run.key,
                alarms.c.held_by == run.key,
                and_(alarms.c.key == run.key, alarms.c.trigger == RetrainTrigger.DRIFT.value),
            ),
        )
    ).all()
    note = f" | reopened {now:%Y-%m-%d %H:%M:%S} UTC: retraining {run.key} expired ({reason})"
    reopened: list[str] = []
    for alarm in map(alarm_of, held):
        if alarm.resolved_by not in (None, run.key):
            continue  # a later retraining took it over already
        outcome = (
            alarm.outcome if is_pending(alarm.outcome, alarm.trigger) else GuardOutcome.DEFERRED
        )
        conn.execute(
            update(alarms)
            .where(alarms.c.key == alarm.key)
            .values(
                outcome=outcome.value,
                resolved_by=None,
                resolved_at=None,
                detail=alarm.detail + note,
            )
        )
        reopened.append(alarm.key)
    return tuple(sorted(reopened))


# --------------------------------------------------------------------------- reads


def pending_alarms(settings: Settings, model_name: str) -> tuple[AlarmRecord, ...]:
    """Alarms waiting for a retraining, oldest first: deferred during a rollout, held by a
    data-quality incident or reopened when the retraining that held them expired, and
    drift alarms held back for too few labelled rows, that no retraining took over yet."""
    with ledger_engine(settings).connect() as conn:
        rows = conn.execute(
            select(alarms)
            .where(alarms.c.model_name == model_name, waiting())
            .order_by(alarms.c.received_at)
        ).all()
    return tuple(alarm_of(row) for row in rows)


def oldest_waiting_alarm(settings: Settings, model_name: str) -> AlarmRecord | None:
    """The pending alarm of the model that has waited longest, or None."""
    with ledger_engine(settings).connect() as conn:
        row = conn.execute(
            select(alarms)
            .where(alarms.c.model_name == model_name, waiting())
            .order_by(alarms.c.received_at)
            .limit(1)
        ).first()
    return None if row is None else alarm_of(row)


def recent_alarms(settings: Settings, model_name: str, limit: int = 10) -> tuple[AlarmRecord, ...]:
    """The latest requests for a model, newest first (for reports)."""
    with ledger_engine(settings).connect() as conn:
        rows = conn.execute(
            select(alarms)
            .where(alarms.c.model_name == model_name)
            .order_by(alarms.c.received_at.desc())
            .limit(limit)
        ).all()
    return tuple(alarm_of(row) for row in rows)


def retrain_runs(settings: Settings, model_name: str) -> tuple[RetrainRun, ...]:
    """Every retraining run of a model, newest first."""
    with ledger_engine(settings).connect() as conn:
        rows = conn.execute(
            select(runs).where(runs.c.model_name == model_name).order_by(runs.c.started_at.desc())
        ).all()
    return tuple(run_of(row) for row in rows)


def running_retrainings(settings: Settings, model_name: str) -> tuple[RetrainRun, ...]:
    """The model's runs the ledger says are running (alive or not), oldest first."""
    with ledger_engine(settings).connect() as conn:
        rows = conn.execute(
            select(runs)
            .where(runs.c.model_name == model_name, runs.c.status == RunStatus.RUNNING.value)
            .order_by(runs.c.started_at)
        ).all()
    return tuple(run_of(row) for row in rows)


def run_of_flow_run(settings: Settings, run_id: str) -> RetrainRun | None:
    """The retraining a flow run (Prefect's id) opened, or None when it opened none."""
    with ledger_engine(settings).connect() as conn:
        row = conn.execute(
            select(runs).where(runs.c.run_id == run_id).order_by(runs.c.started_at.desc()).limit(1)
        ).first()
    return None if row is None else run_of(row)


def trained_until(settings: Settings, model_name: str) -> datetime | None:
    """The newest row the last *registered* retraining saw: later rows are new data.

    Only registered runs count: rows a candidate that was not promoted trained on are
    still new to the model in service.
    """
    with ledger_engine(settings).connect() as conn:
        latest = conn.execute(
            select(func.max(runs.c.data_end)).where(
                runs.c.model_name == model_name, runs.c.status == "registered"
            )
        ).scalar_one_or_none()
    return utc_or_none(latest)
