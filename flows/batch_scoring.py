"""The `batch-scoring` flow: a large parquet file scored in partitions on the Dask runner.

The partitions are mapped over the same runner the HPO trials use: the Dask scheduler
named by `MLOPS_TUNING__DASK_ADDRESS`, else a local cluster of `workers` processes.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped
from prefect.task_runners import TaskRunner
from prefect_dask.task_runners import DaskTaskRunner
from pydantic import BaseModel, Field

from mlops.scoring import (
    DEFAULT_ROWS_PER_PARTITION,
    ScoredPart,
    ScoringModel,
    ScoringPlan,
    ScoringResult,
)
from mlops.settings import TuningSettings, get_settings
from tasks.scoring import (
    plan_partitions_task,
    resolve_model_task,
    score_partition_task,
    write_manifest_task,
)


class BatchScoringParams(BaseModel):
    """What a person fills in when starting a scoring job from the Prefect UI."""

    data: str = Field(description="The parquet file to score: a path or an s3:// URI.")
    model_name: str | None = Field(
        default=None, description="The registered model; default: the served one (settings)."
    )
    alias: str = Field(default="champion", description="An alias or a version number.")
    rows_per_partition: int = Field(default=DEFAULT_ROWS_PER_PARTITION, ge=1)
    output: str | None = Field(
        default=None,
        description="Output folder (path or s3://); default: scores/<model>/v<version>/<hash>.",
    )
    workers: int | None = Field(
        default=None, ge=1, description="Local Dask worker processes; default: the tuning's."
    )


def scoring_runner(tuning: TuningSettings, workers: int | None = None) -> TaskRunner[Any]:
    """The Dask runner: the external scheduler when set, else a local process cluster."""
    if tuning.dask_address:
        return DaskTaskRunner(address=tuning.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers or tuning.workers,
            "threads_per_worker": 1,
            "processes": True,
        }
    )


@flow(name="score-partitions")
def score_partitions(plan: ScoringPlan, model: ScoringModel) -> list[ScoredPart]:
    """Every partition of the plan, scored in parallel on the flow's task runner."""
    futures = score_partition_task.map(
        plan=unmapped(plan), partition=list(plan.partitions), model=unmapped(model)
    )
    return [future.result() for future in futures]


@flow(name="batch-scoring")
def batch_scoring(
    params: BatchScoringParams,
) -> ScoringResult:
    """Pin the model version, cut the file, score the partitions in parallel, finish.

    Idempotent: the output folder is named by the input's hash and the version, and a
    re-run scores only the partitions whose part is missing.
    """
    settings = get_settings()
    model = resolve_model_task(params.model_name or settings.serving.model_name, params.alias)
    plan = plan_partitions_task(params.data, params.rows_per_partition, params.output, model)
    runner = scoring_runner(settings.tuning, params.workers)
    parts = score_partitions.with_options(task_runner=runner)(plan, model)
    return write_manifest_task(plan, model, parts)
