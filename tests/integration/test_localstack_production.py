"""`make up PROFILE=production`: the local stack on the production backends.

`python -m devstack.localstack up --profile production` (what the Makefile runs) must start
the Prefect server on a fresh PostgreSQL database (its tables, work pool, deployments
and worker land there, and no SQLite database is created), the deployments of the local
pool and a worker whose flow runs get the production profile; `down` must stop them all
and release the database. Without a Prefect database the command refuses to start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from devstack.localstack import LocalStack, down, free_port, running_pid, worker_names
from mlops.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL, REDIS_HOST, REDIS_PORT, fresh_databases
from tests.e2e.prefect_stack import REPO
from tests.unit.tuning_support import psycopg_url

S3_ENDPOINT = "http://127.0.0.1:9"  # never reached: nothing runs a flow here


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """Fresh databases: the Prefect server's, and one for the app's settings."""
    with fresh_databases("prefect", "app") as urls:
        yield urls


def production_env(home: Path, databases: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment of a person running `make up PROFILE=production` (no MLOPS_PROFILE:
    the flag sets it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PREFECT_"))}
    app = psycopg_url(databases["app"])
    env.update(
        {
            "MLOPS_HOME": str(home),
            "MLOPS_DATABASE_URL": databases["app"],
            "MLOPS_TRACKING_URI": app,
            "MLOPS_OPTUNA_STORAGE": app,
            "MLOPS_FEAST__REGISTRY_URL": app,
            "MLOPS_FEAST__ONLINE_STORE": "redis",
            "MLOPS_FEAST__REDIS_CONNECTION": f"{REDIS_HOST}:{REDIS_PORT},db=0",
            "MLOPS_S3_BUCKET": "mlops-test-unused",
            "MLOPS_S3_ENDPOINT_URL": S3_ENDPOINT,
            "MLOPS_ADMIN_TOKEN": f"token-{uuid.uuid4().hex}",
            **extra,
        }
    )
    return env


def stack_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack.localstack", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def local_deployments() -> set[str]:
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return {d["name"] for d in document["deployments"] if d["work_pool"]["name"] == "mlops-local"}


def test_make_up_passes_the_profile_and_workers_through() -> None:
    dry = subprocess.run(
        ["make", "-n", "up", "PROFILE=production", "WORKERS=2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "-m devstack.localstack up --profile production --workers 2" in dry.stdout


def test_the_production_profile_needs_a_prefect_database(
    databases: dict[str, str], tmp_path: Path
) -> None:
    env = production_env(tmp_path / "state", databases)
    done = stack_cli(env, "up", "--profile", "production", "--port", str(free_port()))
    assert done.returncode == 1
    assert "MLOPS_PREFECT_DATABASE_URL" in done.stderr
    assert not list((tmp_path / "state" / "run").glob("*.pid")), "nothing was started"


def test_stack_up_in_the_production_profile_runs_prefect_on_postgresql(
    databases: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "state"
    port = free_port()
    env = production_env(home, databases, MLOPS_PREFECT_DATABASE_URL=databases["prefect"])
    settings = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    stack = LocalStack.from_settings(settings, repo=REPO, port=port)
    try:
        done = stack_cli(env, "up", "--profile", "production", "--port", str(port))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "production (Prefect server on PostgreSQL)" in done.stdout
        assert httpx.get(f"{stack.api_url}/health", timeout=5).status_code == 200

        # The server's state is in the PostgreSQL database, not in SQLite.
        with psycopg.connect(databases["prefect"]) as conn:
            tables = {
                r[0]
                for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            }
            assert {"flow_run", "deployment", "work_pool", "worker", "alembic_version"} <= tables
            pools = {r[0] for r in conn.execute("SELECT name FROM work_pool")}
            deployed = {r[0] for r in conn.execute("SELECT name FROM deployment")}
            workers = {r[0] for r in conn.execute("SELECT name FROM worker")}
        assert "mlops-local" in pools
        assert deployed == local_deployments(), "the local pool's deployments, not the ECS twins"
        assert set(worker_names(stack).values()) <= workers
        assert not list((home / "prefect").rglob("*.db")), "no SQLite database of the server"

        server, worker = running_pid(stack, "server"), running_pid(stack, "worker")
        assert server is not None and worker is not None
        server_env = environ_of(server)
        assert server_env["PREFECT_API_DATABASE_CONNECTION_URL"] == databases["prefect"].replace(
            "postgresql://", "postgresql+asyncpg://", 1
        )
        # What the worker's flow runs inherit: the production profile and its backends.
        worker_env = environ_of(worker)
        assert worker_env["MLOPS_PROFILE"] == "production"
        assert worker_env["MLOPS_S3_ENDPOINT_URL"] == S3_ENDPOINT
        assert worker_env["MLFLOW_S3_ENDPOINT_URL"] == S3_ENDPOINT
        assert worker_env["MLOPS_FEAST__ONLINE_STORE"] == "redis"
        assert worker_env["MLOPS_TRACKING_URI"] == psycopg_url(databases["app"])
        assert worker_env["PREFECT_API_URL"] == stack.api_url

        # The runbook's registration of the production twins (docs/deployment.md, step
        # 4) against this server: only the `*-ecs` ones, on the ecs pool, in the image.
        pool = httpx.post(
            f"{stack.api_url}/work_pools/", json={"name": "mlops-ecs", "type": "ecs"}, timeout=10
        )
        assert pool.status_code == 201, pool.text
        registered = subprocess.run(
            [str(Path(sys.executable).parent / "prefect"), "deploy", "--no-prompt"]
            + ["--name", "*-ecs"],
            cwd=REPO,
            env={**env, "PREFECT_API_URL": stack.api_url},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert registered.returncode == 0, registered.stdout[-3000:] + registered.stderr
        on_ecs = httpx.post(
            f"{stack.api_url}/deployments/filter",
            json={"work_pools": {"name": {"any_": ["mlops-ecs"]}}},
            timeout=10,
        ).json()
        assert {d["name"] for d in on_ecs} == {f"{name}-ecs" for name in local_deployments()}
        image_dir = {"directory": "/opt/mlops"}
        for deployment in on_ecs:
            step = {"prefect.deployments.steps.set_working_directory": image_dir}
            assert deployment["pull_steps"] == [step], deployment["name"]

        status = stack_cli(env, "status")
        assert "healthy" in status.stdout and "1 online" in status.stdout, status.stdout

        stopped = stack_cli(env, "down")
        assert stopped.returncode == 0, stopped.stderr
        assert "worker" in stopped.stdout and "server" in stopped.stdout
        assert running_pid(stack, "server") is None and running_pid(stack, "worker") is None
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{stack.api_url}/health", timeout=2)
        name = databases["prefect"].rsplit("/", 1)[1]
        with psycopg.connect(POSTGRES_ADMIN_URL) as admin:
            sessions = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
        assert sessions == (0,), "the server released its database"
    finally:
        down(stack)
