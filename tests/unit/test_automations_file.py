"""`infra/prefect/automations.yaml` against the code: events, flows, messages, idempotence.

The messages are rendered with the Prefect server's own template code (the one a
`send-notification` action runs), so a template that breaks, or a JSON body that does
not parse, shows up here rather than as a notification that never arrives.
"""

from __future__ import annotations

import ast
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prefect.server.events.schemas.events import ReceivedEvent
from prefect.server.utilities.user_templates import render_user_template_sync
from pydantic import SecretStr

import devstack.notifications_setup as setup
from devstack.localstack import notifications_line
from mlops import events
from mlops.errors import ConfigError
from mlops.notifications import (
    AUTOMATIONS_FILE,
    FLOW_RUN_CRASHED,
    FLOW_RUN_FAILED,
    NOTIFIED_EVENTS,
    AutomationsFile,
    defined_events,
    load_automations,
    message_templates,
)
from mlops.settings import NotificationSettings

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = load_automations(ROOT / AUTOMATIONS_FILE)
UI = "http://prefect.example:4200"
RUN_ID = uuid.UUID("0b7c5e8e-1d2f-4a55-9a63-3f9d2a3b4c5d")


def test_the_file_covers_every_event_people_must_hear_of() -> None:
    assert DOCUMENT.missing_events() == []
    assert set(NOTIFIED_EVENTS) >= {
        events.MODEL_ROLLED_BACK,
        events.MODEL_PROMOTED,
        events.BATCH_QUARANTINED,
        events.DATA_QUALITY_DEGRADED,
        events.DRIFT_ALARM_OVERDUE,
        events.ROLLOUT_EXPIRED,
        events.RETRAINING_EXPIRED,
        events.ROLLOUT_PAUSED,
        FLOW_RUN_FAILED,
        FLOW_RUN_CRASHED,
    }


def test_the_file_names_only_events_of_mlops_events() -> None:
    ours = {e for e in DOCUMENT.covered_events() if not e.startswith("prefect.")}
    assert ours <= defined_events()
    assert DOCUMENT.covered_events() - ours == {FLOW_RUN_FAILED, FLOW_RUN_CRASHED}
    names = [rule.name for rule in DOCUMENT.automations]
    assert len(names) == len(set(names))


def _flow_name(entrypoint: str) -> str:
    """The `@flow(name=...)` of an entrypoint, read from its source (no import)."""
    path, function = entrypoint.split(":")
    tree = ast.parse((ROOT / path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "flow":
                    for keyword in decorator.keywords:
                        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                            return str(keyword.value.value)
    raise AssertionError(f"{entrypoint}: no @flow(name=...)")


def test_failed_runs_are_reported_for_every_deployed_flow() -> None:
    document = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployed = {_flow_name(d["entrypoint"]) for d in document["deployments"] if "entrypoint" in d}
    [rule] = [r for r in DOCUMENT.automations if FLOW_RUN_FAILED in r.events]
    assert set(rule.events) == {FLOW_RUN_FAILED, FLOW_RUN_CRASHED}
    assert set(rule.flows) == deployed


def _write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "automations.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


RULE = {"name": "r", "events": [events.MODEL_PROMOTED], "subject": "s", "what": "w"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"automations": [{**RULE, "events": ["mlops.model.promotted"]}]}, "not defined"),
        ({"automations": [RULE, RULE]}, "unique"),
        ({"automations": [{**RULE, "what": "{{ event.resource.name "}]}, "what"),
        ({"automations": [{**RULE, "flows": ["training-pipeline"]}]}, "flow-run events"),
        ({"automations": [{**RULE, "events": [FLOW_RUN_FAILED]}]}, "names the flows"),
        ({"automations": [{**RULE, "colour": "red"}]}, "colour"),
        ({"automations": []}, "automations"),
    ],
)
def test_a_broken_file_is_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_automations(_write(tmp_path, {"version": 1, **change}))


def _event(name: str, resource: dict[str, str], payload: dict[str, Any]) -> ReceivedEvent:
    return ReceivedEvent.model_validate(
        {
            "occurred": datetime(2026, 3, 1, 12, tzinfo=UTC),
            "event": name,
            "resource": resource,
            "related": [],
            "payload": payload,
            "id": uuid.uuid4(),
        }
    )


def _render(
    document: AutomationsFile, event: ReceivedEvent, flow_run: Any, flow: Any
) -> dict[str, tuple[dict[str, Any], str, str]]:
    """Each rule reacting to `event`: (JSON body, text body, subject), as the server renders."""
    rendered = {}
    for rule in document.automations:
        if event.event not in rule.events:
            continue
        templates = message_templates(rule, document.defaults, UI)
        context = {
            "event": event,
            "flow_run": flow_run,
            "flow": flow,
            "automation": SimpleNamespace(name=rule.name),
        }
        rendered[rule.name] = (
            json.loads(render_user_template_sync(templates.json, context)),
            render_user_template_sync(templates.text, context),
            render_user_template_sync(templates.subject, context),
        )
    return rendered


