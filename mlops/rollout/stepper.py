"""One step of a rollout: read its state, decide on the evidence, apply, audit.

What a canary flow run does per step (the `step-rollout` task wraps it with Prefect's
logging, artifacts and events). A step is short and idempotent, so any run may take
it: the run a registration started, the scheduled `canary-rollout/resume` run, a retry.
A step for a model with no active rollout reads one registry record and returns: it
takes no lock, reads no evidence and writes nothing, so the schedule costs almost
nothing when there is nothing to do.

The evidence is read through a callable (`gather`): this module sits below `serving`,
whose prediction log the task reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from mlflow import MlflowClient
from pydantic import BaseModel, ConfigDict

from mlops.rollout.actions import try_apply_decision
from mlops.rollout.audit import AuditTrail
from mlops.rollout.evidence import StageEvidence
from mlops.rollout.lock import RolloutLock
from mlops.rollout.policy import RolloutAction, RolloutDecision, decide
from mlops.rollout.state import RolloutState, RolloutStatus, read_rollout, utc_now
from mlops.settings import RolloutSettings

logger = logging.getLogger(__name__)

EvidenceReader = Callable[[RolloutState, datetime], StageEvidence]
"""Computes a running rollout's evidence at a moment (prediction log and labels)."""


class RolloutStep(BaseModel):
    """What one step saw and did."""

    model_config = ConfigDict(frozen=True)

    state: RolloutState
    """The rollout state after the step."""
    decision: RolloutDecision | None = None
    """None when there was no active rollout (nothing was decided)."""
    applied: bool = False
    """The decision changed the registry (and was audited); False for holds and for
    decisions another stepper made stale meanwhile (a logged no-op)."""


def step_rollout(
    client: MlflowClient,
    model_name: str,
    settings: RolloutSettings,
    gather: EvidenceReader,
    *,
    lock: RolloutLock,
    audit: AuditTrail | None = None,
    now: datetime | None = None,
) -> RolloutStep:
    """Take one step of the model's rollout, if it has an active one.

    Evidence is gathered only for a running rollout (a paused one is only checked
    against its expiry and deadline). A decision other than a hold is applied
    compare-and-set; when it applied it is recorded in `audit`.
    """
    state = read_rollout(client, model_name)
    if not state.active or state.challenger_version is None:
        return RolloutStep(state=state)
    now = now or utc_now()
    evidence = gather(state, now) if state.status is RolloutStatus.RUNNING else None
    decision = decide(state, evidence, settings, now)
    if decision.action is RolloutAction.HOLD:
        return RolloutStep(state=state, decision=decision)
    after, applied = try_apply_decision(client, state, decision, lock=lock)
    if applied and audit is not None:
        audit.record(decision, model_name, state.challenger_version)
    return RolloutStep(state=after, decision=decision, applied=applied)
