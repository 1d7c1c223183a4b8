"""Tasks of the canary rollout: start it, take one step on the evidence, report."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger

from mlops.events import MODEL_PROMOTED, MODEL_ROLLED_BACK, model_resource_id
from mlops.registry.client import CHALLENGER, registry_client, version_by_alias
from mlops.rollout.audit import AuditTrail, audit_url
from mlops.rollout.evidence import compute_evidence
from mlops.rollout.policy import RolloutAction, RolloutDecision, apply_decision, decide
from mlops.rollout.state import RolloutState, RolloutStatus, read_rollout, start_rollout, utc_now
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
    client = registry_client(settings)
    if version is None:
        challenger = version_by_alias(client, model_name, CHALLENGER)
        if challenger is None:
            get_run_logger().info("model %s has no challenger: nothing to roll out", model_name)
            return read_rollout(client, model_name)
        version = str(challenger.version)
    state = start_rollout(client, model_name, version, settings.rollout.stages)
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


@task(name="step-rollout")
def step_rollout_task(model_name: str) -> tuple[RolloutState, RolloutDecision | None]:
    """Read the evidence, decide, and make the decision true (aliases, state, audit).

    Holds change nothing and are not recorded; every other decision is written to the
    audit trail and shown as an artifact, and promotion or rollback emits its event.
    """
    settings = get_settings()
    client = registry_client(settings)
    state = read_rollout(client, model_name)
    if state.status is not RolloutStatus.RUNNING or state.challenger_version is None:
        return state, None
    now = utc_now()
    registered = client.get_model_version(model_name, state.challenger_version)
    since = datetime.fromtimestamp(registered.creation_timestamp / 1000, tz=UTC)
    evidence = compute_evidence(
        state,
        read_predictions(settings, model_name=model_name, since=since),
        read_feedback(settings, since=since),
        now,
    )
    decision = decide(state, evidence, settings.rollout, now)
    log = get_run_logger()
    if decision.action is RolloutAction.HOLD:
        log.info("model %s v%s: hold (%s)", model_name, state.challenger_version, decision.reason)
        return state, decision
    after = apply_decision(client, state, decision)
    AuditTrail(audit_url(settings)).record(decision, model_name, state.challenger_version)
    (log.warning if decision.action is RolloutAction.ROLLBACK else log.info)(
        "model %s v%s: %s (%s)",
        model_name,
        state.challenger_version,
        decision.action.value,
        decision.reason,
    )
    _publish_decision(decision)
    if decision.action in (RolloutAction.PROMOTE, RolloutAction.ROLLBACK):
        emit_event(
            event=MODEL_PROMOTED if decision.action is RolloutAction.PROMOTE else MODEL_ROLLED_BACK,
            resource={
                "prefect.resource.id": model_resource_id(model_name),
                "prefect.resource.name": model_name,
            },
            payload={
                "version": state.challenger_version,
                "reason": decision.reason,
                "actor": decision.actor,
                "evidence": dict(decision.evidence),
            },
        )
    return after, decision


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
