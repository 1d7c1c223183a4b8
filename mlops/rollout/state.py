"""The state of a canary rollout, kept in the registry where every replica reads it.

A rollout lasts hours or days and is advanced by short flow runs, while any number of
serving replicas route traffic by it: so its state lives in the MLflow registry, on
the registered model, never only in a process's memory. It is one JSON document in
the tag `rollout.state` (one write, so a replica never reads half an update), plus
read-only mirrors of its main fields (`rollout.status`, `rollout.challenger_version`,
`rollout.stage`, `rollout.share`, `rollout.reason`) for people browsing the MLflow UI.

Every change is **compare-and-set**: the state carries a `revision`, and
`write_rollout` takes the model's rollout lock (`mlops.rollout.lock`: a PostgreSQL
advisory lock, or SQLite `BEGIN IMMEDIATE`), reads the stored state, refuses a state
derived from an older revision (`StaleRolloutError`) and stores the new one with the
revision incremented. Operations that read, check and write (`start_rollout`,
`pause_rollout`, `resume_rollout`, the policy's `apply_decision`) hold the lock across
all three, so two processes stepping one rollout never lose an update. Readers (the
serving replicas) take no lock: the JSON tag is written in one piece.

Every field has a default, so a state tag written by an older version still parses.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.errors import PipelineError
from mlops.registry.client import CHALLENGER, CHAMPION, version_by_alias
from mlops.rollout.lock import RolloutLock, default_lock
from mlops.settings import RolloutSettings

logger = logging.getLogger(__name__)

STATE_TAG = "rollout.state"
"""The authoritative rollout state: a JSON document of `RolloutState`."""
MIRROR_TAGS = ("status", "challenger_version", "stage", "share", "reason")
"""Fields copied to `rollout.<field>` tags for people; never read back."""


class RolloutError(PipelineError):
    """A rollout operation that does not fit the rollout's current state."""


class StaleRolloutError(RolloutError):
    """A state change derived from a revision that is no longer the stored one."""

    def __init__(self, model_name: str, expected: int, found: int) -> None:
        super().__init__(
            f"model {model_name}: rollout state changed meanwhile (revision {found}, "
            f"this change was made on revision {expected}); read it again"
        )
        self.model_name = model_name
        self.expected = expected
        self.found = found