@pytest.mark.parametrize("name", sorted(set(NOTIFIED_EVENTS) - {FLOW_RUN_FAILED, FLOW_RUN_CRASHED}))
def test_each_mlops_event_renders_what_model_version_why_and_the_run(name: str) -> None:
    resource = {
        "prefect.resource.id": "mlops.model.card_fraud",
        "prefect.resource.name": "card_fraud",
    }
    if name == events.BATCH_QUARANTINED:
        resource = {
            "prefect.resource.id": "mlops.dataset.card_fraud",
            "prefect.resource.name": "card_fraud",
        }
    reason = 'p99 "latency" 12 ms > 2 × 5 ms\nsecond line'
    event = _event(name, resource, {"version": 7, "reason": reason})
    run = {"id": RUN_ID, "name": "crimson-fox", "parameters": {"model_name": "card_fraud"}}
    [(message, text, subject)] = _render(DOCUMENT, event, run, {"name": "canary-rollout"}).values()
    assert message["event"] == name
    assert (message["model"], message["version"], message["reason"]) == ("card_fraud", "7", reason)
    assert message["flow_run_url"] == f"{UI}/runs/flow-run/{RUN_ID}"
    assert message["flow_run_id"] == str(RUN_ID) and message["flow"] == "canary-rollout"
    assert message["text"] == text and message["subject"] == subject
    assert "card_fraud" in message["what"] and "card_fraud" in subject
    assert f"model: card_fraud, version: 7\nwhy: {reason}\n" in text
    assert f"run: {UI}/runs/flow-run/{RUN_ID} (canary-rollout / crimson-fox)" in text


def test_an_event_from_outside_a_flow_run_still_renders() -> None:
    event = _event(
        events.MODEL_PROMOTED,
        {"prefect.resource.id": "mlops.model.m", "prefect.resource.name": "m"},
        {"version": "3", "reason": "manual promotion"},
    )
    [(message, text, _)] = _render(DOCUMENT, event, None, None).values()
    assert message["flow_run_url"] is None and message["flow_run_id"] is None
    assert message["version"] == "3" and message["reason"] == "manual promotion"
    assert "run: - (not emitted from a flow run)" in text


def test_a_failed_flow_run_renders_its_flow_state_message_and_link() -> None:
    event = _event(
        FLOW_RUN_FAILED,
        {"prefect.resource.id": f"prefect.flow-run.{RUN_ID}", "prefect.resource.name": "tame-owl"},
        {"validated_state": {"type": "FAILED", "message": "RuntimeError: boom"}},
    )
    run = {"id": RUN_ID, "name": "tame-owl", "parameters": {"params": {"model_name": "m"}}}
    [(message, text, subject)] = _render(
        DOCUMENT, event, run, {"name": "training-pipeline"}
    ).values()
    assert subject == "[mlops] training-pipeline run tame-owl failed"
    assert message["what"] == "Flow run tame-owl of training-pipeline failed."
    assert (message["model"], message["version"]) == ("m", "")
    assert message["reason"] == "RuntimeError: boom"
    assert message["flow_run_url"] == f"{UI}/runs/flow-run/{RUN_ID}"
    assert "version: -" in text


def test_the_webhook_block_posts_the_body_as_json_with_the_token() -> None:
    settings = NotificationSettings(
        url=SecretStr("http://hooks.example/x?k=1"), token=SecretStr("t0ken")
    )
    block = setup.notification_block(settings)
    request = block._build_request_args(body='{"text": "hi"}', subject="s")  # type: ignore[attr-defined]
    assert request["method"] == "POST" and request["url"] == "http://hooks.example/x?k=1"
    assert request["content"] == '{"text": "hi"}'
    assert request["headers"] == {
        "Content-Type": "application/json",
        "Authorization": "Bearer t0ken",
    }
    assert settings.destination() == "webhook http://hooks.example"


def test_slack_and_email_blocks_and_an_unconfigured_destination() -> None:
    slack = setup.notification_block(
        NotificationSettings(
            kind="slack", url=SecretStr("https://hooks.slack.com/services/A1/B2/C3")
        )
    )
    assert type(slack).__name__ == "SlackWebhook"
    email = NotificationSettings(
        kind="email", email_to="a@x.org, b@y.org", sendgrid_api_key=SecretStr("k")
    )
    block = setup.notification_block(email)
    assert type(block).__name__ == "SendgridEmail"
    assert block.to_emails == ["a@x.org", "b@y.org"]  # type: ignore[attr-defined]
    for unset in (NotificationSettings(), NotificationSettings(kind="email", email_to="a@x.org")):
        assert not unset.configured
        with pytest.raises(ConfigError, match="no destination"):
            setup.notification_block(unset)
        assert setup.ensure_notifications(unset, ROOT / AUTOMATIONS_FILE) is None


