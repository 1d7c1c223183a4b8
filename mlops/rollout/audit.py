"""The audit trail: every rollout decision, who or what made it, when, on which evidence.

Append-only: one SQL table (`rollout_audit`) that this module only ever inserts into.
SQLite under the state directory in the embedded profile, the production PostgreSQL
database otherwise (`mlops.db`: one engine per database, the table created once).
Recording is idempotent on the decision's id, so a retried task that records the same
decision again adds no row.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from mlops import db
from mlops.rollout.evidence import SummaryValue
from mlops.rollout.policy import RolloutDecision
from mlops.settings import Settings
from mlops.timestamps import as_utc

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10.0
"""SQLite: how long an append waits for another writer (appends are short)."""


class _Base(DeclarativeBase):
    pass


class _AuditRow(_Base):
    __tablename__ = "rollout_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(String(64), unique=True)
    model_name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    from_stage: Mapped[int] = mapped_column(Integer)
    to_stage: Mapped[int] = mapped_column(Integer)
    to_share: Mapped[float]
    actor: Mapped[str] = mapped_column(String(255))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditRecord(BaseModel):
    """One recorded decision, as `history` returns it."""

    model_config = ConfigDict(frozen=True)

    id: int
    decision_id: str
    model_name: str
    version: str | None
    action: str
    reason: str
    from_stage: int
    to_stage: int
    to_share: float
    actor: str
    decided_at: datetime
    recorded_at: datetime
    evidence: dict[str, SummaryValue]


def audit_url(settings: Settings) -> str:
    """Where the audit trail lives: SQLite in the state dir, or the production PostgreSQL."""
    return db.control_url(settings, "rollout.db")


class AuditTrail:
    """The append-only table of rollout decisions (the table is created on first use)."""

    def __init__(self, url: str) -> None:
        self.url = db.sqlalchemy_url(url)

    @property
    def engine(self) -> Engine:
        """The process's engine on the trail's database, the table created."""
        engine = db.get_engine(self.url, timeout_s=BUSY_TIMEOUT_S)
        db.ensure_schema(engine, _Base.metadata)
        return engine

    def record(
        self, decision: RolloutDecision, model_name: str, version: str | None
    ) -> AuditRecord:
        """Append one decision (or return the row already recorded for it)."""
        row = _AuditRow(
            decision_id=decision.decision_id,
            model_name=model_name,
            version=version,
            action=decision.action.value,
            reason=decision.reason,
            from_stage=decision.from_stage,
            to_stage=decision.to_stage,
            to_share=decision.to_share,
            actor=decision.actor,
            decided_at=as_utc(decision.decided_at),
            recorded_at=datetime.now(UTC),
            evidence={key: _json_safe(value) for key, value in decision.evidence.items()},
        )
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                session.add(row)
                session.commit()
            except IntegrityError:
                session.rollback()
                existing = session.scalars(
                    select(_AuditRow).where(_AuditRow.decision_id == decision.decision_id)
                ).one()
                logger.info("decision %s already recorded", decision.decision_id)
                return _as_record(existing)
            return _as_record(row)

    def history(self, model_name: str) -> list[AuditRecord]:
        """Every decision about a model, oldest first."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(_AuditRow).where(_AuditRow.model_name == model_name).order_by(_AuditRow.id)
            ).all()
            return [_as_record(row) for row in rows]

    def close(self) -> None:
        """Release the connection pool (shared with the other stores on the database)."""
        db.dispose(self.url)


def _json_safe(value: SummaryValue) -> SummaryValue:
    """JSON has no NaN or infinity (PostgreSQL refuses them): store null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_record(row: _AuditRow) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        decision_id=row.decision_id,
        model_name=row.model_name,
        version=row.version,
        action=row.action,
        reason=row.reason,
        from_stage=row.from_stage,
        to_stage=row.to_stage,
        to_share=row.to_share,
        actor=row.actor,
        # SQLite keeps no time zone: every time written here is UTC
        decided_at=as_utc(row.decided_at),
        recorded_at=as_utc(row.recorded_at),
        evidence=row.evidence,
    )
