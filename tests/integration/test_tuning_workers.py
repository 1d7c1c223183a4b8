"""Several worker processes on one study: the budget holds exactly, trials nest in MLflow.

Workers are spawned processes (as Dask or a process pool would start them), so nothing
is shared but the storage URLs: the Optuna study in PostgreSQL (production profile) or
SQLite (embedded profile), and the MLflow store holding the parent run.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState

from mlops.settings import Settings, TuningSettings
from mlops.tracking import (
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
    TrialTracker,
    start_parent_run,
    tracking_client,
)
from mlops.tuning import TuningData, open_study
from tests.conftest import POSTGRES_ADMIN_URL
from tests.unit.tuning_support import (
    RendezvousFit,
    SlowFit,
    WorkerJob,
    psycopg_url,
    run_worker,
    write_tuning_data,
)

WORKERS = 2


@pytest.fixture
def mlflow_postgres_url(postgres_url: str) -> Iterator[str]:
    """A second fresh database: Optuna and MLflow both keep an `alembic_version` table."""
    name = postgres_url.rsplit("/", 1)[1] + "_mlflow"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """Spawned worker processes, shared by the tests (each pays torch's import once)."""
    with multiprocessing.get_context("spawn").Pool(WORKERS) as workers:
        yield workers


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TuningData:
    return write_tuning_data(tmp_path_factory.mktemp("workers-data"), rows=2_000)


def run_workers(
    pool: Pool, settings: Settings, data: TuningData, fit: Callable[..., Any], study: str
) -> tuple[list[list[int]], str]:
    """Open the study and a parent run here, run WORKERS processes, return their trials."""
    open_study(study, settings)  # tables and study exist before the workers race for them
    with start_parent_run(
        settings,
        "card_fraud",
        dataset_sha256=data.sha256,
        validation_verdict="accepted",
        feature_service="card_fraud_v1",
        study_name=study,
    ) as parent:
        tracker = TrialTracker.for_parent_run(settings, parent)
        jobs = [WorkerJob(study, data, settings, tracker, i, fit) for i in range(WORKERS)]
        shares = pool.map(run_worker, jobs, chunksize=1)
    return shares, parent


def check_shared_study(
    settings: Settings, study_name: str, shares: list[list[int]], parent: str
) -> None:
    budget = settings.tuning.n_trials
    study = open_study(study_name, settings)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == budget, "the study-wide budget holds exactly"
    assert sorted(numbers) == list(range(budget)), "unique trial numbers, no gaps"
    assert sorted(n for share in shares for n in share) == list(range(budget)), "no duplicates"
    assert all(shares), f"every worker contributed: {shares}"
    assert all(t.state.is_finished() for t in study.trials)

    client = tracking_client(settings.resolved_tracking_uri)
    experiment = client.get_run(parent).info.experiment_id
    children = client.search_runs([experiment], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'")
    assert sorted(int(r.data.tags[TAG_TRIAL_NUMBER]) for r in children) == list(range(budget))
    by_run = {r.info.run_id: r for r in children}
    for trial in study.trials:
        run = by_run[trial.user_attrs["mlflow_run_id"]]
        expected = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}[trial.state]
        assert run.data.tags[TAG_TRIAL_STATE] == expected
        assert run.info.status == "FINISHED"


@pytest.mark.integration
def test_two_processes_share_one_postgres_study(
    pool: Pool,
    data: TuningData,
    settings: Settings,
    postgres_url: str,
    mlflow_postgres_url: str,
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(
        update={
            "optuna_storage": psycopg_url(postgres_url),
            "tracking_uri": psycopg_url(mlflow_postgres_url),
            "tuning": TuningSettings(n_trials=8, max_epochs=4, n_startup_trials=2),
        }
    )
    (tmp_path / "rendezvous").mkdir()
    fit = RendezvousFit(tmp_path / "rendezvous", WORKERS)
    shares, parent = run_workers(pool, settings, data, fit, "shared-pg")
    check_shared_study(settings, "shared-pg", shares, parent)


def test_two_processes_share_one_sqlite_study(
    pool: Pool, data: TuningData, settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"tuning": TuningSettings(n_trials=10, max_epochs=3, n_startup_trials=2)}
    )
    (tmp_path / "rendezvous").mkdir()
    fit = RendezvousFit(tmp_path / "rendezvous", WORKERS, inner=SlowFit(0.05))
    shares, parent = run_workers(pool, settings, data, fit, "shared-sqlite")
    check_shared_study(settings, "shared-sqlite", shares, parent)
