"""What people are told: the automations file, validated, and the messages it makes.

`infra/prefect/automations.yaml` declares one rule per kind of news (a promotion, a
rollback, a quarantined batch, a failed flow run, ...): the events it reacts to and
what its message says. This module reads and checks that file and turns each rule
into the Jinja templates of a Prefect `send-notification` action; it does not import
Prefect. `devstack.notifications_setup` creates the block and the automations on a
server (`make up`, `mlops stack deploy`), and the Prefect server renders the
templates when an event arrives, with `event`, `flow_run` (the run the event was
emitted from, or the failed run itself) and `flow` in their context.

Every message says what happened, to which model and version, why, and links the
flow run in the Prefect UI. A generic webhook receives it as one JSON object
(`text` is the human-readable message, the other keys the same facts one by one);
Slack and e-mail receive the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlops import events
from mlops.errors import ConfigError

AUTOMATIONS_FILE = Path("infra/prefect/automations.yaml")
"""The automations of the loop, relative to the checkout's root."""

FLOW_RUN_FAILED = "prefect.flow-run.Failed"
FLOW_RUN_CRASHED = "prefect.flow-run.Crashed"
"""Prefect's own events of a flow run entering the Failed / Crashed state (its resource
is the run, `prefect.flow-run.<id>`; the flow is a related resource, role `flow`)."""
PREFECT_EVENTS = frozenset({FLOW_RUN_FAILED, FLOW_RUN_CRASHED})

NOTIFIED_EVENTS: tuple[str, ...] = (
    events.MODEL_PROMOTED,
    events.MODEL_ROLLED_BACK,
    events.BATCH_QUARANTINED,
    events.DATA_QUALITY_DEGRADED,
    events.DRIFT_ALARM_OVERDUE,
    events.ROLLOUT_EXPIRED,
    events.ROLLOUT_PAUSED,
    events.RETRAINING_EXPIRED,
    FLOW_RUN_FAILED,
    FLOW_RUN_CRASHED,
)
"""Events a person must hear of: the automations file has to cover each of them."""


def defined_events() -> frozenset[str]:
    """The event names `mlops.events` defines (its upper-case string constants)."""
    return frozenset(
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and value.startswith("mlops.")
    )


class MessageParts(BaseModel):
    """Where a message finds the model, its version and the reason (Jinja templates)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "{{ event.resource.name }}"
    version: str = "{{ event.payload.version }}"
    reason: str = "{{ event.payload.reason }}"


class NotificationRule(BaseModel):
    """One automation: the events it reacts to and what its message says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="The automation's name (unique: updated by it).")
    description: str = ""
    events: tuple[str, ...] = Field(min_length=1)
    flows: tuple[str, ...] = Field(
        default=(),
        description="Prefect flow-run events only: the flows (by name) whose runs count.",
    )
    subject: str = Field(min_length=1, description="Jinja: the subject / title line.")
    what: str = Field(min_length=1, description="Jinja: one sentence saying what happened.")
    model: str | None = Field(default=None, description="Jinja; the file's default when unset.")
    version: str | None = None
    reason: str | None = None
    repeat_after_s: float = Field(
        default=0.0,
        ge=0.0,
        description="At most one message per resource (the model) in this many seconds, "
        "for events a condition repeats every monitor run (an incident, an overdue alarm); "
        "0: one message per event.",
    )

    @model_validator(mode="after")
    def _flows_only_for_flow_runs(self) -> NotificationRule:
        prefect_events = PREFECT_EVENTS.intersection(self.events)
        if prefect_events and len(prefect_events) != len(self.events):
            raise ValueError("a rule reacts to mlops events or to flow-run events, not both")
        if prefect_events and not self.flows:
            raise ValueError("a flow-run rule names the flows whose runs it reports (`flows`)")
        if self.flows and not prefect_events:
            raise ValueError("`flows` only applies to flow-run events")
        return self

    def parts(self, defaults: MessageParts) -> MessageParts:
        """This rule's model, version and reason templates, the defaults filled in."""
        return MessageParts(
            model=defaults.model if self.model is None else self.model,
            version=defaults.version if self.version is None else self.version,
            reason=defaults.reason if self.reason is None else self.reason,
        )


