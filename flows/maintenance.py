"""The silent-run sweep: flow runs whose worker died are marked Crashed, on a schedule.

A killed worker leaves its runs Running (or Pending) on the server, holding their
deployments' concurrency slots; the automation `mlops: crash silent flow runs` crashes
them from their missing heartbeats while its trigger state lasts, and this flow is the
net under it (`mlops.runs` says why a run is judged dead). Deployed as
`sweep-silent-runs/every-5-minutes`.
"""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from mlops.settings import get_settings
from tasks.runs import CrashedRun, crash_silent_runs


class SweepParams(BaseModel):
    """How long a run may be silent; the settings (`MLOPS_RUNS__*`) by default."""

    crashed_after_s: float | None = Field(
        default=None, ge=10.0, description="Running with no heartbeat this long: Crashed."
    )
    pending_after_s: float | None = Field(
        default=None, gt=0.0, description="Pending this long: Crashed."
    )


@flow(name="sweep-silent-runs")
def sweep_silent_runs(params: SweepParams | None = None) -> list[CrashedRun]:
    """Crash the deployments' runs that stopped beating (or never started)."""
    params = params or SweepParams()
    settings = get_settings()
    limits = {k: v for k, v in params.model_dump().items() if v is not None}
    if limits:
        runs = settings.runs.model_copy(update=limits)
        settings = settings.model_copy(update={"runs": runs})
    return crash_silent_runs(settings=settings)
