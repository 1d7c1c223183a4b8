"""The state of a canary rollout, kept in the registry where every replica reads it.

A rollout lasts hours or days and is advanced by short flow runs, while any number of
serving replicas route traffic by it: so its state lives in the MLflow registry, on
the registered model, never only in a process's memory. It is one JSON document in
the tag `rollout.state` (one write, so a replica never reads half an update), plus
read-only mirrors of its main fields (`rollout.status`, `rollout.challenger_version`,
`rollout.stage`, `rollout.share`, `rollout.reason`) for people browsing the MLflow UI.

Writers do not lock: two flow runs advancing the same rollout at once would race
(last write wins). The rollout flow is expected to run one at a time per model
(a Prefect concurrency limit); `apply_decision` re-reads the state and refuses to
apply a decision made on a state that has moved since.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import StrEnum

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.errors import PipelineError
from mlops.registry.client import CHALLENGER, CHAMPION, version_by_alias

logger = logging.getLogger(__name__)

STATE_TAG = "rollout.state"
"""The authoritative rollout state: a JSON document of `RolloutState`."""
MIRROR_TAGS = ("status", "challenger_version", "stage", "share", "reason")
"""Fields copied to `rollout.<field>` tags for people; never read back."""


class RolloutError(PipelineError):
    """A rollout operation that does not fit the rollout's current state."""


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

    @property
    def active(self) -> bool:
        """Running or paused: a challenger is under evaluation."""
        return self.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED)


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


def write_rollout(client: MlflowClient, state: RolloutState) -> None:
    """Store a rollout state on its registered model (the JSON tag last, in one write)."""
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
) -> RolloutState:
    """Start rolling out `challenger_version` at the first stage (shadow when its share is 0).

    Idempotent: when a rollout of the same version exists (running, paused or finished)
    it is returned unchanged, so a retried task neither restarts a rollout nor reopens
    a decided one. A rollout of another version is replaced (a newer challenger wins).
    The `challenger` alias is set to the version. A version that is already the
    champion has nothing to roll out: the current state is returned and nothing written.

    Raises:
        RolloutError: the stages are not increasing shares in [0, 1].
        MlflowException: the model version does not exist.
    """
    _check_stages(stages)
    version = str(client.get_model_version(model_name, challenger_version).version)
    current = read_rollout(client, model_name)
    if current.challenger_version == version and current.status is not RolloutStatus.IDLE:
        logger.info("model %s v%s: rollout already %s", model_name, version, current.status)
        return current
    champion = version_by_alias(client, model_name, CHAMPION)
    if champion is not None and str(champion.version) == version:
        logger.info("model %s v%s is the champion: nothing to roll out", model_name, version)
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
    )
    write_rollout(client, state)
    logger.info("model %s v%s: rollout started at share %.2f", model_name, version, stages[0])
    return state


def pause_rollout(
    client: MlflowClient, model_name: str, reason: str, *, now: datetime | None = None
) -> RolloutState:
    """Pause a running rollout: the challenger gets no traffic (not even mirrored) and waits.

    Pausing a paused rollout returns it unchanged.

    Raises:
        RolloutError: there is no running or paused rollout.
    """
    state = read_rollout(client, model_name)
    if state.status is RolloutStatus.PAUSED:
        return state
    if state.status is not RolloutStatus.RUNNING:
        raise RolloutError(f"model {model_name}: no running rollout to pause ({state.status})")
    paused = state.model_copy(
        update={"status": RolloutStatus.PAUSED, "reason": reason, "updated_at": now or utc_now()}
    )
    write_rollout(client, paused)
    logger.info("model %s v%s: rollout paused: %s", model_name, state.challenger_version, reason)
    return paused


def resume_rollout(
    client: MlflowClient, model_name: str, *, now: datetime | None = None
) -> RolloutState:
    """Resume a paused rollout at the stage it was in; the stage starts again from now.

    Restarting the stage's clock (and its prediction count) is the conservative choice:
    a stage's minimum time and predictions are met by uninterrupted traffic.
    Resuming a running rollout returns it unchanged.

    Raises:
        RolloutError: there is no paused or running rollout.
    """
    state = read_rollout(client, model_name)
    if state.status is RolloutStatus.RUNNING:
        return state
    if state.status is not RolloutStatus.PAUSED:
        raise RolloutError(f"model {model_name}: no paused rollout to resume ({state.status})")
    at = now or utc_now()
    resumed = state.model_copy(
        update={
            "status": RolloutStatus.RUNNING,
            "reason": "resumed",
            "stage_started_at": at,
            "updated_at": at,
        }
    )
    write_rollout(client, resumed)
    logger.info("model %s v%s: rollout resumed", model_name, state.challenger_version)
    return resumed


def _check_stages(stages: tuple[float, ...]) -> None:
    if not stages:
        raise RolloutError("a rollout needs at least one stage")
    if any(not 0.0 <= share <= 1.0 for share in stages):
        raise RolloutError(f"stage shares must lie in [0, 1]: {stages}")
    if any(b <= a for a, b in zip(stages, stages[1:], strict=False)):
        raise RolloutError(f"stage shares must increase: {stages}")