class AutomationsFile(BaseModel):
    """The whole file: every automation the loop keeps on its Prefect server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    tag: str = Field(
        default="mlops-notifications",
        min_length=1,
        description="Tag of the automations created from this file: a tagged automation "
        "whose name left the file is deleted.",
    )
    defaults: MessageParts = MessageParts()
    automations: tuple[NotificationRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_events_unique_names(self) -> AutomationsFile:
        names = [rule.name for rule in self.automations]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"automation names must be unique: {duplicates}")
        known = defined_events() | PREFECT_EVENTS
        for rule in self.automations:
            unknown = sorted(set(rule.events) - known)
            if unknown:
                raise ValueError(f"{rule.name!r}: events not defined in mlops/events.py: {unknown}")
        return self

    def covered_events(self) -> frozenset[str]:
        """Every event some automation reacts to."""
        return frozenset(event for rule in self.automations for event in rule.events)

    def missing_events(self, required: tuple[str, ...] = NOTIFIED_EVENTS) -> list[str]:
        """Required events no automation reacts to (empty when the file is complete)."""
        covered = self.covered_events()
        return [event for event in required if event not in covered]


def load_automations(path: Path) -> AutomationsFile:
    """Read and check an automations file; every template must parse.

    Raises:
        ConfigError: the file is missing, is not YAML, breaks the schema, names an event
            `mlops/events.py` does not define, or holds a template that does not parse.
    """
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        loaded = AutomationsFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    environment = jinja2.Environment()
    for rule in loaded.automations:
        parts = rule.parts(loaded.defaults).model_dump()
        composed = vars(message_templates(rule, loaded.defaults, ui_url="http://prefect"))
        # The rule's own templates first, so that an error names the field to fix.
        for field, template in {"subject": rule.subject, "what": rule.what, **parts}.items():
            try:
                environment.parse(template)
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"{path}: {rule.name!r}: {field}: {exc}") from exc
        for field, template in composed.items():
            try:
                environment.parse(template)
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"{path}: {rule.name!r}: message {field}: {exc}") from exc
    return loaded


@dataclass(frozen=True)
class MessageTemplates:
    """The templates of one automation's `send-notification` action.

    Attributes:
        subject: the subject (title) line.
        text: the message a person reads (Slack, e-mail, and `text` of the JSON).
        json: a JSON object for a generic webhook: `text` and each fact under its key.
    """

    subject: str
    text: str
    json: str


def message_templates(
    rule: NotificationRule, defaults: MessageParts, ui_url: str | None
) -> MessageTemplates:
    """The Jinja templates the Prefect server renders into this rule's message.

    Args:
        rule: the automation.
        defaults: the file's model / version / reason templates.
        ui_url: base URL of the Prefect UI that run links point to (baked in, so the link
            is right whatever the server's own PREFECT_UI_URL); None: Prefect's `ui_url`
            filter, i.e. the server's setting.
    """
    parts = rule.parts(defaults)
    if ui_url:
        run_url = ui_url.rstrip("/") + "/runs/flow-run/{{ flow_run.id }}"
    else:
        run_url = "{{ flow_run|ui_url }}"
    header = "".join(
        f"{{%- set {name} -%}}{template}{{%- endset -%}}"
        for name, template in (
            ("what", rule.what),
            ("subject", rule.subject),
            ("model", parts.model),
            ("version", parts.version),
            ("reason", parts.reason),
            ("run_url", f"{{% if flow_run %}}{run_url}{{% endif %}}"),
        )
    )
    text = (
        "{{ what|trim }}\n"
        "model: {{ model|trim or '-' }}, version: {{ version|trim or '-' }}\n"
        "why: {{ reason|trim or '-' }}\n"
        "run: {% if flow_run %}{{ run_url }} ({{ flow.name or 'flow' }} / {{ flow_run.name }})"
        "{% else %}- (not emitted from a flow run){% endif %}\n"
        "event: {{ event.event }} on {{ event.resource.id }} at {{ event.occurred }}"
    )
    document = (
        "{%- set text -%}" + text + "{%- endset -%}"
        '{"text": {{ text|tojson }}, '
        '"subject": {{ subject|trim|tojson }}, '
        '"what": {{ what|trim|tojson }}, '
        '"model": {{ model|trim|tojson }}, '
        '"version": {{ version|trim|tojson }}, '
        '"reason": {{ reason|trim|tojson }}, '
        '"flow_run_url": {% if flow_run %}{{ run_url|tojson }}{% else %}null{% endif %}, '
        '"flow_run_id": {% if flow_run %}{{ flow_run.id|string|tojson }}{% else %}null{% endif %}, '
        '"flow_run_name": {% if flow_run %}{{ flow_run.name|tojson }}{% else %}null{% endif %}, '
        '"flow": {% if flow_run %}{{ (flow.name or "")|tojson }}{% else %}null{% endif %}, '
        '"event": {{ event.event|tojson }}, '
        '"event_id": {{ event.id|string|tojson }}, '
        '"resource": {{ event.resource.id|tojson }}, '
        '"occurred": {{ event.occurred|string|tojson }}, '
        '"automation": {{ automation.name|tojson }}}'
    )
    return MessageTemplates(
        subject=header + "{{ subject|trim }}", text=header + text, json=header + document
    )
