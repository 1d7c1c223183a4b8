"""One step of a rollout: read its state, decide on the evidence, apply, audit.

What a canary flow run does per step (the `step-rollout` task wraps it with Prefect's
logging, artifacts and events). A step is short and idempotent, so any run may take
it: the run a registration started, the scheduled `canary-rollout/resume` run, a retry.
A step for a model with no active rollout reads one registry record and returns: it
takes no lock, reads no evidence and writes nothing, so the schedule costs almost
nothing when there is nothing to do.

The evidence is read through a callable (`gather`; `read_traffic` for
`step_model_rollout`): this module sits below `serving`, whose prediction log the task
reads. `start_challenger_rollout` starts what a registration asks to roll out, and
`step_model_rollout` takes a step with the deployment's lock and audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
from mlflow import MlflowClient
from pydantic import BaseModel, ConfigDict

from mlops.registry.client import CHALLENGER, version_by_alias
from mlops.rollout.actions import try_apply_decision
from mlops.rollout.audit import AuditTrail, audit_url
from mlops.rollout.evidence import StageEvidence, compute_evidence
from mlops.rollout.lock import RolloutLock
from mlops.rollout.policy import RolloutAction, RolloutDecision, decide
from mlops.rollout.state import (
    RolloutState,
    RolloutStatus,
    read_rollout,
    start_rollout,
    utc_now,
)
from mlops.settings import RolloutSettings, Settings

logger = logging.getLogger(__name__)

EvidenceReader = Callable[[RolloutState, datetime], StageEvidence]
"""Computes a running rollout's evidence at a moment (prediction log and labels)."""

TrafficReader = Callable[[str, datetime], tuple[pd.DataFrame, pd.DataFrame]]
"""The model's prediction log and the labels, both since a moment (`serving`'s readers)."""


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


def start_challenger_rollout(
    client: MlflowClient, model_name: str, version: str | None, settings: Settings
) -> tuple[RolloutState, str | None]:
    """Put `version` (default: the `challenger` alias's) in shadow, or resume its rollout
    (`state.start_rollout`, idempotent, under the deployment's rollout lock).

    Returns the rollout state and the version rolled out; with no version given and no
    challenger, the model's current state and None (nothing to roll out).
    """
    if version is None:
        challenger = version_by_alias(client, model_name, CHALLENGER)
        if challenger is None:
            return read_rollout(client, model_name), None
        version = str(challenger.version)
    state = start_rollout(
        client,
        model_name,
        version,
        settings.rollout.stages,
        max_duration_s=settings.rollout.max_duration_s,
        lock=RolloutLock.for_settings(settings),
    )
    return state, version


def rollout_evidence(
    client: MlflowClient,
    state: RolloutState,
    now: datetime,
    read_traffic: TrafficReader,
    *,
    alpha: float,
) -> StageEvidence:
    """The evidence of a running rollout: its version's predictions and labels since
    the version was registered."""
    assert state.challenger_version is not None
    registered = client.get_model_version(state.model_name, state.challenger_version)
    since = datetime.fromtimestamp(registered.creation_timestamp / 1000, tz=UTC)
    predictions, feedback = read_traffic(state.model_name, since)
    return compute_evidence(state, predictions, feedback, now, alpha=alpha)


def step_model_rollout(
    client: MlflowClient,
    model_name: str,
    settings: Settings,
    read_traffic: TrafficReader,
    *,
    now: datetime | None = None,
) -> RolloutStep:
    """`step_rollout` with the deployment's rollout lock and audit trail, the evidence
    read through `read_traffic` (`rollout_evidence`)."""
    audit = AuditTrail(audit_url(settings))
    try:
        return step_rollout(
            client,
            model_name,
            settings.rollout,
            lambda state, moment: rollout_evidence(
                client, state, moment, read_traffic, alpha=settings.rollout.alpha
            ),
            lock=RolloutLock.for_settings(settings),
            audit=audit,
            now=now,
        )
    finally:
        audit.close()
