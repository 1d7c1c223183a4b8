"""Scale-out of one Optuna study over a Dask cluster, on PostgreSQL storage.

Trials run in Dask worker processes (`LocalCluster(processes=True)`) through the code
the pipeline runs: `mlops.tuning.run_trials` on each worker, and the `tune-model` flow
with `MLOPS_TUNING__DASK_ADDRESS` naming an external scheduler. Nothing is shared but
the study in PostgreSQL, whose storage keeps the study-wide trial budget exact.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, LocalCluster, get_task_stream

from mlops.settings import Settings, TuningSettings
from mlops.tuning import TuningData, open_study, run_trials
from tests.unit.tuning_support import RendezvousFit, psycopg_url, write_tuning_data

WORKERS = 2


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TuningData:
    return write_tuning_data(tmp_path_factory.mktemp("dask-data"), rows=2_000)


@pytest.fixture
def cluster() -> Iterator[Client]:
    """Two single-threaded worker processes, as the flow's local cluster starts them."""
    with (
        LocalCluster(
            n_workers=WORKERS,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            host="127.0.0.1",
        ) as local,
        Client(local) as client,
    ):
        yield client


def run_share(
    study_name: str, data: TuningData, settings: Settings, worker: int, fit: Any
) -> tuple[int, list[int]]:
    """One worker's share of the study (what the `run-trials` task calls) and its pid."""
    numbers = run_trials(study_name, None, data, settings, worker=worker, fit=fit)
    return os.getpid(), numbers


def test_two_dask_worker_processes_share_one_postgres_study(
    cluster: Client, data: TuningData, settings: Settings, postgres_url: str, tmp_path: Path
) -> None:
    budget = 6
    settings = settings.model_copy(
        update={
            "optuna_storage": psycopg_url(postgres_url),
            "tuning": TuningSettings(n_trials=budget, max_epochs=3, n_startup_trials=2),
        }
    )
    open_study("dask-shared", settings)  # tables and study exist before the workers race
    (tmp_path / "rendezvous").mkdir()
    fit = RendezvousFit(tmp_path / "rendezvous", WORKERS)  # the real fit, once all arrived
    futures = [
        cluster.submit(run_share, "dask-shared", data, settings, worker, fit, pure=False)
        for worker in range(WORKERS)
    ]
    shares = cluster.gather(futures)

    worker_pids = set(cluster.run(os.getpid).values())
    pids = [pid for pid, _ in shares]
    assert len(set(pids)) == WORKERS and set(pids) == worker_pids, "two worker processes"
    assert os.getpid() not in pids
    assert all(numbers for _, numbers in shares), f"every worker ran trials: {shares}"
    ran = sorted(n for _, numbers in shares for n in numbers)
    assert ran == list(range(budget)), "unique trial numbers, the budget exactly"
    study = open_study("dask-shared", settings)
    assert sorted(t.number for t in study.trials) == list(range(budget))
    assert all(t.state.is_finished() for t in study.trials)


def test_tune_model_flow_runs_on_an_external_dask_scheduler(
    prefect_api_url: str, data: TuningData, postgres_url: str, tmp_path: Path
) -> None:
    from prefect_dask import DaskTaskRunner

    from flows.tuning import trial_runner, tune_model
    from mlops.tracking import start_parent_run
    from tests.e2e.conftest import mlops_env

    budget = 4
    study_name = "flow-on-dask"
    env = {
        "MLOPS_OPTUNA_STORAGE": psycopg_url(postgres_url),
        "MLOPS_TUNING__N_TRIALS": str(budget),
        "MLOPS_TUNING__MAX_EPOCHS": "3",
        "MLOPS_TUNING__WORKERS": str(WORKERS),
    }
    # The workers start after the environment is set: they read the same settings.
    with (
        mlops_env(tmp_path / "state", **env) as settings,
        LocalCluster(
            n_workers=WORKERS, processes=True, threads_per_worker=1, dashboard_address=None
        ) as external,
        Client(external) as client,
    ):
        tuning = settings.tuning.model_copy(update={"dask_address": external.scheduler_address})
        runner = trial_runner(tuning)
        assert isinstance(runner, DaskTaskRunner)
        with (
            start_parent_run(
                settings,
                data.spec.name,
                dataset_sha256=data.sha256,
                validation_verdict="accepted",
                feature_service="card_fraud_v1",
                study_name=study_name,
            ) as parent,
            get_task_stream(client) as stream,
        ):
            summary = tune_model.with_options(task_runner=runner)(study_name, data, parent, WORKERS)
        study = open_study(study_name, settings)
        addresses = set(client.scheduler_info()["workers"])

    assert sorted(t.number for t in study.trials) == list(range(budget))
    assert summary.n_complete + summary.n_pruned + summary.n_failed == budget
    workers = {task["worker"] for task in stream.data}
    assert len(stream.data) == WORKERS, "one run-trials task per worker share"
    assert workers == addresses and len(addresses) == WORKERS, "each external worker ran one"
