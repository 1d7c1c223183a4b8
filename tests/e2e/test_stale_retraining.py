"""Stale work expires: a retraining the ledger says is running whose flow run is gone.

On the real Prefect server of the session's stack: a retraining flow run is recorded as
running in the ledger (it took a deferred alarm over, and held the monitor's next alarm
back); then its flow run crashes, is cancelled, fails, completes without recording an
outcome, is deleted, or its worker dies leaving it Running. The next
`expire_stale_retrainings` (what the monitor and the retraining guard call before they
decide) asks Prefect, marks the ledger row failed with the reason, reopens the alarms
it held, and emits `mlops.retraining.expired`; the monitor's next alarm is raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelled, Completed, Crashed, Failed, Running

from mlops.events import RETRAINING_EXPIRED, model_resource_id
from mlops.retraining import (
    GuardOutcome,
    RetrainRequest,
    RunStatus,
    check_retrain,
    hold_alarm,
    pending_alarms,
    retrain_runs,
)
from mlops.settings import Settings
from tests import prefect_events
from tests.e2e.conftest import mlops_env
from tests.e2e.prefect_stack import PrefectStack, prefect_stack_fixture  # noqa: F401
from tests.polling import wait_for

MODEL = "stale_fraud"
"""Not the model of the other e2e tests: their in-flight checks must not see these runs."""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Settings]:
    """The process-wide settings on a ledger of this test's own (debounce off)."""
    with mlops_env(tmp_path / "mlops", MLOPS_RETRAINING__DEBOUNCE_S="0") as settings:
        yield settings


@contextmanager
def on_server(api_url: str) -> Iterator[SyncPrefectClient]:
    """A client of the stack's server, where emitted events go too."""
    with prefect_events.on_server(api_url), get_client(sync_client=True) as client:
        yield client


def alarm(name: str) -> RetrainRequest:
    return RetrainRequest(event_id=f"{name}-{time.time_ns()}", model_name=MODEL)


def start_retraining(
    client: SyncPrefectClient, settings: Settings, now: datetime
) -> tuple[FlowRun, dict[str, str]]:
    """A running retraining flow run, in the ledger as running, holding three alarms."""
    from flows.training import training_pipeline

    run = client.create_flow_run(
        training_pipeline,
        parameters={"params": {"retrain": {"trigger": "drift", "model_name": MODEL}}},
        tags=["retraining"],
        state=Running(),
    )
    deferred = hold_alarm(
        alarm("d0"), settings, now=now - timedelta(minutes=10), rollout_active=True
    )
    assert deferred is not None and deferred.outcome is GuardOutcome.DEFERRED
    decision = check_retrain(
        alarm("e1"),
        settings,
        now=now - timedelta(minutes=5),
        rollout_active=False,
        new_rows=5_000,
        run_id=str(run.id),
    )
    assert decision.proceed and decision.takes_over == (deferred.key,)
    held = hold_alarm(alarm("m1"), settings, now=now - timedelta(minutes=1), rollout_active=False)
    assert held is not None and held.held_by == decision.key
    assert pending_alarms(settings, MODEL) == ()
    return run, {"d0": deferred.key, "e1": decision.key, "m1": held.key}


