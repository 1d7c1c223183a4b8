"""Sections of running the loop itself: noticing flow runs that died silently, and
telling people what happened (`MLOPS_RUNS__*`, `MLOPS_NOTIFICATIONS__*`)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, model_validator

from mlops.settings.base import Positive, Section, require_twice


class FlowRunSettings(Section):
    """How a flow run that died without a word (its worker killed) is noticed.

    Prefect marks a run Crashed only when a live worker sees its process die; a run
    whose worker was killed stays Running on the server for ever, holding its
    deployment's concurrency slot (so a `CANCEL_NEW` schedule never runs again). Runs
    send heartbeats, and the automation `mlops: crash silent flow runs` (created by
    `make up` / `mlops stack deploy`) marks a run Crashed when they stop; the
    `sweep-silent-runs` deployment (every 5 minutes, `mlops.runs`) does the same for runs
    the automation missed and for runs that never left Pending.
    """

    model_config = ConfigDict(extra="forbid")

    heartbeat_s: int = Field(
        default=30,
        ge=30,
        description="Flow runs of the stack send a heartbeat event this often "
        "(PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the workers; Prefect's least is 30 s).",
    )
    crashed_after_s: float = Field(
        default=90.0,
        ge=10.0,
        description="A running flow run silent this long is marked Crashed (Prefect's "
        "proactive triggers wait 10 s at least).",
    )
    worker_gc_s: Positive = Field(
        default=60.0,
        description="The local stack's workers run a full garbage collection this often: "
        "each completed run leaves 0.3-0.6 MiB in reference cycles (devstack/worker.py).",
    )
    pending_after_s: Positive = Field(
        default=900.0,
        description="A flow run Pending this long is marked Crashed: its process never "
        "started (a worker killed while submitting it; an ECS task that never ran).",
    )

    @model_validator(mode="after")
    def _silence_outlasts_beats(self) -> FlowRunSettings:
        require_twice(
            self.crashed_after_s,
            self.heartbeat_s,
            "runs.crashed_after_s must be at least twice runs.heartbeat_s",
        )
        return self


class NotificationSettings(Section):
    """Who is told what the loop did, and how: Prefect automations and their block.

    `make up` / `mlops stack deploy` create the automations declared in
    `infra/prefect/automations.yaml`, all sending through one notification block of
    `kind`: a generic webhook (a JSON POST, the default), a Slack incoming webhook, or
    e-mail through SendGrid. Without a destination (`url`; for e-mail `email_to` and
    `sendgrid_api_key`) no automation is created, and `make up` says so.
    """

    kind: Literal["webhook", "slack", "email"] = "webhook"
    url: SecretStr | None = Field(
        default=None,
        description="webhook: any endpoint taking a JSON POST; slack: the incoming-webhook URL.",
    )
    token: SecretStr | None = Field(
        default=None, description="webhook: sent as `Authorization: Bearer <token>`."
    )
    email_to: str = Field(default="", description="email: recipients, comma-separated.")
    email_from: str = Field(default="mlops@localhost", description="email: the sender.")
    sendgrid_api_key: SecretStr | None = Field(default=None, description="email: SendGrid key.")
    ui_url: str | None = Field(
        default=None,
        description="Base of the Prefect UI links in messages (what a person can open); "
        "the stack's own UI (PREFECT_UI_URL) when unset.",
    )
    block_name: str = Field(
        default="mlops-notifications",
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Name of the Prefect notification block the automations send through.",
    )

    @property
    def recipients(self) -> list[str]:
        """email: the addresses of `email_to`."""
        return [part.strip() for part in self.email_to.split(",") if part.strip()]

    @property
    def configured(self) -> bool:
        """Whether a destination is set: without one, no automation is created."""
        if self.kind == "email":
            return bool(self.recipients) and self.sendgrid_api_key is not None
        return self.url is not None and bool(self.url.get_secret_value())

    def destination(self) -> str:
        """Where messages go, fit for a log line (no path, query or secret of the URL)."""
        if self.kind == "email":
            return f"email to {', '.join(self.recipients) or '(nobody)'}"
        if self.url is None:
            return f"{self.kind} (no URL)"
        parts = urlsplit(self.url.get_secret_value())
        return f"{self.kind} {parts.scheme}://{parts.hostname or '?'}" + (
            f":{parts.port}" if parts.port else ""
        )
