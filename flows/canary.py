"""The canary rollout: shadow → 5 % → 25 % → 50 % → 100 %, promoted or rolled back on evidence.

The rollout's state lives in the registry (see `mlops.rollout.state`), never in this
process, and a rollout lasts hours or days (labels arrive late): no run waits for it.
Two deployments advance it with short runs:

- `canary-rollout/on-registered` (the `mlops.model.registered` trigger) starts the
  rollout of the new version and takes one step (or watches for `watch_seconds`);
- `canary-rollout/resume` (every few minutes) takes one step of the named model's
  active rollout, with `start: false`; with no active rollout it reads one registry
  record and ends.

Steps are compare-and-set under the model's rollout lock, so the two may overlap; a
rollout with no verdict by its deadline (or paused past its expiry) is rolled back by
the next step, "expired without evidence".
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
    start: bool = Field(
        default=True,
        description="Start the rollout of `version` (or of the `challenger` alias) first; "
        "false: only advance an active rollout (the `resume` schedule).",
    )
    watch_seconds: float = Field(
        default=0.0,
        ge=0.0,
        le=900.0,
        description="How long this run keeps stepping; 0: one step. Keep it short: the "
        "`resume` schedule advances the rollout between runs.",
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
    """Start (or only resume) the rollout of a challenger and advance it on the evidence."""
    if params.start:
        start_rollout_task(params.model_name, params.version)
    decisions: list[RolloutDecision] = []
    deadline = time.monotonic() + params.watch_seconds
    while True:
        state, decision = step_rollout_task(params.model_name)
        if decision is not None and decision.action is not RolloutAction.HOLD:
            decisions.append(decision)
        if not state.active or time.monotonic() + params.poll_seconds > deadline:
            break
        time.sleep(params.poll_seconds)
    if params.start or decisions:
        publish_history_task(params.model_name)
    return CanaryOutcome(state=state, decisions=decisions)
