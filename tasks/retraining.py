"""Tasks: apply the retraining guardrails before a retraining, record how it ended."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict

from mlops.dataset_spec import DatasetSpec
from mlops.errors import ConfigError
from mlops.registry.client import registry_client
from mlops.retraining import (
    AlarmRecord,
    GuardDecision,
    RetrainRequest,
    RetrainWindow,
    RunStatus,
    check_retrain,
    count_new_rows,
    load_window,
    pending_alarms,
    recent_alarms,
    record_outcome,
    retraining_window,
    trained_until,
    window_batch_dir,
    write_window_batch,
)
from mlops.rollout.state import read_rollout
from mlops.settings import get_settings
from tasks.artifacts import artifact_key, fmt_count
from tasks.retry import transient_only


class RetrainPlan(BaseModel):
    """The guardrails' decision and, when it proceeds, the batch to train on."""

    model_config = ConfigDict(frozen=True)

    decision: GuardDecision
    window: RetrainWindow
    rows: int
    """Rows of the landing folder inside the window."""
    batch: str | None = None
    """The window's rows as one immutable batch (set when the retraining proceeds)."""
    batch_sha256: str | None = None


@task(
    name="check-retrain-guardrails",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def check_retrain_guardrails_task(spec: DatasetSpec, request: RetrainRequest) -> RetrainPlan:
    """Build the retraining window from the landing folder and ask the guardrails.

    The window reaches back to the drift onset of this request and of every pending
    (deferred) alarm it would take over. The decision is in the ledger before this task
    returns; a retry of the same flow run gets the same decision back.
    """
    settings = get_settings()
    model = request.model_name or spec.name
    if model != spec.name:
        raise ConfigError(
            f"retraining request for model {model!r}, but dataset spec {spec.name!r} "
            "trains a model of its own name"
        )
    request = request.model_copy(update={"model_name": model})
    now = datetime.now(UTC)
    rollout = read_rollout(registry_client(settings), model)
    pending = pending_alarms(settings, model)
    onsets = [moment for moment in (request.onset, *(a.onset for a in pending)) if moment]
    window = retraining_window(
        now,
        settings.retraining.window_days,
        onset=min(onsets) if onsets else None,
        start=request.window_start,
    )
    frame = load_window(settings, spec, window)
    since = trained_until(settings, model)
    decision = check_retrain(
        request,
        settings,
        now=now,
        rollout_active=rollout.active,
        new_rows=count_new_rows(frame, spec, since),
        window_start=window.start,
        window_end=window.end,
        run_id=None if flow_run.id is None else str(flow_run.id),
    )
    plan = RetrainPlan(decision=decision, window=window, rows=len(frame))
    if decision.proceed:
        batch = write_window_batch(frame, spec, window_batch_dir(settings, spec.name))
        assert batch.path is not None, "a retraining proceeds only with new rows"
        record_outcome(
            settings,
            decision.key,
            RunStatus.RUNNING,
            now=now,
            rows=batch.rows,
            batch_sha256=batch.sha256,
            data_end=batch.data_end,
        )
        plan = plan.model_copy(update={"batch": str(batch.path), "batch_sha256": batch.sha256})
    log = get_run_logger()
    (log.info if decision.proceed else log.warning)("retraining guardrails: %s", decision.reason)
    create_markdown_artifact(
        key=artifact_key("retraining-guardrails", spec.name),
        markdown=_guardrails_markdown(
            request, plan, since, rollout.status.value, recent_alarms(settings, model)
        ),
        description=f"Retraining guardrails: {decision.outcome.value}",
    )
    return plan


@task(name="record-retrain-outcome", retries=2, retry_delay_seconds=[2, 10])
def record_retrain_outcome_task(key: str, status: str, reason: str) -> None:
    """Close the retraining run in the ledger: its status starts (or not) the cooldown."""
    record_outcome(get_settings(), key, status, now=datetime.now(UTC), detail=reason)


def _guardrails_markdown(
    request: RetrainRequest,
    plan: RetrainPlan,
    since: datetime | None,
    rollout: str,
    history: tuple[AlarmRecord, ...],
) -> str:
    decision, cfg = plan.decision, get_settings().retraining
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
