"""Rollout state changes are compare-and-set: two processes hammering one rollout lose nothing.

Two worker processes (spawned: separate interpreters, as two flow runs on two workers)
write the same rollout's state on a real MLflow registry (SQLite store), with the
rollout lock on SQLite (embedded profile) and on PostgreSQL (production profile).
Each worker alternates two kinds of writes:

- *optimistic*: read the state, wait a moment (widening the race), then
  `write_rollout` it: refused with `StaleRolloutError` when the other wrote meanwhile,
  then read again and retry;
- *locked*: read and write while holding the model's lock: never refused.

Every successful write must take exactly one revision: the revisions the workers saw
themselves write are distinct and consecutive, and the final revision is the number of
writes that succeeded.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops.registry.client import CHAMPION
from mlops.rollout.lock import RolloutLock
from mlops.rollout.state import (
    StaleRolloutError,
    read_rollout,
    start_rollout,
    write_rollout,
)
from mlops.settings import RolloutSettings

WRITES_PER_WORKER = 8
"""Attempted writes of each kind per worker (each kind is retried until it succeeds)."""


def hammer(tracking_uri: str, lock_url: str, model: str, worker: str) -> tuple[list[int], int]:
    """Write the rollout state 2 x WRITES_PER_WORKER times; the revisions written, conflicts."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    lock = RolloutLock(lock_url, timeout_s=60)
    rng = random.Random(worker)
    written: list[int] = []
    conflicts = 0
    try:
        for i in range(WRITES_PER_WORKER):
            while True:  # optimistic: read, think, compare-and-set
                seen = read_rollout(client, model)
                time.sleep(rng.uniform(0.0, 0.02))
                try:
                    done = write_rollout(
                        client, seen.model_copy(update={"reason": f"{worker}-cas-{i}"}), lock=lock
                    )
                except StaleRolloutError:
                    conflicts += 1
                    continue
                written.append(done.revision)
                break
            with lock.hold(model):  # pessimistic: read and write under the lock
                seen = read_rollout(client, model)
                time.sleep(rng.uniform(0.0, 0.01))
                done = write_rollout(
                    client, seen.model_copy(update={"reason": f"{worker}-locked-{i}"}), lock=lock
                )
            written.append(done.revision)
    finally:
        lock.close()
    return written, conflicts


@pytest.fixture
def rollout(tmp_path: Path, run_id: str) -> tuple[str, str, int]:
    """A registered model with a champion and a running rollout: (tracking URI, name, revision)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("cas", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, "a tiny model", "model/MLmodel")
    name = f"cas_{run_id}"
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
    client.set_registered_model_alias(name, CHAMPION, "1")
    lock = RolloutLock(f"sqlite:///{tmp_path / 'start-lock.db'}")
    state = start_rollout(client, name, "2", RolloutSettings().stages, lock=lock)
    lock.close()
    return uri, name, state.revision


@pytest.fixture(params=["sqlite", "postgres"])
def lock_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rollout-lock.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_two_processes_stepping_one_rollout_never_lose_an_update(
    rollout: tuple[str, str, int], lock_url: str
) -> None:
    uri, model, start = rollout
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(hammer, uri, lock_url, model, w) for w in ("a", "b")]
        results = [future.result(timeout=300) for future in futures]

    revisions = sorted(r for written, _ in results for r in written)
    applied = 2 * 2 * WRITES_PER_WORKER
    assert len(revisions) == applied
    # every successful write took exactly one revision, none was taken twice or skipped
    assert revisions == list(range(start + 1, start + applied + 1))
    final = read_rollout(MlflowClient(tracking_uri=uri, registry_uri=uri), model)
    assert final.revision == start + applied
    # the stored state is the one written last
    last_writer = next(
        w for w, (written, _) in zip("ab", results, strict=True) if final.revision in written
    )
    assert final.reason.startswith(f"{last_writer}-")
    assert final.challenger_version == "2" and final.active