class Variant(StrEnum):
    """Which model answers (or scores) a request."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


class RolloutStatus(StrEnum):
    """Where a rollout stands."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class RolloutState(BaseModel):
    """What every replica needs to route, and what the policy needs to decide.

    `share` is the challenger's share of *answered* traffic; in shadow it is 0 and
    `shadow` is true (the challenger scores mirrored requests without answering).
    A paused rollout sends the challenger nothing, not even mirrored traffic.
    """

    model_config = ConfigDict(frozen=True)

    model_name: str
    challenger_version: str | None = None
    status: RolloutStatus = RolloutStatus.IDLE
    stage: int = 0
    """Index into the rollout settings' stages."""
    share: float = 0.0
    shadow: bool = False
    stage_started_at: datetime | None = None
    updated_at: datetime | None = None
    reason: str = ""
    deadline: datetime | None = None
    """When an unfinished rollout ends by the policy ("expired without evidence")."""
    revision: int = 0
    """How many times this model's rollout state was written (compare-and-set)."""
    started_at: datetime | None = None
    paused_at: datetime | None = None
    """When a paused rollout was paused (it expires `paused_expiry_s` later)."""

    @property
    def active(self) -> bool:
        """Running or paused: a challenger is under evaluation."""
        return self.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED)

    def holds_retraining(self, now: datetime) -> bool:
        """An active rollout defers retraining, until its deadline: a rollout past its
        deadline is about to expire and must not hold drift alarms back any longer."""
        return self.active and (self.deadline is None or now < self.deadline)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (every rollout timestamp is)."""
    return datetime.now(UTC)


def read_rollout(client: MlflowClient, model_name: str) -> RolloutState:
    """The rollout state of a registered model; IDLE when there is none (or no such model).

    An unreadable state tag (written by hand, or by an incompatible version) is logged
    and read as IDLE: routing then sends everything to the champion, the safe side.
    """
    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return RolloutState(model_name=model_name)
        raise
    raw = (model.tags or {}).get(STATE_TAG)
    if raw is None:
        return RolloutState(model_name=model_name)
    try:
        state = RolloutState.model_validate_json(raw)
    except ValidationError as exc:
        logger.error("model %s: unreadable %s tag, read as idle: %s", model_name, STATE_TAG, exc)
        return RolloutState(model_name=model_name)
    if state.model_name != model_name:
        logger.error("model %s: %s names model %s, read as idle", model_name, STATE_TAG, state)
        return RolloutState(model_name=model_name)
    return state


def write_rollout(
    client: MlflowClient, state: RolloutState, *, lock: RolloutLock | None = None
) -> RolloutState:
    """Compare-and-set a rollout state on its registered model; returns what was stored.

    `state.revision` is the revision the new state was derived from (a state read with
    `read_rollout`, changed with `model_copy`): under the model's lock the stored state
    is read again, and the new one is stored with the revision incremented only if the
    stored revision is still that one.

    Args:
        lock: the rollout lock; default: the one of `get_settings()`.

    Raises:
        StaleRolloutError: the stored state has moved on since `state` was read; nothing
            is written.
    """
    lock = lock or default_lock()
    with lock.hold(state.model_name):
        current = read_rollout(client, state.model_name)
        if current.revision != state.revision:
            raise StaleRolloutError(state.model_name, state.revision, current.revision)
        written = state.model_copy(update={"revision": state.revision + 1})
        _store(client, written)
    return written


def _store(client: MlflowClient, state: RolloutState) -> None:
    """The tags of a state: the mirrors first, the authoritative JSON tag last, in one write."""
    for field in MIRROR_TAGS:
        value = getattr(state, field)
        client.set_registered_model_tag(
            state.model_name, f"rollout.{field}", "" if value is None else str(value)
        )
    client.set_registered_model_tag(state.model_name, STATE_TAG, state.model_dump_json())


def start_rollout(
    client: MlflowClient,
    model_name: str,
    challenger_version: str,
    stages: tuple[float, ...],
    *,
    now: datetime | None = None,
    max_duration_s: float | None = None,
    lock: RolloutLock | None = None,
) -> RolloutState:
    """Start rolling out `challenger_version` at the first stage (shadow when its share is 0).

    The rollout's deadline is `max_duration_s` (default: `RolloutSettings`') from now:
    with no verdict by then, the policy rolls it back ("expired without evidence").

    Idempotent: when a rollout of the same version exists (running, paused or finished)
    it is returned unchanged, so a retried task neither restarts a rollout nor reopens
    a decided one. A rollout of another version is replaced (a newer challenger wins).
    The `challenger` alias is set to the version. A version that is already the
    champion has nothing to roll out: the current state is returned and nothing written;
    so is a version older than the champion or the active challenger (a registration
    handled late must not bring an older version back).

    Raises:
        RolloutError: the stages are not increasing shares in [0, 1].
        MlflowException: the model version does not exist.
    """
    _check_stages(stages)
    version = str(client.get_model_version(model_name, challenger_version).version)
    lock = lock or default_lock()
    with lock.hold(model_name):
        return _start(client, model_name, version, stages, now, max_duration_s, lock)


def _start(
    client: MlflowClient,
    model_name: str,
    version: str,
    stages: tuple[float, ...],
    now: datetime | None,
    max_duration_s: float | None,
    lock: RolloutLock,
) -> RolloutState:
    current = read_rollout(client, model_name)
    if current.challenger_version == version and current.status is not RolloutStatus.IDLE:
        logger.info("model %s v%s: rollout already %s", model_name, version, current.status)
        return current
    champion = version_by_alias(client, model_name, CHAMPION)
    if champion is not None and str(champion.version) == version:
        logger.info("model %s v%s is the champion: nothing to roll out", model_name, version)
        return current
    # A registration handled late (its run waited for the deployment's concurrency slot,
    # a redelivered event) must not bring an older version back: the newer one wins.
    newer = [
        v
        for v in (
            current.challenger_version if current.active else None,
            None if champion is None else str(champion.version),
        )
        if v is not None and int(v) > int(version)
    ]
    if newer:
        logger.warning(
            "model %s v%s: not rolled out, v%s is newer", model_name, version, max(newer, key=int)
        )
        return current
    if current.active:
        logger.warning(
            "model %s: rollout of v%s replaced by v%s",
            model_name,
            current.challenger_version,
            version,
        )
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    at = now or utc_now()
    duration = RolloutSettings().max_duration_s if max_duration_s is None else max_duration_s
    state = RolloutState(
        model_name=model_name,
        challenger_version=version,
        status=RolloutStatus.RUNNING,
        stage=0,
        share=stages[0],
        shadow=stages[0] == 0.0,
        stage_started_at=at,
        updated_at=at,
        reason="rollout started",
        started_at=at,
        deadline=at + timedelta(seconds=duration),
        revision=current.revision,
    )
    state = write_rollout(client, state, lock=lock)
    logger.info("model %s v%s: rollout started at share %.2f", model_name, version, stages[0])
    return state


def pause_rollout(
    client: MlflowClient,
    model_name: str,
    reason: str,
    *,
    now: datetime | None = None,
    lock: RolloutLock | None = None,
) -> RolloutState:
    """Pause a running rollout: the challenger gets no traffic (not even mirrored) and waits.

    Pausing a paused rollout returns it unchanged. A paused rollout expires (is rolled
    back by the policy) `paused_expiry_s` after it was paused.

    Raises:
        RolloutError: there is no running or paused rollout.
    """
    lock = lock or default_lock()
    with lock.hold(model_name):
        return _pause(client, model_name, reason, now or utc_now(), lock)


def _pause(
    client: MlflowClient, model_name: str, reason: str, now: datetime, lock: RolloutLock
) -> RolloutState:
    state = read_rollout(client, model_name)
    if state.status is RolloutStatus.PAUSED:
        return state
    if state.status is not RolloutStatus.RUNNING:
        raise RolloutError(f"model {model_name}: no running rollout to pause ({state.status})")
    paused = state.model_copy(
        update={
            "status": RolloutStatus.PAUSED,
            "reason": reason,
            "updated_at": now,
            "paused_at": now,
        }
    )
    paused = write_rollout(client, paused, lock=lock)
    logger.info("model %s v%s: rollout paused: %s", model_name, state.challenger_version, reason)
    return paused


def resume_rollout(
    client: MlflowClient,
    model_name: str,
    *,
    now: datetime | None = None,
    lock: RolloutLock | None = None,
) -> RolloutState:
    """Resume a paused rollout at the stage it was in; the stage starts again from now.

    Restarting the stage's clock (and its prediction count) is the conservative choice:
    a stage's minimum time and predictions are met by uninterrupted traffic.
    Resuming a running rollout returns it unchanged. The deadline does not move: time
    spent paused counts against it.

    Raises:
        RolloutError: there is no paused or running rollout.
    """
    lock = lock or default_lock()
    with lock.hold(model_name):
        return _resume(client, model_name, now or utc_now(), lock)


def _resume(
    client: MlflowClient, model_name: str, now: datetime, lock: RolloutLock
) -> RolloutState:
    state = read_rollout(client, model_name)
    if state.status is RolloutStatus.RUNNING:
        return state
    if state.status is not RolloutStatus.PAUSED:
        raise RolloutError(f"model {model_name}: no paused rollout to resume ({state.status})")
    resumed = state.model_copy(
        update={
            "status": RolloutStatus.RUNNING,
            "reason": "resumed",
            "stage_started_at": now,
            "updated_at": now,
            "paused_at": None,
        }
    )
    resumed = write_rollout(client, resumed, lock=lock)
    logger.info("model %s v%s: rollout resumed", model_name, state.challenger_version)
    return resumed


def _check_stages(stages: tuple[float, ...]) -> None:
    if not stages:
        raise RolloutError("a rollout needs at least one stage")
    if any(not 0.0 <= share <= 1.0 for share in stages):
        raise RolloutError(f"stage shares must lie in [0, 1]: {stages}")
    if any(b <= a for a, b in zip(stages, stages[1:], strict=False)):
        raise RolloutError(f"stage shares must increase: {stages}")
