"""Create the loop's notification block and automations on a Prefect server.

Part of the local stack supervisor, beside `devstack.localstack` (it imports Prefect,
as the entry points may): `make up` and `mlops stack deploy` run
`python -m devstack.notifications_setup` against the stack's server. It saves the
notification block the settings describe (`NotificationSettings`: a
`CustomWebhookNotificationBlock` posting JSON by default, a `SlackWebhook`, or
`SendgridEmail`), then makes the server's automations match
`infra/prefect/automations.yaml`: an automation of the file is updated in place when one
of its name exists (extra copies are deleted) and created otherwise; an automation
carrying the file's tag whose name left the file is deleted. Running it twice changes
nothing the second time.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from uuid import UUID

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import (
    CustomWebhookNotificationBlock,
    SendgridEmail,
    SlackWebhook,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import (
    AutomationCore,
    EventTrigger,
    Posture,
)
from prefect.events.schemas.events import ResourceSpecification
from prefect.settings import PREFECT_UI_URL

from mlops.errors import ConfigError
from mlops.notifications import (
    AUTOMATIONS_FILE,
    PREFECT_EVENTS,
    AutomationsFile,
    NotificationRule,
    load_automations,
    message_templates,
)
from mlops.settings import FlowRunSettings, NotificationSettings, get_settings

logger = logging.getLogger(__name__)


def notification_block(settings: NotificationSettings) -> NotificationBlock:
    """The Prefect notification block the settings describe (not saved).

    The generic webhook posts the rendered message body as is, with a JSON content
    type: the automations render a JSON object for it (`MessageTemplates.json`).

    Raises:
        ConfigError: the settings name no destination.
    """
    if not settings.configured:
        raise ConfigError(f"notifications: no destination for kind {settings.kind!r}")
    if settings.kind == "email":
        assert settings.sendgrid_api_key is not None
        return SendgridEmail(
            api_key=settings.sendgrid_api_key,
            sender_email=settings.email_from,
            to_emails=settings.recipients,
        )
    assert settings.url is not None
    if settings.kind == "slack":
        return SlackWebhook(url=settings.url)
    headers = {"Content-Type": "application/json"}
    secrets: dict[str, str] = {}
    if settings.token is not None:
        headers["Authorization"] = "Bearer {{token}}"
        secrets["token"] = settings.token.get_secret_value()
    return CustomWebhookNotificationBlock(
        name=settings.block_name,
        url=settings.url.get_secret_value(),
        method="POST",
        form_data="{{body}}",
        headers=headers,
        cookies=None,
        secrets=secrets,  # type: ignore[arg-type]  # pydantic turns the dict into a SecretDict
    )


def save_block(settings: NotificationSettings) -> UUID:
    """Save (overwrite) the notification block under `settings.block_name`; its id."""
    block_id = notification_block(settings).save(settings.block_name, overwrite=True)
    assert isinstance(block_id, UUID)
    return block_id


def automation_spec(
    rule: NotificationRule,
    document: AutomationsFile,
    block_id: UUID,
    kind: str,
    ui_url: str | None,
) -> AutomationCore:
    """One rule as a Prefect automation: an event trigger and a send-notification action.

    Each matching event fires it once (reactive, threshold 1); with `repeat_after_s`,
    the first event fires it and the model's next ones within that time do not (Prefect
    opens the next bucket after the period). Flow-run rules match only runs whose
    related flow is one of `rule.flows`.
    """
    templates = message_templates(rule, document.defaults, ui_url)
    match_related = ResourceSpecification.model_validate({})  # any (or no) related resource
    if PREFECT_EVENTS.intersection(rule.events):
        match_related = ResourceSpecification.model_validate(
            {"prefect.resource.role": "flow", "prefect.resource.name": list(rule.flows)}
        )
    trigger = EventTrigger(
        expect=set(rule.events),
        posture=Posture.Reactive,
        threshold=1,
        within=timedelta(seconds=rule.repeat_after_s),
        for_each={"prefect.resource.id"} if rule.repeat_after_s else set(),
        match_related=match_related,
    )
    action = SendNotification(
        block_document_id=block_id,
        subject=templates.subject,
        body=templates.json if kind == "webhook" else templates.text,
    )
    return AutomationCore(
        name=rule.name,
        description=rule.description,
        enabled=True,
        tags=[document.tag],
        trigger=trigger,
        actions=[action],
    )


@dataclass
class Applied:
    """What one run changed on the server (automation names)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: how many automations were created, updated and deleted."""
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, {len(self.deleted)} deleted"
        )


def apply_automations(specs: Sequence[AutomationCore], tag: str) -> Applied:
    """Make the server's automations match `specs`: update by name, never duplicate.

    An automation of the same name is updated (further ones of that name are deleted);
    a missing one is created; one tagged `tag` whose name is not in `specs` is deleted.
    """
    applied = Applied()
    wanted = {spec.name for spec in specs}
    with get_client(sync_client=True) as client:
        existing = client.read_automations()
        for spec in specs:
            same_name = [a for a in existing if a.name == spec.name]
            if same_name:
                client.update_automation(same_name[0].id, spec)
                applied.updated.append(spec.name)
                for extra in same_name[1:]:
                    client.delete_automation(extra.id)
                    applied.deleted.append(extra.name)
            else:
                client.create_automation(spec)
                applied.created.append(spec.name)
        for stale in existing:
            if tag in stale.tags and stale.name not in wanted:
                client.delete_automation(stale.id)
                applied.deleted.append(stale.name)
    return applied


def ensure_notifications(
    settings: NotificationSettings,
    path: Path = AUTOMATIONS_FILE,
    ui_url: str | None = None,
) -> Applied | None:
    """Save the block and apply the automations of `path`; None when not configured.

    Args:
        settings: the destination; nothing is created without one.
        path: the automations file.
        ui_url: base of the run links in messages; `settings.ui_url`, else the client's
            PREFECT_UI_URL (derived from PREFECT_API_URL) when None.
    """
    if not settings.configured:
        logger.info("notifications: no destination configured; no automation created")
        return None
    document = load_automations(path)
    base = ui_url or settings.ui_url or PREFECT_UI_URL.value()
    block_id = save_block(settings)
    specs = [
        automation_spec(rule, document, block_id, settings.kind, base)
        for rule in document.automations
    ]
    return apply_automations(specs, document.tag)


REAPER_NAME = "mlops: crash silent flow runs"
REAPER_TAG = "mlops-runs"
FLOW_RUN_HEARTBEAT = "prefect.flow-run.heartbeat"
FLOW_RUN_RUNNING = "prefect.flow-run.Running"
FLOW_RUN_ENDS = frozenset(
    {"prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Cancelled"}
    | {"prefect.flow-run.Crashed"}
)


def reaper_spec(settings: FlowRunSettings) -> AutomationCore:
    """The automation that marks a deployment's flow run Crashed when it falls silent.

    Prefect's recipe for runs whose worker died (a hard-killed worker never reports its
    run), started one event earlier: after the run turns Running (a state change the
    server itself records, so a run killed before its first heartbeat is covered too)
    or after a heartbeat, expect another heartbeat or an end within `crashed_after_s`,
    per flow run; silence changes the run's state to Crashed. That ends the run for
    people and frees its deployment's concurrency slot, and the Crashed event tells
    people through the failed-run notification. Only runs of deployments are judged:
    the workers that run them beat (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`), while a flow
    run in a person's own process may not.
    """
    trigger = EventTrigger(
        after={FLOW_RUN_RUNNING, FLOW_RUN_HEARTBEAT},
        expect={FLOW_RUN_HEARTBEAT, *FLOW_RUN_ENDS},
        match=ResourceSpecification.model_validate({"prefect.resource.id": "prefect.flow-run.*"}),
        match_related=ResourceSpecification.model_validate({"prefect.resource.role": "deployment"}),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=settings.crashed_after_s),
    )
    action = ChangeFlowRunState(
        name="Crashed",
        state=StateType.CRASHED,
        force=False,
        message=f"no heartbeat for {settings.crashed_after_s:g} s: its worker died",
    )
    return AutomationCore(
        name=REAPER_NAME,
        description="Marks a running flow run Crashed when its heartbeats stop (worker killed).",
        enabled=True,
        tags=[REAPER_TAG],
        trigger=trigger,
        actions=[action],
    )


def ensure_reaper(settings: FlowRunSettings) -> Applied:
    """Create (or update) the automation that crashes silent flow runs."""
    return apply_automations([reaper_spec(settings)], REAPER_TAG)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m devstack.notifications_setup`: what `make up` runs (PREFECT_API_URL set)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=AUTOMATIONS_FILE)
    parser.add_argument("--ui-url", default=None, help="Base URL of run links in messages.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    reaper = ensure_reaper(get_settings().runs)
    logger.info("silent flow runs: %s (%s)", REAPER_NAME, reaper.summary())
    settings = get_settings().notifications
    applied = ensure_notifications(settings, args.file, args.ui_url)
    if applied is None:
        logger.info("notifications off: no destination in MLOPS_NOTIFICATIONS__*")
    else:
        logger.info(
            "notifications: %s; block %s -> %s",
            applied.summary(),
            settings.block_name,
            settings.destination(),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
