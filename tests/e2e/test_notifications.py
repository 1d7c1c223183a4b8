"""People are told: the automations of `infra/prefect/automations.yaml` on a real server.

The block and automations are created with `devstack.notifications_setup` (what `make up`
runs) against the session's Prefect server, pointing at a real HTTP receiver on a free
port. Each event of the loop is emitted with `emit_event` from inside a flow run, as
the tasks emit them; a run of one of the loop's flows fails. The server's trigger and
action services must deliver exactly one POST per event, saying what happened, to which
model and version, why, and linking the flow run in the UI.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.events import emit_event
from prefect.events.filters import EventFilter
from pydantic import SecretStr

from devstack.notifications_setup import ensure_notifications
from mlops import events
from mlops.events import dataset_resource, model_resource, model_resource_id
from mlops.notifications import AUTOMATIONS_FILE, load_automations
from mlops.settings import NotificationSettings
from tests.polling import wait_for
from tests.webhook_support import Receiver, webhook_receiver

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / AUTOMATIONS_FILE
TOKEN = "webhook-secret"
MODEL_EVENTS = (
    events.MODEL_PROMOTED,
    events.MODEL_ROLLED_BACK,
    events.ROLLOUT_PAUSED,
    events.ROLLOUT_EXPIRED,
    events.DATA_QUALITY_DEGRADED,
    events.DRIFT_ALARM_OVERDUE,
    events.RETRAINING_EXPIRED,
)
REPEATED_EVENTS = (events.DATA_QUALITY_DEGRADED, events.DRIFT_ALARM_OVERDUE)
"""Emitted by every monitor run while they last; their rules send one message an hour or
more per model (`repeat_after_s`)."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as box:
        yield box


@flow(name="notification-probe")
def emit_loop_events(model: str, dataset: str, tag: str) -> None:
    """Emit each event of the loop the way its task does: inside a flow run."""
    for number, name in enumerate(MODEL_EVENTS, start=1):
        emit_event(
            event=name,
            resource=model_resource(model),
            payload={"version": str(number), "reason": f"{tag}: why {name}"},
        )
    # The monitor's next run while the incident lasts and the alarm waits: no new message.
    for number, name in enumerate(MODEL_EVENTS, start=1):
        if name in REPEATED_EVENTS:
            emit_event(
                event=name,
                resource=model_resource(model),
                payload={"version": str(number), "reason": f"{tag}: why {name}"},
            )
    emit_event(
        event=events.BATCH_QUARANTINED,
        resource=dataset_resource(dataset),
        payload={"version": "batch-sha", "reason": f"{tag}: why quarantined", "model": model},
    )


@flow(name="drift-monitor")
def failing_loop_flow(model_name: str, message: str) -> None:
    """A run of one of the loop's flows (by name) that fails."""
    raise RuntimeError(message)


@flow(name="notification-probe-failing")
def failing_other_flow(message: str) -> None:
    """A failing flow that is not the loop's: nobody is told."""
    raise RuntimeError(message)


@pytest.fixture
def notifications(prefect_api_url: str, receiver: Receiver) -> Iterator[NotificationSettings]:
    """The block and the automations of the file, pointing at the receiver; removed after."""
    settings = NotificationSettings(
        url=SecretStr(receiver.url),
        token=SecretStr(TOKEN),
        block_name=f"mlops-test-{uuid.uuid4().hex[:8]}",
    )
    document = load_automations(FILE)
    first = ensure_notifications(settings, FILE)
    second = ensure_notifications(settings, FILE)
    assert first is not None and second is not None
    names = {rule.name for rule in document.automations}
    assert set(first.created) == names and not first.deleted
    # Created twice: updated by name, never duplicated.
    assert set(second.updated) == names and not second.created and not second.deleted
    with get_client(sync_client=True) as client:
        ours = [a for a in client.read_automations() if document.tag in a.tags]
        assert sorted(a.name for a in ours) == sorted(names)
    try:
        yield settings
    finally:
        with get_client(sync_client=True) as client:
            for automation in client.read_automations():
                if document.tag in automation.tags:
                    client.delete_automation(automation.id)
            block = client.read_block_document_by_name(settings.block_name, "custom-webhook")
            client.delete_block_document(block.id)


