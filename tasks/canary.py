"""Tasks of the canary rollout: start it, take one step on the evidence, report.

Every state change goes through the rollout lock of the settings (compare-and-set,
`mlops.rollout.lock`), so the run a registration started and the scheduled
`canary-rollout/resume` run may step the same rollout at the same time.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger

from mlops.events import model_resource
from mlops.registry.client import registry_client
from mlops.rollout.audit import AuditTrail, audit_url
from mlops.rollout.policy import (
    RolloutAction,
    RolloutDecision,
    decision_events,
    event_payload,
)
from mlops.rollout.state import RolloutState
from mlops.rollout.stepper import start_challenger_rollout, step_model_rollout
from mlops.settings import get_settings
from serving.prediction_log import read_feedback, read_predictions
from tasks.artifacts import artifact_key
from tasks.retry import transient_only


@task(
    name="start-rollout", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_only
)
def start_rollout_task(model_name: str, version: str | None) -> RolloutState:
    """Put `version` (default: the `challenger` alias) in shadow, or resume its rollout.

    Starting is idempotent: a rollout of the same version already under way (or
    decided) is returned as it is, so a retried or repeated run never restarts one.
    """
    settings = get_settings()
    state, version = start_challenger_rollout(
        registry_client(settings), model_name, version, settings
    )
    if version is None:
        get_run_logger().info("model %s has no challenger: nothing to roll out", model_name)
        return state
    get_run_logger().info(
        "model %s v%s: rollout %s at stage %d (share %.2f%s)",
        model_name,
        version,
        state.status.value,
        state.stage,
        state.share,
        ", shadow" if state.shadow else "",
    )
    return state


@task(
    name="step-rollout", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_only
)
def step_rollout_task(model_name: str) -> tuple[RolloutState, RolloutDecision | None]:
    """Read the evidence, decide, and make the decision true (aliases, state, audit).

    With no active rollout this reads one registry record and returns (no decision).
    Holds change nothing and are not recorded; every other decision is applied
    compare-and-set: when another run changed the rollout meanwhile it is a logged
    no-op, otherwise it is written to the audit trail and shown as an artifact, and a
    promotion, rollback or expiry emits its events.
    """
    settings = get_settings()

    def read_traffic(model: str, since: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
        predictions = read_predictions(settings, model_name=model, since=since)
        return predictions, read_feedback(settings, since=since)

    step = step_model_rollout(registry_client(settings), model_name, settings, read_traffic)
    decision, log = step.decision, get_run_logger()
    if decision is None:
        log.info("model %s: no active rollout (%s)", model_name, step.state.status.value)
        return step.state, None
    version = decision.challenger_version
    if decision.action is RolloutAction.HOLD:
        log.info("model %s v%s: hold (%s)", model_name, version, decision.reason)
        return step.state, decision
    if not step.applied:
        log.info(
            "model %s v%s: %s not applied, the rollout changed meanwhile (now %s, revision %d)",
            model_name,
            version,
            decision.action.value,
            step.state.status.value,
            step.state.revision,
        )
        return step.state, None
    (log.warning if decision.action is RolloutAction.ROLLBACK else log.info)(
        "model %s v%s: %s (%s)", model_name, version, decision.action.value, decision.reason
    )
    _publish_decision(decision)
    for name in decision_events(decision):
        emit_event(
            event=name,
            resource=model_resource(model_name),
            payload=event_payload(decision),
        )
    return step.state, decision


@task(name="publish-rollout-history")
def publish_history_task(model_name: str) -> None:
    """The model's audit trail as a table artifact: every decision, who, when, why."""
    settings = get_settings()
    history = AuditTrail(audit_url(settings)).history(model_name)
    create_table_artifact(
        key=artifact_key("rollout-audit", model_name),
        table=[
            {
                "decided at": record.decided_at.isoformat(timespec="seconds"),
                "version": record.version or "",
                "action": record.action,
                "stage": f"{record.from_stage} → {record.to_stage} ({record.to_share:.0%})",
                "by": record.actor,
                "reason": record.reason,
            }
            for record in history[-50:]
        ],
        description=f"Rollout decisions about {model_name}, oldest first (last 50)",
    )


def _publish_decision(decision: RolloutDecision) -> None:
    rows = "\n".join(f"| {key} | {value} |" for key, value in decision.evidence.items())
    create_markdown_artifact(
        key=artifact_key("rollout-decision", decision.model_name),
        markdown=(
            f"## {decision.action.value}: {decision.model_name} v{decision.challenger_version}\n\n"
            f"{decision.reason}\n\nStage {decision.from_stage} → {decision.to_stage} "
            f"(challenger share {decision.to_share:.0%}), decided by {decision.actor} at "
            f"{decision.decided_at.isoformat(timespec='seconds')}.\n\n"
            f"| evidence | value |\n|---|---|\n{rows}\n"
        ),
        description="The latest rollout decision and the evidence behind it",
    )
