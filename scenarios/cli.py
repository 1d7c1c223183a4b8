"""`mlops scenario run drift-recovery`: the closed loop, replayed in compressed time."""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlops.errors import PipelineError
from scenarios.traffic import Shift

if TYPE_CHECKING:
    from scenarios.soak_report import SoakReport

scenario_app = typer.Typer(
    help="Closed-loop scenarios on a stack of their own.", no_args_is_help=True
)
run_app = typer.Typer(help="Run a scenario.", no_args_is_help=True)
scenario_app.add_typer(run_app, name="run")


@run_app.command("drift-recovery")
def drift_recovery(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    no_drift: Annotated[
        bool, typer.Option("--no-drift", help="Replay baseline traffic only (no alarm expected).")
    ] = False,
    shift: Annotated[Shift, typer.Option(help="The kind of shift.")] = Shift.CONCEPT,
    windows: Annotated[
        int, typer.Option(min=2, help="Most windows replayed (stops 3 after a promotion).")
    ] = 60,
    baseline_windows: Annotated[int, typer.Option(min=1, help="Windows before the shift.")] = 3,
    rows_per_window: Annotated[int, typer.Option(min=200, help="Transactions per window.")] = 800,
    window_seconds: Annotated[
        float, typer.Option(min=0.5, help="Length of a window's traffic (the compressed hour).")
    ] = 4.0,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the synthetic world.")] = 7,
    out: Annotated[
        Path | None,
        typer.Option(help="State, logs, plot and summary (default: a new folder under .mlops)."),
    ] = None,
) -> None:
    """Baseline traffic, then a shift: detection, retraining, canary, promotion, no human.

    Starts its own Prefect server, worker and prediction service on free ports with a
    state directory under OUT, prints the timeline (or `--json`, the summary), writes
    the plot as a PNG and a Prefect artifact. Exits 1 when the loop did not recover (or,
    with `--no-drift`, when it raised an alarm).
    """
    from scenarios.drift_recovery import ScenarioConfig, run_drift_recovery

    if "prefect" in sys.modules:  # its settings are read at import: too late to point them
        typer.secho("run the scenario in a fresh process", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    folder = (
        out or Path(".mlops") / "scenarios" / f"drift-recovery-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    )
    os.environ.pop("PREFECT_API_URL", None)
    config = ScenarioConfig(
        shift=None if no_drift else shift,
        out=folder.resolve(),
        windows=windows,
        baseline_windows=windows if no_drift else baseline_windows,
        rows_per_window=rows_per_window,
        window_seconds=window_seconds,
        seed=seed,
    )
    try:
        # Libraries print progress to stdout (Feast's materialization): with --json,
        # stdout is the summary's alone.
        with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
            summary = run_drift_recovery(config)
    except PipelineError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
    else:
        typer.echo("\n".join(summary.timeline_lines()))
        typer.echo(
            f"detection delay {summary.detection_delay_windows} windows; old champion "
            f"v{summary.old_version} {summary.old_accuracy_post_drift}, new "
            f"v{summary.new_version} {summary.new_accuracy_post_drift} on post-shift rows\n"
            f"plot {summary.plot}\nsummary {config.out / 'summary.json'}"
        )
    if not summary.recovered:
        raise typer.Exit(1)


@run_app.command("soak")
def soak(
    hours: Annotated[float, typer.Option(min=0.05, help="How long the loop runs.")] = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the world and the injections.")] = 11,
    rows_per_second: Annotated[float, typer.Option(min=0.5, help="Live traffic.")] = 6.0,
    out: Annotated[
        Path | None,
        typer.Option(help="State, logs and the report (default: a new folder under .mlops)."),
    ] = None,
) -> None:
    """The whole loop in real time for HOURS: shifts and broken pipes at random times.

    Starts its own Prefect server (the monitor and the canary on their schedules), a
    worker and the prediction service; sends live traffic with labels 20 min late,
    injects the seeded shifts and data-quality incidents, and prints what the loop did:
    detections and delays, false alarms, retrainings, rollouts, the longest rollout and
    alarm wait, non-2xx answers, and the RSS of the service and the worker. Exits 1
    when a shift or an incident went unnoticed, an alarm was false, a rollout outlived
    its deadline, or the memory grew by more than 10 % after the warm-up.
    """
    from scenarios.soak import SoakConfig, run_soak

    if "prefect" in sys.modules:
        typer.secho("run the soak in a fresh process", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    folder = out or Path(".mlops") / "scenarios" / f"soak-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    os.environ.pop("PREFECT_API_URL", None)
    config = SoakConfig(
        hours=hours, out=folder.resolve(), seed=seed, rows_per_second=rows_per_second
    )
    try:
        with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
            report = run_soak(config)
    except PipelineError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    _print_soak(report, config.rollout_deadline_s, as_json=as_json)


@scenario_app.command("soak-report")
def soak_report(
    folder: Annotated[Path, typer.Argument(help="The soak's folder (its --out).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Judge a finished soak again from its folder, by the current rules.

    Restarts the soak's Prefect server on its state for the events, reads the ledger and
    what the driver kept, writes `soak-report.rebuilt.json`, prints the report; exits 1
    as `run soak` would.
    """
    from scenarios.soak import SoakConfig, rebuild_report

    if not (folder / "soak-config.json").is_file():
        typer.secho(f"{folder} holds no soak-config.json", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    os.environ.pop("PREFECT_API_URL", None)
    config = SoakConfig.load(folder.resolve())
    report = rebuild_report(config)
    _print_soak(report, config.rollout_deadline_s, as_json=as_json)


def _print_soak(report: SoakReport, rollout_deadline_s: float, *, as_json: bool) -> None:
    """Print a soak's report; exit 1 when the loop was not healthy."""
    typer.echo(report.model_dump_json(indent=2) if as_json else "\n".join(report.lines()))
    if not report.healthy(rollout_deadline_s):
        raise typer.Exit(1)