def test_each_event_and_failed_run_notifies_once(
    prefect_api_url: str, receiver: Receiver, notifications: NotificationSettings
) -> None:
    tag = uuid.uuid4().hex[:8]
    model, dataset = f"card_fraud_{tag}", f"card_fraud_{tag}_data"
    ui = prefect_api_url.removesuffix("/api")

    # A failing flow that is not the loop's is not reported (checked at the end).
    other: State[Any] = failing_other_flow(f"{tag}: not ours", return_state=True)
    assert other.is_failed()

    emitted: State[Any] = emit_loop_events(model, dataset, tag, return_state=True)
    assert emitted.is_completed()
    run_id = str(emitted.state_details.flow_run_id)

    def ours() -> dict[str, list[dict[str, Any]]]:
        by_event: dict[str, list[dict[str, Any]]] = {}
        for post in receiver.posts():
            message = post["json"]
            if message["model"] == model or tag in message["reason"]:
                by_event.setdefault(message["event"], []).append(post)
        return by_event

    expected = {*MODEL_EVENTS, events.BATCH_QUARANTINED}
    wait_for(lambda: expected <= ours().keys(), f"one POST for each of {sorted(expected)}", 60)
    received = ours()
    for name in expected:
        assert len(received[name]) == 1, f"{name}: {len(received[name])} POSTs"
        post = received[name][0]
        assert post["path"] == "/hooks/mlops"
        assert post["headers"]["authorization"] == f"Bearer {TOKEN}"
        assert post["headers"]["content-type"] == "application/json"
        message = post["json"]
        assert message["model"] == model
        assert message["reason"] == f"{tag}: why {name}" or name == events.BATCH_QUARANTINED
        assert message["flow_run_id"] == run_id
        assert message["flow_run_url"] == f"{ui}/runs/flow-run/{run_id}"
        assert message["flow"] == "notification-probe"
        assert message["automation"].startswith("mlops: ")
        text = message["text"]
        assert f"model: {model}, version: {message['version']}" in text
        assert f"why: {message['reason']}" in text
        assert f"run: {ui}/runs/flow-run/{run_id}" in text
        assert message["subject"].startswith("[mlops] ")
    for number, name in enumerate(MODEL_EVENTS, start=1):
        assert received[name][0]["json"]["version"] == str(number)
        assert received[name][0]["json"]["resource"] == model_resource_id(model)
    quarantine = received[events.BATCH_QUARANTINED][0]["json"]
    assert quarantine["version"] == "batch-sha"
    assert quarantine["reason"] == f"{tag}: why quarantined"
    assert quarantine["resource"] == dataset_resource(dataset)["prefect.resource.id"]
    assert dataset in quarantine["what"]
    promoted = received[events.MODEL_PROMOTED][0]["json"]
    assert promoted["what"] == f"Model {model} version 1 was promoted to champion."

    failed: State[Any] = failing_loop_flow(model, f"{tag}: boom", return_state=True)
    assert failed.is_failed()
    failed_id = str(failed.state_details.flow_run_id)

    def failure_posts() -> list[dict[str, Any]]:
        return [p["json"] for p in receiver.posts() if p["json"].get("flow_run_id") == failed_id]

    wait_for(failure_posts, "a POST for the failed run of drift-monitor", 60)
    [message] = failure_posts()
    assert message["event"] == "prefect.flow-run.Failed"
    assert message["flow"] == "drift-monitor"
    assert message["model"] == model  # the run's `model_name` parameter
    assert f"{tag}: boom" in message["reason"]
    assert message["flow_run_url"] == f"{ui}/runs/flow-run/{failed_id}"
    assert message["subject"].endswith(" failed")
    assert "drift-monitor" in message["text"] and f"{tag}: boom" in message["text"]

    # Nothing else of ours: one POST per event (the repeated ones too, once the server
    # holds them), none for the other flow's failure.
    with get_client(sync_client=True) as client:
        repeats = EventFilter.model_validate(
            {
                "event": {"name": list(REPEATED_EVENTS)},
                "resource": {"id": [model_resource_id(model)]},
            }
        )
        wait_for(
            lambda: len(client.read_events(repeats, limit=10).events) == 2 * len(REPEATED_EVENTS),
            "the repeated events in the server's event log",
            60,
            every=0.2,
        )
    assert all(len(posts) == 1 for posts in ours().values()), ours().keys()
    assert not [p for p in receiver.posts() if "not ours" in p["json"].get("reason", "")]
