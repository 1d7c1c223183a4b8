"""From a drift event to a retraining run, through the server's trigger and a real worker.

`mlops.drift.detected` is emitted the way the drift monitor emits it; the
`training-pipeline/on-drift` deployment's trigger must start a run with parameters
templated from the event, the run must train on a window reaching back to the drift
onset, and a second alarm inside the cooldown must be held back by the guardrails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.events import Event, emit_event
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelled, Running, Scheduled

from mlops.events import DRIFT_DETECTED, model_resource_id
from mlops.retraining import GuardOutcome, recent_alarms, retrain_runs
from mlops.synthetic import Scenario, generate, write_batch
from tests.e2e.prefect_stack import PrefectStack, prefect_stack_fixture  # noqa: F401
from tests.prefect_events import on_server

MODEL = "card_fraud"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass(frozen=True)
class Triggered:
    """A flow run started by an event, with what the test measured."""

    event: Event
    run: dict[str, Any]
    states: list[dict[str, Any]]

    def state_time(self, state_type: str) -> datetime:
        stamps = [s["timestamp"] for s in self.states if s["type"] == state_type]
        assert stamps, f"the run never was {state_type}: {[s['type'] for s in self.states]}"
        return datetime.fromisoformat(stamps[0])

    def latency(self, state_type: str) -> float:
        return (self.state_time(state_type) - self.event.occurred).total_seconds()


def emit(api_url: str, payload: dict[str, Any]) -> Event:
    """Emit a drift alarm with `emit_event`, as the drift monitor does, to this server."""
    with on_server(api_url):
        event = emit_event(
            event=DRIFT_DETECTED,
            resource={
                "prefect.resource.id": model_resource_id(MODEL),
                "prefect.resource.name": MODEL,
            },
            payload=payload,
        )
    assert event is not None
    return event


def wait_for_run(api: httpx.Client, event: Event, timeout: float = 240.0) -> Triggered:
    """The `on-drift` run whose parameters carry this event's id, once it has ended."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if run is None:
            runs = api.post(
                "/flow_runs/filter",
                json={"deployments": {"name": {"any_": ["on-drift"]}}},
            ).json()
            matching = [r for r in runs if _event_id(r) == str(event.id)]
            assert len(matching) <= 1, "one event, one run"
            run = matching[0] if matching else None
        else:
            run = api.get(f"/flow_runs/{run['id']}").json()
            if run["state_type"] in FINAL:
                states = api.get("/flow_run_states/", params={"flow_run_id": run["id"]}).json()
                return Triggered(event=event, run=run, states=states)
        time.sleep(0.5)
    raise AssertionError(f"no finished on-drift run for event {event.id} after {timeout} s: {run}")


def _event_id(run: dict[str, Any]) -> str | None:
    retrain = (run.get("parameters") or {}).get("params", {}).get("retrain") or {}
    value = retrain.get("event_id")
    return None if value is None else str(value)


def _report(label: str, triggered: Triggered) -> None:
    created = (
        datetime.fromisoformat(triggered.run["created"]) - triggered.event.occurred
    ).total_seconds()
    print(  # noqa: T201 - the latency is a reported result of this test
        f"\n{label}: event -> run created {created:.2f} s, -> pending (worker picked it up) "
        f"{triggered.latency('PENDING'):.2f} s, -> running {triggered.latency('RUNNING'):.2f} s"
    )


@pytest.fixture(scope="module")
def api(prefect_stack: PrefectStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=prefect_stack.api_url, timeout=10.0) as client:
        yield client


