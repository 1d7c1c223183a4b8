"""Rollout decisions made true in the registry, and what people do by hand.

`apply_decision` applies a decision of the policy (`mlops.rollout.policy.decide`):
aliases, version tags and the rollout state, compare-and-set under the model's
rollout lock (`mlops.rollout.lock`), so a decision made on a state that has moved since
is a logged no-op and two steppers never both apply. People act through `promote_now`,
`rollback_now` and `restore_champion`; their decisions go to the same audit trail.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlops.registry.client import CHALLENGER, CHAMPION, version_by_alias
from mlops.rollout.lock import RolloutLock, default_lock
from mlops.rollout.policy import RolloutAction, RolloutDecision
from mlops.rollout.state import (
    RolloutError,
    RolloutState,
    RolloutStatus,
    read_rollout,
    utc_now,
    write_rollout,
)

logger = logging.getLogger(__name__)

ROLLED_BACK_REASON_TAG = "rollout.rolled_back_reason"
PROMOTED_REASON_TAG = "rollout.promoted_reason"
RESTORED_REASON_TAG = "rollout.restored_reason"
DECIDED_BY_TAG = "rollout.decided_by"


def apply_decision(
    client: MlflowClient,
    state: RolloutState,
    decision: RolloutDecision,
    *,
    lock: RolloutLock | None = None,
) -> RolloutState:
    """Make a policy decision true in the registry and return the new rollout state.

    Idempotent and compare-and-set: under the model's rollout lock the state is read
    again, and a decision made on a state that has moved since (another revision,
    stage, status or version) changes nothing (logged). A hold changes nothing either.
    Promotion moves `champion` to the challenger and removes `challenger`; rollback
    removes `challenger` and tags the version with the reason; the aliases move before
    the state is written, so a crash in between is repaired by deciding and applying
    again.
    """
    return try_apply_decision(client, state, decision, lock=lock)[0]


def try_apply_decision(
    client: MlflowClient,
    state: RolloutState,
    decision: RolloutDecision,
    *,
    lock: RolloutLock | None = None,
) -> tuple[RolloutState, bool]:
    """`apply_decision`, also saying whether the decision was applied (False: a hold or a
    stale decision, nothing written): only an applied decision is audited and announced."""
    if decision.action is RolloutAction.HOLD:
        return read_rollout(client, state.model_name), False
    lock = lock or default_lock()
    with lock.hold(state.model_name):
        current = read_rollout(client, state.model_name)
        if not _still_applies(current, decision):
            logger.info(
                "model %s: %s of v%s decided at stage %d (revision %s) no longer applies "
                "(rollout is %s, v%s, stage %d, revision %d): nothing done",
                decision.model_name,
                decision.action,
                decision.challenger_version,
                decision.from_stage,
                decision.from_revision,
                current.status,
                current.challenger_version,
                current.stage,
                current.revision,
            )
            return current, False
        return _apply(client, current, decision, lock), True


def _still_applies(current: RolloutState, decision: RolloutDecision) -> bool:
    """The state a decision was made on is still the stored one."""
    statuses = (
        (RolloutStatus.RUNNING, RolloutStatus.PAUSED)
        if decision.expired
        else (RolloutStatus.RUNNING,)
    )
    return (
        current.status in statuses
        and current.challenger_version == decision.challenger_version
        and current.stage == decision.from_stage
        and (decision.from_revision is None or current.revision == decision.from_revision)
    )


def promote_now(
    client: MlflowClient,
    model_name: str,
    actor: str,
    reason: str,
    *,
    now: datetime | None = None,
    lock: RolloutLock | None = None,
) -> RolloutDecision:
    """A person promotes the challenger now, whatever the rollout's stage or status.

    Returns the decision (record it in the audit trail); `read_rollout` gives the new
    state. Promoting an already promoted rollout returns a hold and changes nothing.

    Raises:
        RolloutError: there is no challenger to promote.
    """
    return _manual(client, model_name, RolloutAction.PROMOTE, actor, reason, now or utc_now(), lock)


def rollback_now(
    client: MlflowClient,
    model_name: str,
    actor: str,
    reason: str,
    *,
    now: datetime | None = None,
    lock: RolloutLock | None = None,
) -> RolloutDecision:
    """A person rolls the challenger back now (its version is tagged with the reason).

    Returns the decision (record it in the audit trail). Rolling back an already
    rolled-back rollout returns a hold and changes nothing.

    Raises:
        RolloutError: there is no challenger to roll back.
    """
    return _manual(
        client, model_name, RolloutAction.ROLLBACK, actor, reason, now or utc_now(), lock
    )


def restore_champion(
    client: MlflowClient,
    model_name: str,
    version: str,
    actor: str,
    reason: str,
    *,
    now: datetime | None = None,
    lock: RolloutLock | None = None,
) -> RolloutDecision:
    """A person makes an earlier version the champion again (the undo of a promotion).

    Serving replicas follow the alias within their poll interval. Returns the decision
    (record it in the audit trail); restoring the version that already is the champion
    returns a hold and changes nothing.

    Raises:
        RolloutError: the version does not exist, or a rollout is in progress (roll the
            challenger back first: a restore must not race the rollout's decisions).
    """
    lock = lock or default_lock()
    with lock.hold(model_name):
        return _restore(client, model_name, version, actor, reason, now or utc_now())


def _restore(
    client: MlflowClient, model_name: str, version: str, actor: str, reason: str, now: datetime
) -> RolloutDecision:
    state = read_rollout(client, model_name)
    if state.active:
        raise RolloutError(
            f"model {model_name}: the rollout of v{state.challenger_version} is in progress; "
            "roll it back before restoring a champion"
        )
    try:
        client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RolloutError(f"model {model_name} has no version {version}") from exc
    champion = version_by_alias(client, model_name, CHAMPION)
    before = None if champion is None else str(champion.version)
    done = before == version
    decision = RolloutDecision(
        model_name=model_name,
        challenger_version=version,
        action=RolloutAction.HOLD if done else RolloutAction.RESTORE,
        reason=f"v{version} already is the champion" if done else reason,
        from_stage=state.stage,
        to_stage=state.stage,
        to_share=0.0,
        evidence={"manual": True, "champion_before": before},
        decided_at=now,
        actor=actor,
    )
    if done:
        return decision
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, RESTORED_REASON_TAG, reason)
    client.set_model_version_tag(model_name, version, DECIDED_BY_TAG, actor)
    logger.warning(
        "model %s: champion restored to v%s (was v%s): %s", model_name, version, before, reason
    )
    return decision


def _manual(
    client: MlflowClient,
    model_name: str,
    action: RolloutAction,
    actor: str,
    reason: str,
    now: datetime,
    lock: RolloutLock | None,
) -> RolloutDecision:
    lock = lock or default_lock()
    with lock.hold(model_name):
        state = read_rollout(client, model_name)
        return _manual_locked(client, state, action, actor, reason, now, lock)


def _manual_locked(
    client: MlflowClient,
    state: RolloutState,
    action: RolloutAction,
    actor: str,
    reason: str,
    now: datetime,
    lock: RolloutLock,
) -> RolloutDecision:
    model_name = state.model_name
    version = state.challenger_version if state.active else None
    if version is None:
        challenger = version_by_alias(client, model_name, CHALLENGER)
        champion = version_by_alias(client, model_name, CHAMPION)
        if challenger is not None and (
            champion is None or str(champion.version) != str(challenger.version)
        ):
            version = str(challenger.version)
    done = RolloutStatus.PROMOTED if action is RolloutAction.PROMOTE else RolloutStatus.ROLLED_BACK
    if version is None and state.status is done:
        logger.info("model %s v%s: already %s", model_name, state.challenger_version, done)
        return RolloutDecision(
            model_name=model_name,
            challenger_version=state.challenger_version,
            action=RolloutAction.HOLD,
            reason=f"already {done}",
            from_stage=state.stage,
            to_stage=state.stage,
            to_share=state.share,
            evidence={"manual": True, "status_before": state.status.value},
            decided_at=now,
            actor=actor,
        )
    if version is None:
        raise RolloutError(f"model {model_name}: no challenger to {action}")
    made = RolloutDecision(
        model_name=model_name,
        challenger_version=version,
        action=action,
        reason=reason,
        from_stage=state.stage,
        to_stage=state.stage,
        to_share=1.0 if action is RolloutAction.PROMOTE else 0.0,
        evidence={"manual": True, "status_before": state.status.value},
        decided_at=now,
        actor=actor,
        from_revision=state.revision,
        from_share=state.share,
    )
    if state.challenger_version != version:  # no rollout of it: the decision starts its record
        state = RolloutState(
            model_name=model_name,
            challenger_version=version,
            stage=state.stage,
            revision=state.revision,
        )
    _apply(client, state, made, lock)
    return made


def _finished(
    state: RolloutState, status: RolloutStatus, decision: RolloutDecision
) -> RolloutState:
    """The state of a rollout the decision ended: the challenger answers nothing any more."""
    return state.model_copy(
        update={
            "status": status,
            "share": 0.0,
            "shadow": False,
            "reason": decision.reason,
            "updated_at": decision.decided_at,
        }
    )


def _apply(
    client: MlflowClient, state: RolloutState, decision: RolloutDecision, lock: RolloutLock
) -> RolloutState:
    """Move the aliases and write the state (the caller holds the lock; `state` is current)."""
    name, version = state.model_name, decision.challenger_version
    assert version is not None
    if decision.action is RolloutAction.PROMOTE:
        client.set_registered_model_alias(name, CHAMPION, version)
        _clear_challenger(client, name, version)
        client.set_model_version_tag(name, version, PROMOTED_REASON_TAG, decision.reason)
        client.set_model_version_tag(name, version, DECIDED_BY_TAG, decision.actor)
        new = _finished(state, RolloutStatus.PROMOTED, decision)
        logger.info("model %s v%s promoted to champion: %s", name, version, decision.reason)
    elif decision.action is RolloutAction.ROLLBACK:
        _clear_challenger(client, name, version)
        client.set_model_version_tag(name, version, ROLLED_BACK_REASON_TAG, decision.reason)
        client.set_model_version_tag(name, version, DECIDED_BY_TAG, decision.actor)
        new = _finished(state, RolloutStatus.ROLLED_BACK, decision)
        logger.warning("model %s v%s rolled back: %s", name, version, decision.reason)
    elif decision.action is RolloutAction.ADVANCE:
        new = state.model_copy(
            update={
                "stage": decision.to_stage,
                "share": decision.to_share,
                "shadow": decision.to_share == 0.0,
                "stage_started_at": decision.decided_at,
                "updated_at": decision.decided_at,
                "reason": decision.reason,
            }
        )
        logger.info("model %s v%s: %s", name, version, decision.reason)
    else:
        return state
    return write_rollout(client, new, lock=lock)


def _clear_challenger(client: MlflowClient, name: str, version: str) -> None:
    """Remove `challenger` if it still names this version (a newer one keeps it)."""
    holder = version_by_alias(client, name, CHALLENGER)
    if holder is not None and str(holder.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
