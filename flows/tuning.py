"""The `tune-model` subflow: trials of one Optuna study in parallel worker processes."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from mlops.settings import TuningSettings
from mlops.tuning import StudySummary, TuningData
from tasks.training import open_study_task, run_trials_task, summarize_study_task


def trial_runner(tuning: TuningSettings) -> TaskRunner:  # type: ignore[type-arg]
    """Dask (an external scheduler, or a local cluster of processes) for parallel trials.

    One worker needs no cluster: its trials run in a thread of the flow's process.
    """
    if tuning.dask_address:
        return DaskTaskRunner(address=tuning.dask_address)
    if tuning.workers == 1:
        return ThreadPoolTaskRunner(max_workers=1)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": tuning.workers, "threads_per_worker": 1, "processes": True}
    )


@flow(name="tune-model")
def tune_model(study_name: str, data: TuningData, parent_run_id: str, workers: int) -> StudySummary:
    """Run the study's trial budget over `workers` processes and summarize it."""
    open_study_task(study_name)
    shares = [
        run_trials_task.submit(study_name, data, parent_run_id, worker) for worker in range(workers)
    ]
    for share in shares:
        share.result()
    return summarize_study_task(study_name, parent_run_id, data.spec.name)
