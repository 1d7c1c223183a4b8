"""`mlops canary status|promote|rollback|restore`: a person's view of and hand on a rollout.

The rollout flow decides on evidence; these commands are for the times a person must
look or overrule. Every manual action goes to the same audit trail as the policy's,
under the person's name. The registry and rollout modules (MLflow, torch) are imported
inside the commands, so `mlops --help` does not pay for them.
"""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from mlops.errors import PipelineError
from mlops.settings import get_settings

if TYPE_CHECKING:
    from mlops.rollout.policy import RolloutDecision

canary_app = typer.Typer(help="Inspect or overrule the canary rollout.", no_args_is_help=True)

ModelOption = Annotated[str | None, typer.Option("--model", help="Default: the served model.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why: kept in the audit trail.")]


@canary_app.command("status")
def canary_status(
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Where the rollout stands: aliases, stage, share, and the last decisions."""
    from mlops.registry.client import CHALLENGER, CHAMPION, registry_client, version_by_alias
    from mlops.rollout.audit import AuditTrail, audit_url
    from mlops.rollout.state import read_rollout

    settings = get_settings()
    name = model or settings.serving.model_name
    client = registry_client(settings)
    state = read_rollout(client, name)
    champion = version_by_alias(client, name, CHAMPION)
    challenger = version_by_alias(client, name, CHALLENGER)
    history = AuditTrail(audit_url(settings)).history(name)[-10:]
    summary = {
        "model": name,
        "champion": None if champion is None else str(champion.version),
        "challenger": None if challenger is None else str(challenger.version),
        "rollout": state.model_dump(mode="json"),
        "stages": list(settings.rollout.stages),
        "decisions": [record.model_dump(mode="json") for record in history],
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    held = {alias: summary[alias] or "-" for alias in (CHAMPION, CHALLENGER)}
    typer.echo(f"{name}: champion v{held[CHAMPION]}, challenger v{held[CHALLENGER]}")
    typer.echo(
        f"rollout {state.status.value}: stage {state.stage} of {len(settings.rollout.stages) - 1}, "
        f"challenger share {state.share:.0%}{' (shadow)' if state.shadow else ''}"
        + (f" — {state.reason}" if state.reason else "")
    )
    if state.active and state.deadline is not None:
        typer.echo(f"deadline {state.deadline:%Y-%m-%d %H:%M:%S} UTC (revision {state.revision})")
    for record in history:
        typer.echo(
            f"  {record.decided_at:%Y-%m-%d %H:%M:%S}  v{record.version}  {record.action:<8} "
            f"by {record.actor}: {record.reason}"
        )


@canary_app.command("promote")
def canary_promote(reason: ReasonOption = "promoted by hand", model: ModelOption = None) -> None:
    """Make the challenger the champion now, whatever the rollout's stage."""
    _act("promote", model, reason)


@canary_app.command("rollback")
def canary_rollback(
    reason: ReasonOption = "rolled back by hand", model: ModelOption = None
) -> None:
    """Withdraw the challenger now; its version is tagged with the reason."""
    _act("rollback", model, reason)


@canary_app.command("restore")
def canary_restore(
    version: Annotated[str, typer.Argument(help="The registered version to serve again.")],
    reason: ReasonOption = "restored by hand",
    model: ModelOption = None,
) -> None:
    """Make an earlier version the champion again (undo a promotion); no rollout may run."""
    _act("restore", model, reason, version)


def _act(
    action: Literal["promote", "rollback", "restore"],
    model: str | None,
    reason: str,
    version: str = "",
) -> None:
    from mlops.registry.client import registry_client
    from mlops.rollout.actions import promote_now, restore_champion, rollback_now
    from mlops.rollout.audit import AuditTrail, audit_url
    from mlops.rollout.lock import RolloutLock
    from mlops.rollout.policy import RolloutAction

    settings = get_settings()
    name = model or settings.serving.model_name
    client = registry_client(settings)
    actor = getpass.getuser()
    lock = RolloutLock.for_settings(settings)
    try:
        decision: RolloutDecision
        if action == "restore":
            decision = restore_champion(client, name, version, actor, reason, lock=lock)
        elif action == "promote":
            decision = promote_now(client, name, actor, reason, lock=lock)
        else:
            decision = rollback_now(client, name, actor, reason, lock=lock)
    except PipelineError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    if decision.action is RolloutAction.HOLD:
        typer.echo(f"nothing done: {decision.reason}")
        return
    AuditTrail(audit_url(settings)).record(decision, name, decision.challenger_version)
    typer.echo(f"{name} v{decision.challenger_version}: {decision.action.value} ({reason})")
