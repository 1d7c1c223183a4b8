"""Helpers of `test_hostile_timings.py`: late labels, a rollout watcher, a webhook receiver,
and the retraining stand-in the worker runs (and the test kills).

The stand-in is a flow deployed from this file (`training-pipeline/hard-killed`): it takes
the first step of a retraining as the real `check-retrain-guardrails` task does (the
ledger row carries its own flow run id), then keeps beating while it "trains", until the
test SIGKILLs its process. It bears the training pipeline's flow name, so the
notification rule for crashed runs of the loop's flows applies to it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prefect import flow
from prefect.runtime import flow_run

from mlops.registry.client import registry_client
from mlops.retraining import RetrainRequest, check_retrain
from mlops.retraining.heartbeat import keep_beating
from mlops.rollout.state import RolloutState, read_rollout
from mlops.settings import Settings, get_settings
from tests import polling
from tests.serving_support import SmallModels

T = TypeVar("T")

STAND_IN_FLOW = "training-pipeline"
STAND_IN_DEPLOYMENT = "hard-killed"


@flow(name=STAND_IN_FLOW)
def retraining_stand_in(model_name: str, event_id: str, pid_file: str) -> None:
    """A retraining that proceeds, records itself in the ledger, and trains until killed."""
    settings = get_settings()
    run_id = str(flow_run.id)
    decision = check_retrain(
        RetrainRequest(event_id=event_id, model_name=model_name, reason="hostile timings"),
        settings,
        now=datetime.now(UTC),
        rollout_active=False,
        new_rows=5_000,
        run_id=run_id,
    )
    if not decision.proceed:
        raise RuntimeError(f"the guardrails refused the retraining: {decision.reason}")
    with keep_beating(settings, decision.key):
        Path(pid_file).write_text(f"{os.getpid()} {decision.key}\n")
        # Training: the test kills this process long before the bound.
        give_up = time.monotonic() + 300
        while time.monotonic() < give_up:
            time.sleep(0.5)
    raise RuntimeError("the stand-in was not killed")


def wait_for(condition: Callable[[], T], what: str, timeout: float, every: float = 0.25) -> T:
    """Poll the stack: a poll the Prefect server does not answer in time (its SQLite
    database busy under load, or the server restarting) counts as "not yet"."""
    return polling.wait_for(condition, what, timeout, every=every, tolerate=(httpx.TransportError,))


# --------------------------------------------------------------------------- traffic


@dataclass
class LateLabelTraffic:
    """Keeps sending card transactions; each label is returned `label_delay_s` after its answer.

    Requests are paced (a steady production-like rate, not a tight loop that starves the
    two cores the stack shares).
    """

    url: str
    models: SmallModels
    label_delay_s: float
    pace_s: float = 0.05
    answered: dict[str, int] = field(default_factory=lambda: {"champion": 0, "challenger": 0})
    labels_sent: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        frame = self.models.frame
        rows = self.models.rows(len(frame))
        cards = frame["card_id"].astype(str).tolist()
        labels = frame["is_fraud"].astype(int).tolist()
        due: deque[tuple[float, list[dict[str, str]]]] = deque()
        i = 0
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                while due and due[0][0] <= time.monotonic():
                    _, feedback = due.popleft()
                    if client.post("/v1/feedback", json={"labels": feedback}).status_code < 300:
                        self.labels_sent += len(feedback)
                batch = [(i + k) % len(rows) for k in range(8)]
                i += 8
                instances = [{**rows[j], "card_id": cards[j]} for j in batch]
                try:
                    response = client.post("/v1/predict", json={"instances": instances})
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                answer: list[dict[str, Any]] = response.json()["predictions"]
                for row in answer:
                    self.answered[row["variant"]] += 1
                feedback = [
                    {"prediction_id": row["prediction_id"], "label": str(labels[j])}
                    for row, j in zip(answer, batch, strict=True)
                ]
                due.append((time.monotonic() + self.label_delay_s, feedback))
                self.stop.wait(self.pace_s)

    @contextmanager
    def running(self) -> Iterator[LateLabelTraffic]:
        thread = threading.Thread(target=self.run, name="traffic", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(timeout=30)


# --------------------------------------------------------------------------- rollout watcher


@dataclass
class RolloutWatcher:
    """Reads the model's rollout state from the registry every `every_s`, keeping each
    revision seen (with when it was first seen): what a serving replica would see."""

    settings: Settings
    model_name: str
    every_s: float = 0.2
    seen: dict[int, tuple[datetime, RolloutState]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = registry_client(self.settings)
        while not self.stop.is_set():
            try:
                state = read_rollout(client, self.model_name)
            except Exception:  # a busy SQLite file: read again next time
                state = None
            if state is not None:
                with self.lock:
                    self.seen.setdefault(state.revision, (datetime.now(UTC), state))
            self.stop.wait(self.every_s)

    def states(self) -> list[tuple[datetime, RolloutState]]:
        with self.lock:
            return [self.seen[r] for r in sorted(self.seen)]

    @contextmanager
    def running(self) -> Iterator[RolloutWatcher]:
        thread = threading.Thread(target=self.run, name="rollout-watcher", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(timeout=10)


# --------------------------------------------------------------------------- Prefect API


RETRIED_STATUS = frozenset({429, 502, 503})


@dataclass(frozen=True)
class Api:
    """The few Prefect REST calls the test makes (plain HTTP: it survives server restarts)."""

    url: str

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call, retried like Prefect's own client on 429/502/503 (a busy SQLite
        server answers 503 when its database is locked; the transaction rolled back)."""
        for delay in (0.5, 1.0, 2.0, 4.0, 0.0):
            response = httpx.request(method, f"{self.url}{path}", json=body, timeout=10)
            if response.status_code not in RETRIED_STATUS or not delay:
                break
            time.sleep(delay)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    def deployment_id(self, flow_name: str, name: str) -> str:
        return str(self._call("GET", f"/deployments/name/{flow_name}/{name}")["id"])

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "limit": 200}
        runs: list[dict[str, Any]] = self._post("/flow_runs/filter", body)
        return runs

    def flow_run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self._call("GET", f"/flow_runs/{run_id}")
        return run

    def create_run(self, deployment_id: str, parameters: dict[str, Any]) -> str:
        run = self._post(
            f"/deployments/{deployment_id}/create_flow_run", {"parameters": parameters}
        )
        return str(run["id"])

    def events(self, name: str, resource_id: str) -> list[dict[str, Any]]:
        body = {
            "filter": {"event": {"name": [name]}, "resource": {"id": [resource_id]}},
            "limit": 50,
        }
        found: list[dict[str, Any]] = self._post("/events/filter", body)["events"]
        return found


def related_flow_run(event: dict[str, Any]) -> str | None:
    """The flow run an event was emitted from (Prefect relates it to events of a run)."""
    for resource in event.get("related", []):
        if resource.get("prefect.resource.role") == "flow-run":
            return str(resource["prefect.resource.id"]).removeprefix("prefect.flow-run.")
    return None


# --------------------------------------------------------------------------- processes


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(stat[1]), []).append(int(entry.name))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        below = [child for parent in frontier for child in children.get(parent, [])]
        found += below
        frontier = below
    return found


def kill_hard(pid: int) -> list[int]:
    """SIGKILL a process and everything it started, as a lost machine would: no process
    of the tree gets to report anything. Returns the pids killed after `pid`."""
    tree = descendants(pid)
    for victim in (pid, *tree):
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return tree
