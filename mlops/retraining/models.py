"""The retraining ledger's vocabulary: requests, decisions, and the rows it keeps.

Plain frozen pydantic models and enums, shared by the rules (`rules`), the SQL ledger
(`ledger`) and the decisions that compose them (`guardrails`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlops.timestamps import utc_or_none


class RetrainTrigger(StrEnum):
    """What asked for a retraining."""

    DRIFT = "drift"
    SCHEDULE = "schedule"
    MANUAL = "manual"


class GuardOutcome(StrEnum):
    """What the guardrails decided for one request."""

    PROCEED = "proceed"
    SUPPRESSED = "suppressed"
    """Inside the cooldown after the last retraining, or while one runs."""
    DEBOUNCED = "debounced"
    """A repeat of a recent drift alarm, merged into it."""
    DEFERRED = "deferred"
    """A rollout is in progress (or the retraining that held it expired): recorded as
    pending for a later retraining."""
    INSUFFICIENT_DATA = "insufficient_data"
    """The retraining window holds too few new rows."""
    QUALITY_HOLD = "quality_hold"
    """A data-quality incident is open (a broken pipe, not drift): pending, so the first
    retraining that proceeds once the pipe is fixed takes it over."""


class RunStatus(StrEnum):
    """How a retraining run that the guardrails let through ended, as the ledger keeps it."""

    RUNNING = "running"
    FAILED = "failed"
    """Crashed, expired or refused before training: does not start a cooldown."""


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
        return utc_or_none(value)

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
    held_by: str | None = None
    """For a request held by a retraining (running, or its cooldown): that run's key."""
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
    held_by: str | None = None
    """The retraining run (ledger key) whose run or cooldown held this request back."""


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
    heartbeat_at: datetime | None = None
    """The last sign of life of the process training it (None: none since it started)."""

    @property
    def running(self) -> bool:
        """The ledger says it runs (whether its process is still alive is `rules`' call)."""
        return self.status == RunStatus.RUNNING.value

    @property
    def last_seen(self) -> datetime:
        """The last heartbeat, or the start when it never beat."""
        return self.heartbeat_at or self.started_at


class ExpiredRun(BaseModel):
    """A retraining recorded as running that `expire_run` marked failed."""

    model_config = ConfigDict(frozen=True)

    run: RetrainRun
    """The row as it was before it expired (status `running`)."""
    reason: str
    expired_at: datetime
    reopened: tuple[str, ...] = ()
    """Alarms it held or had taken over, pending again for the next retraining."""
