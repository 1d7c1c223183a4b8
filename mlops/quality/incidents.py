"""Data-quality incidents as state: opened by a broken window, closed by a clean one.

An incident outlives the monitor run that saw it ("waiting is state, not sleep"): the
training pipeline's guard asks `open_incident` before it retrains, so no retraining
learns from a broken pipe while it lasts. One row per incident in a small table
beside the retraining ledger (SQLite under the state directory, the PostgreSQL database
of `MLOPS_DATABASE_URL` in production); at most one incident per model is open.

* a degraded window opens an incident, or extends the open one (`last_seen`, reason);
* the first clean window closes it;
* a window too small to judge changes nothing;
* an open incident no window has seen for `quality.incident_stale_s` no longer holds
  anything (the monitor stopped looking: it must not block retraining for ever).

The table shares the ledger's engine (`mlops.db`): on SQLite every transaction is
`BEGIN IMMEDIATE`, one writer at a time, so two monitor runs never both open an incident.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from mlops import db
from mlops.db import UTCDateTime
from mlops.quality.check import DataQualityReport, QualityStatus
from mlops.retraining import ledger_url
from mlops.settings import Settings
from mlops.timestamps import as_utc

logger = logging.getLogger(__name__)


class IncidentChange(StrEnum):
    """What a window did to the model's incident."""

    OPENED = "opened"
    CONTINUED = "continued"
    CLOSED = "closed"
    NONE = "none"


class Incident(BaseModel):
    """One data-quality incident of a model."""

    model_config = ConfigDict(frozen=True)

    key: str
    model_name: str
    model_version: str
    opened_at: datetime
    last_seen: datetime
    closed_at: datetime | None = None
    reason: str
    broken_features: tuple[str, ...] = ()
    windows: int = 1
    """Degraded windows seen so far."""

    @property
    def open(self) -> bool:
        """Not closed by a clean window yet."""
        return self.closed_at is None

    def describe(self) -> str:
        """The incident in one line: what a held alarm or a refused retraining records."""
        since = self.opened_at.isoformat(timespec="seconds")
        return f"{self.reason} (incident open since {since})"


class IncidentUpdate(BaseModel):
    """The incident after a window, and what the window changed."""

    model_config = ConfigDict(frozen=True)

    change: IncidentChange
    incident: Incident | None = None


_metadata = MetaData()
_incidents = Table(
    "data_quality_incidents",
    _metadata,
    Column("key", String(250), primary_key=True),
    Column("model_name", String(200), nullable=False, index=True),
    Column("model_version", String(64), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("reason", Text, nullable=False),
    Column("broken_features", JSON, nullable=False),
    Column("windows", Integer, nullable=False),
)


def record_window(
    settings: Settings,
    model_name: str,
    model_version: str,
    report: DataQualityReport,
    *,
    now: datetime | None = None,
) -> IncidentUpdate:
    """Fold one judged window into the model's incident state (one transaction)."""
    moment = as_utc(now or datetime.now(UTC))
    if report.status is QualityStatus.INSUFFICIENT_DATA:
        with _engine(settings).connect() as conn:
            current = _open_row(conn, model_name)
        return IncidentUpdate(change=IncidentChange.NONE, incident=current)
    with _engine(settings).begin() as conn:
        current = _open_row(conn, model_name)
        if report.degraded:
            if current is None:
                incident = Incident(
                    key=f"{model_name}:{moment.isoformat()}",
                    model_name=model_name,
                    model_version=model_version,
                    opened_at=moment,
                    last_seen=moment,
                    reason=report.reason(),
                    broken_features=report.broken_features,
                )
                conn.execute(_incidents.insert().values(**_row_values(incident)))
                logger.warning(
                    "data-quality incident opened for %s: %s", model_name, incident.reason
                )
                return IncidentUpdate(change=IncidentChange.OPENED, incident=incident)
            incident = current.model_copy(
                update={
                    "model_version": model_version,
                    "last_seen": max(moment, current.last_seen),
                    "reason": report.reason(),
                    "broken_features": report.broken_features,
                    "windows": current.windows + 1,
                }
            )
            conn.execute(
                update(_incidents)
                .where(_incidents.c.key == current.key)
                .values(**_row_values(incident))
            )
            return IncidentUpdate(change=IncidentChange.CONTINUED, incident=incident)
        if current is None:
            return IncidentUpdate(change=IncidentChange.NONE)
        closed = current.model_copy(update={"closed_at": moment})
        conn.execute(
            update(_incidents).where(_incidents.c.key == current.key).values(closed_at=moment)
        )
        logger.info("data-quality incident of %s closed by a clean window", model_name)
        return IncidentUpdate(change=IncidentChange.CLOSED, incident=closed)


def current_incident(
    settings: Settings, model_name: str, *, now: datetime | None = None
) -> Incident | None:
    """The model's open incident that still holds (seen within `incident_stale_s`), or None."""
    with _engine(settings).connect() as conn:
        incident = _open_row(conn, model_name)
    if incident is None:
        return None
    moment = as_utc(now or datetime.now(UTC))
    if moment - incident.last_seen > timedelta(seconds=settings.quality.incident_stale_s):
        return None
    return incident


def open_incident(settings: Settings, model_name: str) -> str | None:
    """Why the model's traffic is broken right now, or None when it is not.

    What the retraining guard asks: a retraining during an incident would learn from
    broken data.
    """
    incident = current_incident(settings, model_name)
    return None if incident is None else incident.describe()


def incidents(settings: Settings, model_name: str, limit: int = 10) -> tuple[Incident, ...]:
    """The model's latest incidents, newest first (open and closed)."""
    with _engine(settings).connect() as conn:
        rows = conn.execute(
            select(_incidents)
            .where(_incidents.c.model_name == model_name)
            .order_by(_incidents.c.opened_at.desc())
            .limit(limit)
        ).all()
    return tuple(_incident(row) for row in rows)


def _open_row(conn: Connection, model_name: str) -> Incident | None:
    row = conn.execute(
        select(_incidents)
        .where(and_(_incidents.c.model_name == model_name, _incidents.c.closed_at.is_(None)))
        .order_by(_incidents.c.opened_at.desc())
        .limit(1)
    ).first()
    return None if row is None else _incident(row)


def _incident(row: Row[Any]) -> Incident:
    values = dict(row._mapping)
    values["broken_features"] = tuple(values.get("broken_features") or ())
    return Incident.model_validate(values)


def _row_values(incident: Incident) -> dict[str, Any]:
    values = incident.model_dump()
    values["broken_features"] = list(incident.broken_features)
    return values


def _engine(settings: Settings) -> Engine:
    """The engine on the ledger's database (shared per process), the table created."""
    engine = db.get_engine(ledger_url(settings), serialise_writers=True)
    db.ensure_schema(engine, _metadata)
    return engine