def test_a_drift_event_starts_a_retraining_and_the_cooldown_holds_the_next_one(
    prefect_stack: PrefectStack,
    api: httpx.Client,
) -> None:
    assert "on-drift" in prefect_stack.deployments
    settings = prefect_stack.settings()
    now = datetime.now(UTC)
    landing = settings.landing_dir / MODEL
    write_batch(
        generate(Scenario.BASELINE, 2000, now - timedelta(days=6), days=3), landing / "b1.parquet"
    )
    write_batch(
        generate(Scenario.COVARIATE_SHIFT, 1500, now - timedelta(days=3), days=3),
        landing / "b2.parquet",
    )
    # The window is 2 days (WORKER_ENV); the drift began 4 days ago.
    onset = now - timedelta(days=4)
    # The drift monitor's payload (mlops.monitoring.drift_payload), with the onset.
    payload = {
        "model_name": MODEL,
        "drift_share": 0.6,
        "drifted_features": ["amount", "distance_from_home_km"],
        "window_start": (now - timedelta(hours=1)).isoformat(),
        "window_end": now.isoformat(),
        "onset": onset.isoformat(),
        "reason": "covariate shift in amount",
    }

    first = wait_for_run(api, emit(prefect_stack.api_url, payload))
    _report("first alarm", first)

    assert first.run["state_type"] == "COMPLETED", first.run["state"]
    assert first.run["parameters"]["params"] == {
        "dataset_config": "datasets/card_fraud.yaml",
        "policy": "quarantine-rows",
        "retrain": {
            "trigger": "drift",
            "event_id": str(first.event.id),
            "model_name": MODEL,
            "reason": "covariate shift in amount",
            "drift_share": 0.6,
            "drifted_features": ["amount", "distance_from_home_km"],
            "onset": onset.isoformat(),
        },
    }
    assert first.latency("RUNNING") < 60, "event to run start (target: 10 s, see report)"
    [run] = retrain_runs(settings, MODEL)
    assert run.key == f"event:{first.event.id}" and run.status == "registered"
    # The window reached back to the onset: the baseline rows after it are in the batch.
    assert run.window_start == onset
    landed = pd.concat(pd.read_parquet(p) for p in sorted(landing.glob("*.parquet")))
    stamps = pd.to_datetime(landed["event_timestamp"], utc=True)
    assert run.rows == int(((stamps >= onset) & (stamps <= run.window_end)).sum()) > 1500

    second = wait_for_run(api, emit(prefect_stack.api_url, payload | {"reason": "again"}))
    _report("second alarm", second)

    assert second.run["state_type"] == "COMPLETED"
    assert second.run["state"]["message"].startswith("suppressed: cooldown")
    assert len(retrain_runs(settings, MODEL)) == 1, "no second retraining"
    outcomes = {a.key: a.outcome for a in recent_alarms(settings, MODEL)}
    assert outcomes[f"event:{second.event.id}"] is GuardOutcome.SUPPRESSED
    artifacts = api.post(
        "/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [second.run["id"]]}}},
    ).json()
    [guardrails] = [a for a in artifacts if a["key"] == "retraining-guardrails-card-fraud"]
    assert "cooldown" in guardrails["data"] and "suppressed" in guardrails["description"]


def test_only_a_due_retraining_run_holds_the_monitors_alarm(prefect_stack: PrefectStack) -> None:
    """A queued or running retraining already decides on the drift: the monitor holds its
    alarm. Tomorrow's nightly run does not: the alarm must not wait for it."""
    from flows.training import training_pipeline
    from tasks.drift import retraining_in_flight

    with temporary_settings({PREFECT_API_URL: prefect_stack.api_url}):
        with get_client(sync_client=True) as client:
            nightly = client.read_deployment_by_name("training-pipeline/scheduled")
            tomorrow = client.create_flow_run_from_deployment(
                nightly.id, state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=1))
            )
            try:
                assert retraining_in_flight(MODEL) is None
                # Not from a deployment: no worker picks it up while the test looks.
                running = client.create_flow_run(
                    training_pipeline,
                    parameters={"params": {"retrain": {"trigger": "drift", "model_name": MODEL}}},
                    tags=["retraining"],
                    state=Running(),
                )
                try:
                    assert retraining_in_flight(MODEL) == running.name
                    assert retraining_in_flight("another_model") is None
                finally:
                    client.set_flow_run_state(running.id, Cancelled(), force=True)
            finally:
                client.set_flow_run_state(tomorrow.id, Cancelled(), force=True)
            assert retraining_in_flight(MODEL) is None
