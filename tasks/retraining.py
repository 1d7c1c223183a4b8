"""Tasks: apply the retraining guardrails before a retraining, keep it beating while it
trains, record how it ended, and expire retrainings whose flow run is gone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.exceptions import MissingContextError, ObjectNotFound
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from mlops.dataset_spec import DatasetSpec
from mlops.events import RETRAINING_EXPIRED, model_resource
from mlops.registry.client import registry_client
from mlops.retraining import (
    AlarmRecord,
    ExpiredRun,
    RetrainRequest,
    expire_stale_runs,
    expiry_payload,
    keep_beating,
    recent_alarms,
    record_outcome,
)
from mlops.retraining.planning import RetrainPlan, plan_retraining, retraining_request
from mlops.rollout.state import read_rollout
from mlops.settings import Settings, get_settings
from tasks.artifacts import artifact_key, fmt_count
from tasks.retry import transient_only


@task(
    name="check-retrain-guardrails",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def check_retrain_guardrails_task(
    spec: DatasetSpec, request: RetrainRequest, quality_incident: str | None = None
) -> RetrainPlan:
    """Plan the retraining (`mlops.retraining.planning.plan_retraining`): the window
    from the landing folder, the guardrails' decision and, when it proceeds, the batch.

    Retrainings of the model the ledger says are running whose flow run is gone expire
    first (`expire_stale_retrainings`), so a dead run neither blocks this one nor hides
    the alarms it held. The decision is in the ledger before this task returns; a retry
    of the same flow run gets the same decision back.
    """
    settings = get_settings()
    request = retraining_request(spec, request)
    now = datetime.now(UTC)
    expire_stale_retrainings(spec.name, now=now)
    rollout = read_rollout(registry_client(settings), spec.name)
    plan = plan_retraining(
        settings,
        spec,
        request,
        now=now,
        rollout_active=rollout.holds_retraining(now),
        run_id=None if flow_run.id is None else str(flow_run.id),
        quality_incident=quality_incident,
    )
    decision = plan.decision
    log = get_run_logger()
    (log.info if decision.proceed else log.warning)("retraining guardrails: %s", decision.reason)
    create_markdown_artifact(
        key=artifact_key("retraining-guardrails", spec.name),
        markdown=_guardrails_markdown(
            request, plan, rollout.status.value, recent_alarms(settings, spec.name)
        ),
        description=f"Retraining guardrails: {decision.outcome.value}",
    )
    return plan


@task(name="record-retrain-outcome", retries=2, retry_delay_seconds=[2, 10])
def record_retrain_outcome_task(key: str, status: str, reason: str) -> None:
    """Close the retraining run in the ledger: its status starts (or not) the cooldown."""
    record_outcome(get_settings(), key, status, now=datetime.now(UTC), detail=reason)


@contextmanager
def retraining_heartbeat(key: str) -> Iterator[None]:
    """Keep the running retraining `key` beating in the ledger while the block runs.

    The flow process beats from a daemon thread (`mlops.retraining.keep_beating`): if
    the worker is killed, the beats stop and the run expires after
    `retraining.heartbeat_timeout_s` instead of holding the monitor for `max_run_s`.
    """
    with keep_beating(get_settings(), key):
        yield


FLOW_RUN_ENDED = {
    StateType.COMPLETED,
    StateType.FAILED,
    StateType.CANCELLED,
    StateType.CRASHED,
}


def flow_run_gone(run_id: str) -> str | None:
    """Why the flow run that opened a retraining no longer runs it, or None.

    None also when Prefect cannot say (an id that is not a flow run's, the API
    unreachable): only evidence expires a run.
    """
    try:
        flow_run_id = UUID(run_id)
    except ValueError:
        return None
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        return f"its flow run {run_id} was deleted"
    except Exception as exc:  # the API down must not stop the monitor
        _log().warning("cannot read flow run %s from Prefect: %r", run_id, exc)
        return None
    state = run.state
    if state is None or state.type not in FLOW_RUN_ENDED:
        return None
    if state.type is StateType.COMPLETED:
        return f"its flow run {run.name} ({run_id}) is Completed without recording an outcome"
    message = f": {state.message}" if state.message else ""
    return f"its flow run {run.name} ({run_id}) is {state.name}{message}"


def expire_stale_retrainings(
    model_name: str, *, now: datetime | None = None, settings: Settings | None = None
) -> tuple[ExpiredRun, ...]:
    """Expire the model's retrainings recorded as running whose process is gone
    (`mlops.retraining.expire_stale_runs`: a silent heartbeat, or Prefect says its flow
    run ended or no longer exists, `flow_run_gone`), and emit
    `mlops.retraining.expired` about the model for each.
    """
    expired = expire_stale_runs(
        settings or get_settings(),
        model_name,
        now=now or datetime.now(UTC),
        flow_run_gone=flow_run_gone,
    )
    for done in expired:
        emit_event(
            event=RETRAINING_EXPIRED,
            resource=model_resource(model_name),
            payload=expiry_payload(done),
        )
        _log().warning(
            "retraining %s of %s expired: %s; alarms pending again: %s",
            done.run.key,
            model_name,
            done.reason,
            ", ".join(done.reopened) or "none",
        )
    return expired


def _log() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run logger inside a flow or task run, this module's logger outside one."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _guardrails_markdown(
    request: RetrainRequest, plan: RetrainPlan, rollout: str, history: tuple[AlarmRecord, ...]
) -> str:
    decision, cfg, since = plan.decision, get_settings().retraining, plan.new_rows_since
    verdict = "retraining" if decision.proceed else f"no retraining ({decision.outcome.value})"
    features = ", ".join(f"`{name}`" for name in request.drifted_features) or "-"
    lines = [
        f"## Retraining guardrails: {verdict}",
        "",
        decision.reason,
        "",
        "| what | value |",
        "|---|---|",
        f"| model | `{decision.model_name}` |",
        f"| trigger | {decision.trigger.value} |",
        f"| request | `{decision.key}` |",
        f"| reason given | {request.reason or '-'} |",
        f"| drift share | {'-' if request.drift_share is None else f'{request.drift_share:.3f}'} |",
        f"| drifted features | {features} |",
        f"| drift onset | {_when(request.onset)} |",
        f"| window | {plan.window.describe()} |",
        f"| rows in window | {fmt_count(plan.rows)} |",
        f"| new rows ({'after ' + _when(since) if since else 'no registered retraining yet'}) "
        f"| {fmt_count(decision.new_rows)} (at least {fmt_count(cfg.min_new_rows)}) |",
        f"| rollout | {rollout} |",
        f"| last retraining | {_when(decision.last_retrain_at)} "
        f"(cooldown {cfg.cooldown_s / 3600:.2g} h, debounce {cfg.debounce_s / 60:.3g} min) |",
    ]
    if decision.takes_over:
        lines.append(f"| pending alarms taken over | {', '.join(decision.takes_over)} |")
    if plan.batch:
        lines.append(f"| training batch | `{Path(plan.batch).name}` |")
    lines += [
        "",
        "### Recent requests",
        "",
        "| received (UTC) | trigger | outcome | request | detail |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {_when(a.received_at)} | {a.trigger.value} | {a.outcome.value} | `{a.key}` | "
        f"{a.detail} |"
        for a in history
    ]
    return "\n".join(lines) + "\n"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"