def test_make_up_says_in_one_line_that_notifications_are_off() -> None:
    line = notifications_line(NotificationSettings(), 9)
    assert "\n" not in line and "off" in line and "MLOPS_NOTIFICATIONS__URL" in line


class FakeAutomationClient:
    """The four calls `apply_automations` makes, on a dict instead of a server."""

    def __init__(self, store: dict[uuid.UUID, Any]) -> None:
        self.store = store

    def read_automations(self) -> list[Any]:
        return [SimpleNamespace(id=i, name=a.name, tags=a.tags) for i, a in self.store.items()]

    def create_automation(self, automation: Any) -> uuid.UUID:
        new = uuid.uuid4()
        self.store[new] = automation
        return new

    def update_automation(self, automation_id: uuid.UUID, automation: Any) -> None:
        assert automation_id in self.store
        self.store[automation_id] = automation

    def delete_automation(self, automation_id: uuid.UUID) -> None:
        del self.store[automation_id]


def test_applying_twice_updates_by_name_and_never_duplicates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store: dict[uuid.UUID, Any] = {}

    @contextmanager
    def fake_client(sync_client: bool = True) -> Iterator[FakeAutomationClient]:
        yield FakeAutomationClient(store)

    monkeypatch.setattr(setup, "get_client", fake_client)
    block_id = uuid.uuid4()
    specs = [
        setup.automation_spec(rule, DOCUMENT, block_id, "webhook", UI)
        for rule in DOCUMENT.automations
    ]
    names = sorted(spec.name for spec in specs)
    first = setup.apply_automations(specs, DOCUMENT.tag)
    assert sorted(first.created) == names and not first.updated and not first.deleted
    ids = set(store)
    # A person's own automation, a stale one of ours, a duplicate of ours.
    theirs = specs[0].model_copy(update={"name": "someone else's", "tags": []})
    store[uuid.uuid4()] = theirs
    store[uuid.uuid4()] = specs[0].model_copy(update={"name": "mlops: renamed away"})
    store[uuid.uuid4()] = specs[1]
    second = setup.apply_automations(specs, DOCUMENT.tag)
    assert sorted(second.updated) == names and not second.created
    assert sorted(second.deleted) == sorted(["mlops: renamed away", specs[1].name])
    assert sorted(a.name for a in store.values()) == sorted([*names, "someone else's"])
    assert ids <= set(store)  # updated in place, same ids
    third = setup.apply_automations(specs, DOCUMENT.tag)
    assert not third.created and not third.deleted and len(store) == len(specs) + 1


def test_flow_run_rules_match_the_listed_flows_only() -> None:
    block_id = uuid.uuid4()
    [rule] = [r for r in DOCUMENT.automations if FLOW_RUN_FAILED in r.events]
    spec = setup.automation_spec(rule, DOCUMENT, block_id, "slack", UI)
    related = spec.trigger.match_related  # type: ignore[union-attr]
    assert related.root == {  # type: ignore[union-attr]
        "prefect.resource.role": "flow",
        "prefect.resource.name": list(rule.flows),
    }
    # Slack and e-mail get the text, the generic webhook the JSON object.
    assert spec.actions[0].body.endswith(message_templates(rule, DOCUMENT.defaults, UI).text)  # type: ignore[union-attr]


def test_conditions_repeated_every_monitor_run_notify_once_per_period() -> None:
    block_id = uuid.uuid4()
    repeated = {r.name: r for r in DOCUMENT.automations if r.repeat_after_s}
    assert {e for r in repeated.values() for e in r.events} == {
        events.DATA_QUALITY_DEGRADED,
        events.DRIFT_ALARM_OVERDUE,
    }
    for rule in repeated.values():
        trigger = setup.automation_spec(rule, DOCUMENT, block_id, "webhook", UI).trigger
        assert trigger.within.total_seconds() == rule.repeat_after_s >= 3600  # type: ignore[union-attr]
        assert trigger.for_each == {"prefect.resource.id"}  # type: ignore[union-attr]
    [promoted] = [r for r in DOCUMENT.automations if events.MODEL_PROMOTED in r.events]
    trigger = setup.automation_spec(promoted, DOCUMENT, block_id, "webhook", UI).trigger
    assert trigger.within.total_seconds() == 0  # type: ignore[union-attr]
