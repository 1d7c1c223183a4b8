"""The canary rollout: shadow → 5 % → 25 % → 50 % → 100 %, promoted or rolled back on evidence.

The rollout's state lives in the registry (see `mlops.rollout.state`), never in this
process: a run watches for at most `watch_seconds`, taking a step every
`poll_seconds`, and a later run (the next one on the schedule, or a retry) picks up
exactly where it stopped. Serving replicas read the same state to split traffic.
"""

from __future__ import annotations

import time

from prefect import flow
from pydantic import BaseModel, Field

from mlops.rollout.policy import RolloutAction, RolloutDecision
from mlops.rollout.state import RolloutState, RolloutStatus
from tasks.canary import publish_history_task, start_rollout_task, step_rollout_task


class CanaryParams(BaseModel):
    """What starts or continues a rollout (the `on-registered` trigger fills `version`)."""

    model_name: str = Field(default="card_fraud", description="The registered model.")
    version: str | None = Field(
        default=None, description="The version to roll out; default: the `challenger` alias."
    )
    watch_seconds: float = Field(
        default=3600.0,
        ge=0.0,
        description="How long this run keeps stepping; 0: one step (for a schedule).",
    )
    poll_seconds: float = Field(default=30.0, gt=0.0, description="Time between two steps.")


class CanaryOutcome(BaseModel):
    """Where the rollout stands when this run ends, and what it decided meanwhile."""

    state: RolloutState
    decisions: list[RolloutDecision]

    @property
    def finished(self) -> bool:
        """Promoted or rolled back: nothing left for a later run."""
        return self.state.status in (RolloutStatus.PROMOTED, RolloutStatus.ROLLED_BACK)


@flow(name="canary-rollout")
def canary_rollout(
    params: CanaryParams = CanaryParams(),  # noqa: B008 - immutable default
) -> CanaryOutcome:
    """Start (or resume) the rollout of a challenger and advance it on the evidence."""
    state = start_rollout_task(params.model_name, params.version)
    decisions: list[RolloutDecision] = []
    deadline = time.monotonic() + params.watch_seconds
    while state.active:
        state, decision = step_rollout_task(params.model_name)
        if decision is not None and decision.action is not RolloutAction.HOLD:
            decisions.append(decision)
        if not state.active or time.monotonic() + params.poll_seconds > deadline:
            break
        time.sleep(params.poll_seconds)
    publish_history_task(params.model_name)
    return CanaryOutcome(state=state, decisions=decisions)
