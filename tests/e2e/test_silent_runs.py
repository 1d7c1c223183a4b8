"""A flow run whose worker died is noticed: the automation that crashes silent runs, and
the sweep under it.

On the session's real Prefect server: a running flow run beats (heartbeat events, as the
flow engine sends them with `PREFECT_FLOWS_HEARTBEAT_FREQUENCY`), then falls silent, as
when its worker is SIGKILLed. The automation `mlops: crash silent flow runs` (created by
`make up` / `mlops stack deploy`) must mark it Crashed, which frees its deployment's
concurrency slot; so must it a run killed before its first heartbeat (it turned Running);
a run that ended after its last heartbeat is left alone. The sweep
(`sweep-silent-runs`, `tasks.runs.crash_silent_runs`) crashes, on the same server, a
silent run and one stuck in Pending, and spares a run that beats and one that ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.events.schemas.events import ResourceSpecification
from prefect.states import Completed, Pending, Running

from devstack.notifications_setup import REAPER_NAME, ensure_reaper, reaper_spec
from mlops.settings import FlowRunSettings, get_settings
from tasks.runs import crash_silent_runs
from tests.polling import wait_for
from tests.prefect_events import drain_events

# The test beats by hand every 2 s: the reaper's silence can be Prefect's least (10 s),
# shorter than the 30 s the settings require of real runs' heartbeats.
FAST = FlowRunSettings.model_construct(heartbeat_s=2, crashed_after_s=10.0)


@flow(name="silent-run-probe")
def _probe() -> None:
    """Never run: only its flow record is needed to create runs."""


def _running(client: SyncPrefectClient, deployment: UUID) -> UUID:
    """A run of the deployment, turned Running (the server records the state change)."""
    run = client.create_flow_run_from_deployment(deployment, name=f"probe-{time.monotonic_ns()}")
    client.set_flow_run_state(run.id, Running(), force=True)
    return run.id


def _deployment(client: SyncPrefectClient) -> UUID:
    flow_id = client.create_flow(_probe)
    return client.create_deployment(flow_id=flow_id, name=f"probe-{time.monotonic_ns()}")


def _beat(run_id: UUID) -> None:
    emit_event(
        event="prefect.flow-run.heartbeat",
        resource={"prefect.resource.id": f"prefect.flow-run.{run_id}"},
    )
    drain_events(timeout=10)


def test_a_run_whose_heartbeats_stop_is_crashed_and_an_ended_one_is_not(
    prefect_api_url: str,
) -> None:
    applied = ensure_reaper(FAST)
    assert REAPER_NAME in applied.created + applied.updated
    with get_client(sync_client=True) as client:
        assert [a.name for a in client.read_automations()].count(REAPER_NAME) == 1
        deployment = _deployment(client)
        silent, unborn, ended = (_running(client, deployment) for _ in range(3))
        for _ in range(2):  # two of them beat, as live runs do; `unborn` died before its first
            _beat(silent)
            _beat(ended)
            time.sleep(FAST.heartbeat_s)
        client.set_flow_run_state(ended, Completed())

        def crashed(run: UUID) -> Callable[[], bool]:
            return lambda: client.read_flow_run(run).state_type is StateType.CRASHED

        wait_for(crashed(silent), "the silent run marked Crashed", 60, every=0.5)
        wait_for(crashed(unborn), "a run killed before its first beat Crashed", 30, every=0.5)
        state = client.read_flow_run(silent).state
        assert state is not None and "no heartbeat" in (state.message or "")
        assert client.read_flow_run(ended).state_type is StateType.COMPLETED
        ensure_reaper(FAST)  # applied again: updated, never duplicated
        assert [a.name for a in client.read_automations()].count(REAPER_NAME) == 1
        for automation in client.read_automations():
            if automation.name == REAPER_NAME:
                client.delete_automation(automation.id)


def test_the_reaper_waits_per_run_for_a_heartbeat_or_an_end() -> None:
    trigger = reaper_spec(FlowRunSettings()).trigger
    assert trigger.after == {"prefect.flow-run.Running", "prefect.flow-run.heartbeat"}
    assert trigger.match_related == ResourceSpecification({"prefect.resource.role": "deployment"})
    assert "prefect.flow-run.heartbeat" in trigger.expect
    assert {"prefect.flow-run.Completed", "prefect.flow-run.Crashed"} <= trigger.expect
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.within.total_seconds() == FlowRunSettings().crashed_after_s


def test_the_sweep_crashes_runs_gone_silent_or_never_started(prefect_api_url: str) -> None:
    # Silence of 8 beats (real runs: 3): the server stores events some seconds late.
    limits = FlowRunSettings.model_construct(
        heartbeat_s=2, crashed_after_s=16.0, pending_after_s=16.0
    )
    settings = get_settings().model_copy(update={"runs": limits})
    with get_client(sync_client=True) as client:
        deployment = _deployment(client)
        silent, alive, ended = (_running(client, deployment) for _ in range(3))
        stuck = client.create_flow_run_from_deployment(deployment, name="stuck").id
        client.set_flow_run_state(stuck, Pending(), force=True)
        _beat(silent)
        _beat(ended)
        client.set_flow_run_state(ended, Completed())
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < limits.crashed_after_s + 1:
            _beat(alive)  # a live run keeps beating
            time.sleep(limits.heartbeat_s)
        _beat(alive)
        crashed = {run.run_id: run.reason for run in crash_silent_runs.fn(settings=settings)}
        assert str(silent) in crashed and "no heartbeat" in crashed[str(silent)]
        assert str(stuck) in crashed and crashed[str(stuck)].startswith("Pending for")
        assert str(alive) not in crashed and str(ended) not in crashed
        for run, expected in (
            (silent, StateType.CRASHED),
            (stuck, StateType.CRASHED),
            (alive, StateType.RUNNING),
            (ended, StateType.COMPLETED),
        ):
            state = client.read_flow_run(run).state
            assert state is not None and state.type is expected, (run, state)
        crashed_state = client.read_flow_run(silent).state
        assert crashed_state is not None and "silent-run sweep" in (crashed_state.message or "")
        client.set_flow_run_state(alive, Completed())