ENDINGS: dict[str, tuple[Callable[[SyncPrefectClient, FlowRun], object], str]] = {
    "crashed": (
        lambda c, r: c.set_flow_run_state(r.id, Crashed(message="worker killed"), force=True),
        "is Crashed: worker killed",
    ),
    "cancelled": (lambda c, r: c.set_flow_run_state(r.id, Cancelled(), force=True), "Cancelled"),
    "failed": (lambda c, r: c.set_flow_run_state(r.id, Failed(), force=True), "is Failed"),
    "completed": (
        lambda c, r: c.set_flow_run_state(r.id, Completed(), force=True),
        "is Completed without recording an outcome",
    ),
    "deleted": (lambda c, r: c.delete_flow_run(r.id), "was deleted"),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_retraining_whose_flow_run_ended_expires_and_its_alarms_wait_again(
    prefect_stack: PrefectStack, ledger: Settings, ending: str
) -> None:
    from tasks.drift import retraining_in_flight
    from tasks.retraining import expire_stale_retrainings

    end_run, says = ENDINGS[ending]
    now = datetime.now(UTC)
    with on_server(prefect_stack.api_url) as client:
        run, keys = start_retraining(client, ledger, now)
        # Running, beating: nothing expires, and the run is in flight.
        assert expire_stale_retrainings(MODEL, now=now) == ()
        assert retraining_in_flight(MODEL) == run.name
        end_run(client, run)
        [expired] = expire_stale_retrainings(MODEL, now=now)
        assert retraining_in_flight(MODEL) is None
    assert says in expired.reason and str(run.id) in expired.reason
    assert expired.reopened == tuple(sorted(keys.values()))
    [row] = retrain_runs(ledger, MODEL)
    assert row.status == RunStatus.FAILED.value and row.detail == f"expired: {expired.reason}"
    waiting = {a.key: a.outcome for a in pending_alarms(ledger, MODEL)}
    assert waiting == dict.fromkeys(keys.values(), GuardOutcome.DEFERRED)
    # The monitor's next alarm is no longer held by the dead run.
    assert hold_alarm(alarm("m2"), ledger, now=now, rollout_active=False) is None
    [event] = events_about(
        prefect_stack.api_url,
        RETRAINING_EXPIRED,
        lambda e: e["payload"].get("run_id") == str(run.id),
    )
    assert event["resource"]["prefect.resource.name"] == MODEL
    assert event["payload"]["key"] == keys["e1"] and event["payload"]["reason"] == expired.reason
    assert event["payload"]["started_at"] == row.started_at.isoformat()


def test_a_killed_workers_run_left_running_on_the_server_expires_by_its_heartbeat(
    prefect_stack: PrefectStack, ledger: Settings
) -> None:
    """A worker killed hard cannot report: its flow run stays Running on the server. The
    silent heartbeat expires the ledger row, and the monitor stops waiting for it."""
    from tasks.drift import retraining_in_flight
    from tasks.retraining import expire_stale_retrainings

    now = datetime.now(UTC)
    with on_server(prefect_stack.api_url) as client:
        run, keys = start_retraining(client, ledger, now)
        try:
            assert retraining_in_flight(MODEL) == run.name
            # 20 min later: 25 min after its last beat (the decision), 15 min allowed.
            silent = now + timedelta(minutes=20)
            assert retraining_in_flight(MODEL, now=silent) is None
            [expired] = expire_stale_retrainings(MODEL, now=silent)
            assert client.read_flow_run(run.id).state_type is StateType.RUNNING
        finally:
            client.set_flow_run_state(run.id, Cancelled(), force=True)
    assert expired.reason.startswith("last heartbeat for 25 min (limit 15 min)")
    assert expired.reopened == tuple(sorted(keys.values()))
    assert hold_alarm(alarm("m2"), ledger, now=silent, rollout_active=False) is None


def events_about(
    api_url: str, name: str, where: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Events `name` about MODEL from the last hour for which `where` holds (polled until
    one arrives)."""
    body = {
        "filter": {
            "event": {"name": [name]},
            "resource": {"id": [model_resource_id(MODEL)]},
            "occurred": {"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
        },
        "limit": 50,
    }
    with httpx.Client(base_url=api_url, timeout=10.0) as api:

        def matching() -> list[dict[str, Any]]:
            found = api.post("/events/filter", json=body).raise_for_status().json()["events"]
            return [e for e in found if where(e)]

        return wait_for(matching, f"{name} about {MODEL} on the server", 20, every=0.5)


def test_a_held_alarm_tells_people_and_an_old_one_is_overdue(
    prefect_stack: PrefectStack, ledger: Settings
) -> None:
    """The monitor's task holds an alarm during a data-quality incident and says so; the
    model's oldest pending alarm has waited 30 h (24 h allowed): overdue."""
    from prefect import flow

    from mlops.drift import DriftReport, DriftStatus
    from mlops.events import DRIFT_ALARM_HELD, DRIFT_ALARM_OVERDUE
    from mlops.monitoring import Champion
    from tasks.drift import hold_alarm_task

    now = datetime.now(UTC)
    waiting = hold_alarm(alarm("d0"), ledger, now=now - timedelta(hours=30), rollout_active=True)
    assert waiting is not None
    champion = Champion(
        name=MODEL, version="3", run_id="", reference_id=f"{MODEL}-v3", cache_dir=str(ledger.home)
    )
    report = DriftReport(
        reference_id=champion.reference_id,
        status=DriftStatus.EVALUATED,
        current_rows=500,
        drift_share=0.5,
        columns=(),
        n_drifted=3,
        share_drifted=0.6,
        dataset_drift=True,
    )

    @flow(name="hold-alarm-probe")
    def probe() -> Any:
        return hold_alarm_task(
            champion, report, now - timedelta(hours=1), now, quality_incident="amount is null"
        )

    with on_server(prefect_stack.api_url):
        held = probe()
    assert held is not None and held.outcome is GuardOutcome.QUALITY_HOLD
    assert "amount is null" in held.reason
    keys = [a.key for a in pending_alarms(ledger, MODEL)]
    assert keys == [waiting.key, held.key]
    [told] = events_about(
        prefect_stack.api_url, DRIFT_ALARM_HELD, lambda e: e["payload"]["key"] == held.key
    )
    assert told["payload"] == {
        "version": "3",
        "reason": held.reason,
        "outcome": "quality_hold",
        "key": held.key,
        "waiting_since": waiting.decided_at.isoformat(),
    }
    [late] = events_about(
        prefect_stack.api_url,
        DRIFT_ALARM_OVERDUE,
        lambda e: e["payload"]["oldest_key"] == waiting.key,
    )
    assert late["payload"]["version"] == "3" and late["payload"]["waiting_s"] >= 30 * 3600
    assert "waited 30.0 h" in late["payload"]["reason"]
    assert "canary rollout" in late["payload"]["reason"]
