"""Two process workers on one work pool share its flow runs (scale-out by workers).

A real `prefect server start` (SQLite, free port), one `process` work pool and two
workers, started by `devstack.localstack.up` exactly as `make up WORKERS=2` starts them,
each running at most two flow runs at a time (`prefect worker start --limit 2`). The
tiny flow of this module is deployed from the checkout with `prefect deploy` (the pull
step of `prefect.yaml`: the checkout the worker runs in) and started several times at
once. Every run must complete, and both workers must have run some of them. Which
worker ran a run is read twice: from the server (the worker labels the runs it takes,
`prefect.worker.name`) and from the run itself (its process writes the worker name its
worker gave it, `PREFECT__WORKER_NAME`, and its parent pid, the worker's).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect import flow

from devstack.localstack import LocalStack, down, free_port, running_pid, up, worker_names
from tests.e2e.prefect_stack import REPO

POOL = "mlops-two-workers"
RUNS = 6
LIMIT = 2
ENTRYPOINT = "tests/e2e/test_two_workers.py:spread_probe"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@flow(name="spread-probe")
def spread_probe(index: int, out_dir: str) -> None:
    """Write which worker started this run's process (its name, the worker's pid)."""
    record = {
        "index": index,
        "worker": os.environ.get("PREFECT__WORKER_NAME"),
        "pid": os.getpid(),
        "parent_pid": os.getppid(),
    }
    Path(out_dir, f"{index}.json").write_text(json.dumps(record))


@dataclass(frozen=True)
class TwoWorkers:
    stack: LocalStack
    out_dir: Path
    api: httpx.Client


def probe_prefect_file(root: Path) -> Path:
    """A prefect file with the probe's deployment, on the test pool, with the real pull step."""
    real = yaml.safe_load((REPO / "prefect.yaml").read_text())
    document = {
        "name": "two-workers",
        "prefect-version": real["prefect-version"],
        "pull": real["pull"],
        "deployments": [
            {
                "name": "spread",
                "description": "Records which worker ran it.",
                "entrypoint": ENTRYPOINT,
                "work_pool": {"name": POOL, "work_queue_name": "default"},
            }
        ],
    }
    path = root / "prefect.two-workers.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoWorkers]:
    root = tmp_path_factory.mktemp("two-workers")
    stack = LocalStack(
        repo=REPO,
        run_dir=root / "run",
        prefect_home=root / "prefect",
        port=free_port(),
        pool=POOL,
        worker_query_seconds=1.0,
        prefect_file=str(probe_prefect_file(root)),
        env={"MLOPS_HOME": str(root / "mlops")},
        workers=2,
        worker_limit=LIMIT,
    )
    out_dir = root / "records"
    out_dir.mkdir()
    try:
        up(stack)  # server, pool, `prefect deploy`, two workers: what `make up` runs
        with httpx.Client(base_url=stack.api_url, timeout=10) as api:
            yield TwoWorkers(stack, out_dir, api)
    finally:
        down(stack)


def run_all(env: TwoWorkers, count: int, timeout: float = 240.0) -> list[dict[str, Any]]:
    """Create `count` runs of the deployment at once; return them once all have ended."""
    deployment = env.api.get("/deployments/name/spread-probe/spread")
    assert deployment.status_code == 200, deployment.text
    ids = []
    for index in range(count):
        created = env.api.post(
            f"/deployments/{deployment.json()['id']}/create_flow_run",
            json={"parameters": {"index": index, "out_dir": str(env.out_dir)}},
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    deadline = time.monotonic() + timeout
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answer = env.api.post("/flow_runs/filter", json={"flow_runs": {"id": {"any_": ids}}})
        assert answer.status_code == 200, answer.text
        runs = answer.json()
        if len(runs) == count and all(r["state_type"] in FINAL for r in runs):
            return runs
        time.sleep(0.5)
    states = Counter(r["state_type"] for r in runs)
    pytest.fail(f"runs not finished after {timeout:.0f} s: {dict(states)}")


def test_two_workers_on_one_pool_share_its_runs(two_workers: TwoWorkers) -> None:
    stack = two_workers.stack
    names = worker_names(stack)
    assert set(names) == {"worker", "worker-2"} and len(set(names.values())) == 2
    pids = {names[c]: running_pid(stack, c) for c in names}
    assert all(pids.values()), "both workers run"

    started = time.perf_counter()
    runs = run_all(two_workers, RUNS)
    wall = time.perf_counter() - started

    assert [r["state_type"] for r in runs] == ["COMPLETED"] * RUNS
    by_server = {r["parameters"]["index"]: r["labels"].get("prefect.worker.name") for r in runs}
    share = dict(Counter(by_server.values()))
    print(f"\n{RUNS} runs on 2 workers in {wall:.1f} s: {share}")  # noqa: T201
    assert Counter(by_server.values()).keys() == set(pids), f"runs per worker: {by_server}"

    records = [json.loads(p.read_text()) for p in sorted(two_workers.out_dir.glob("*.json"))]
    assert sorted(r["index"] for r in records) == list(range(RUNS)), "each run ran once"
    for record in records:
        worker = by_server[record["index"]]
        assert record["worker"] == worker, "the run ran where the server says it did"
        assert record["parent_pid"] == pids[worker], "in a process that worker started"
    assert len({r["pid"] for r in records}) == RUNS, "one process per run"
