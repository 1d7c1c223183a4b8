"""Task: crash the deployments' flow runs whose worker died (`mlops.runs.silence` judges)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import OrchestrationResult, SetStateStatus
from prefect.events.filters import EventFilter
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Crashed
from pydantic import BaseModel, ConfigDict

from mlops.runs import RunPhase, RunSighting, silence
from mlops.settings import Settings, get_settings

HEARTBEAT = "prefect.flow-run.heartbeat"
PHASES = {StateType.RUNNING: RunPhase.RUNNING, StateType.PENDING: RunPhase.PENDING}


class CrashedRun(BaseModel):
    """A run the sweep marked Crashed, and why."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    name: str
    reason: str


def _log() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@task(name="crash-silent-runs", retries=2, retry_delay_seconds=[5, 15])
def crash_silent_runs(
    now: datetime | None = None, settings: Settings | None = None
) -> list[CrashedRun]:
    """Mark Crashed every Running or Pending deployment run that `silence` finds dead.

    The sweep's own run is never a candidate. Crashing frees the run's concurrency slot,
    and the automations tell people about it like any other crash. Sweeps may overlap
    (the deployment has no concurrency limit: a sweep killed with its worker must not
    hold the slot of the next one); the server accepts one Crashed per run.
    """
    settings = settings or get_settings()
    moment = now or datetime.now(UTC)
    cfg = settings.runs
    own = str(flow_run.id) if flow_run.id else None
    crashed: list[CrashedRun] = []
    with get_client(sync_client=True) as client:
        for run in _candidates(client):
            if str(run.id) == own or run.state is None:
                continue
            sighting = RunSighting(
                run_id=str(run.id),
                name=run.name,
                phase=PHASES[run.state.type],
                since=run.state.timestamp or moment,
                last_heartbeat=_last_heartbeat(client, str(run.id), moment),
            )
            reason = silence(
                sighting,
                moment,
                crashed_after_s=cfg.crashed_after_s,
                pending_after_s=cfg.pending_after_s,
            )
            if reason is None:
                continue
            # Orchestrated, not forced: the server releases the run's concurrency slot,
            # and refuses when the run ended meanwhile (or an overlapping sweep won).
            result: OrchestrationResult[Any] = client.set_flow_run_state(
                run.id, Crashed(message=f"silent-run sweep: {reason}")
            )
            if result.status is not SetStateStatus.ACCEPT:
                continue
            _log().warning("flow run %s (%s) marked Crashed: %s", run.name, run.id, reason)
            crashed.append(CrashedRun(run_id=str(run.id), name=run.name, reason=reason))
    return crashed


def _candidates(client: SyncPrefectClient) -> list[FlowRun]:
    return client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(PHASES))),
            deployment_id=FlowRunFilterDeploymentId(is_null_=False),
        ),
        limit=200,
    )


def _last_heartbeat(client: SyncPrefectClient, run_id: str, now: datetime) -> datetime | None:
    page = client.read_events(
        EventFilter.model_validate(
            {
                "occurred": {"since": now - timedelta(days=1), "until": now},
                "event": {"name": [HEARTBEAT]},
                "resource": {"id": [f"prefect.flow-run.{run_id}"]},
            }
        ),
        limit=1,
    )
    return page.events[0].occurred if page.events else None
