"""Planning a retraining (the `check-retrain-guardrails` stage, without Prefect): the
window the model learns from, the guardrails' decision on it and, when it proceeds,
the window's rows as one immutable batch with the run open in the ledger.

Not imported by the package's `__init__`: it reads the open data-quality incident
(`mlops.quality`, whose incident store imports this package).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from mlops.dataset_spec import DatasetSpec
from mlops.errors import ConfigError
from mlops.quality import open_incident
from mlops.retraining.guardrails import check_retrain
from mlops.retraining.ledger import pending_alarms, record_outcome, trained_until
from mlops.retraining.models import GuardDecision, RetrainRequest, RunStatus
from mlops.retraining.window import (
    RetrainWindow,
    count_new_rows,
    load_window,
    new_rows_since,
    retraining_window,
    window_batch_dir,
    write_window_batch,
)
from mlops.settings import Settings


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
    new_rows_since: datetime | None = None
    """Only rows after this moment counted as new (None: every row of the window)."""


def retraining_request(spec: DatasetSpec, request: RetrainRequest) -> RetrainRequest:
    """The request with its model named: a dataset spec trains the model of its own name.

    Raises:
        ConfigError: the request names another model than the spec's.
    """
    model = request.model_name or spec.name
    if model != spec.name:
        raise ConfigError(
            f"retraining request for model {model!r}, but dataset spec {spec.name!r} "
            "trains a model of its own name"
        )
    return request.model_copy(update={"model_name": model})


def plan_retraining(
    settings: Settings,
    spec: DatasetSpec,
    request: RetrainRequest,
    *,
    now: datetime,
    rollout_active: bool,
    run_id: str | None = None,
    quality_incident: str | None = None,
) -> RetrainPlan:
    """Build the retraining window from the landing folder and ask the guardrails.

    The window reaches back to the drift onset of this request and of every pending
    alarm it would take over. Only rows after the drift onset (and after what the last
    registered retraining saw) count as new (`new_rows_since`): with labels hours late,
    an alarm waits for enough labelled rows of the new regime. An open data-quality
    incident (`quality_incident`, else the model's open one) holds the request as
    pending. When the retraining proceeds, the window's rows are written as one batch
    and the run is recorded as running; the decision is in the ledger either way, and
    the same `run_id` asking again gets the same decision back.

    Raises:
        ConfigError: the request names another model than the spec's.
    """
    request = retraining_request(spec, request)
    model = spec.name
    pending = pending_alarms(settings, model)
    onsets = [moment for moment in (request.onset, *(a.onset for a in pending)) if moment]
    onset = min(onsets) if onsets else None
    window = retraining_window(
        now, settings.retraining.window_days, onset=onset, start=request.window_start
    )
    frame = load_window(settings, spec, window)
    since = new_rows_since(trained_until(settings, model), onset)
    decision = check_retrain(
        request,
        settings,
        now=now,
        rollout_active=rollout_active,
        new_rows=count_new_rows(frame, spec, since),
        window_start=window.start,
        window_end=window.end,
        run_id=run_id,
        quality_incident=quality_incident or open_incident(settings, model),
    )
    plan = RetrainPlan(decision=decision, window=window, rows=len(frame), new_rows_since=since)
    if not decision.proceed:
        return plan
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
    return plan.model_copy(update={"batch": str(batch.path), "batch_sha256": batch.sha256})
