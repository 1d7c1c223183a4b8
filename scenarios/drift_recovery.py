"""The drift-recovery scenario: baseline traffic, a shift, and the loop healing itself.

The driver plays the world and the clock, nothing else:

1. trains the first champion on a baseline batch (the training pipeline, in-process,
   reporting to the scenario's Prefect server) and starts the prediction service;
2. replays windows of live traffic over HTTP: `baseline_windows` of baseline rows,
   then shifted rows. The labels of a window are posted (and its rows land as a
   labelled batch) at the start of the next one: they arrive one window late;
3. after each window runs the drift monitor, as its schedule would, on the last two
   windows (the older one has its labels by then);
4. watches the loop: the monitor's `mlops.drift.detected` starts
   `training-pipeline/on-drift` through its trigger, the guardrails wait for enough
   labelled post-shift rows, the registered version's `mlops.model.registered` starts
   `canary-rollout/on-registered`, the canary promotes on labelled evidence;
5. replays `after_promotion` more windows (the healed loop, judged by the monitor on
   the new champion's answers) and stops (or when the windows run out), scores the old
   and the new champion on held-out post-shift rows, plots and publishes the timeline.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pandas as pd

from mlops.errors import PipelineError
from mlops.retraining import RetrainRun, window_batch_dir
from mlops.settings import Settings, get_settings
from scenarios.observe import (
    PrefectApi,
    champion_version,
    holdout_score,
    promoted_at,
    registered_after,
    retrainings,
)
from scenarios.plot import plot_timeline
from scenarios.stack import DATASET_CONFIG, Compression, running_stack, start_service
from scenarios.timeline import Milestone, RetrainingRecord, ScenarioSummary, WindowRecord
from scenarios.traffic import (
    Answer,
    Shift,
    TrafficClient,
    World,
    accuracy,
    land_batch,
    training_batch,
)
from serving.prediction_log import read_predictions

if TYPE_CHECKING:
    from flows.drift import DriftMonitorResult


logger = logging.getLogger(__name__)

MODEL = "card_fraud"
ARTIFACT_KEY = "scenario-drift-recovery"


class ScenarioError(PipelineError):
    """The scenario could not run (a component failed to start, the service refused)."""


@dataclass(frozen=True)
class ScenarioConfig:
    """How a scenario run replays the world.

    Attributes:
        shift: the change after the baseline period; None replays baseline only.
        windows: the most windows replayed (the run stops soon after a promotion).
        baseline_windows: windows before the shift.
        rows_per_window: transactions sent per window.
        window_seconds: how long a window's traffic lasts (the compressed hour).
        train_rows: rows of the first champion's baseline batch.
        after_promotion: windows replayed after the promotion.
        seed: seeds every synthetic batch.
        out: where the state, logs, plot and summary go.
    """

    shift: Shift | None
    out: Path
    windows: int = 60
    baseline_windows: int = 3
    rows_per_window: int = 800
    window_seconds: float = 4.0
    train_rows: int = 8_000
    after_promotion: int = 3
    seed: int = 7


@dataclass(frozen=True)
class _Late:
    """A window whose labels have not arrived yet."""

    index: int
    answers: list[Answer]
    happened: pd.DataFrame


@dataclass
class _Clock:
    """Seconds since the scenario's start, from wall-clock instants."""

    origin: datetime = field(default_factory=lambda: datetime.now(UTC))

    def at(self, moment: datetime | None) -> float | None:
        return None if moment is None else round((moment - self.origin).total_seconds(), 2)

    def now(self) -> float:
        value = self.at(datetime.now(UTC))
        assert value is not None
        return value


def run_drift_recovery(config: ScenarioConfig) -> ScenarioSummary:
    """Run the scenario end to end on a stack of its own; returns the summary.

    Raises:
        ScenarioError: the first champion could not be trained or the service failed.
        StackError: a part of the stack did not start.
    """
    config.out.mkdir(parents=True, exist_ok=True)
    compression = Compression(config.window_seconds, config.rows_per_window)
    with running_stack(config.out, compression.environment) as stack:
        settings = get_settings()
        old = train_first_champion(config.train_rows, config.seed, config.out)
        url = start_service(stack)
        wait_ready(url)
        api = PrefectApi(stack.api_url)
        try:
            summary = _replay(config, settings, url, api, old)
            plot = plot_timeline(summary, config.out / "drift-recovery.png")
            summary = summary.model_copy(update={"plot": str(plot)})
            artifact = api.create_markdown_artifact(
                ARTIFACT_KEY, artifact_markdown(summary, plot), _headline(summary)
            )
            summary = summary.model_copy(update={"artifact_id": artifact})
        finally:
            api.close()
    (config.out / "summary.json").write_text(summary.model_dump_json(indent=2))
    return summary


def train_first_champion(rows: int, seed: int, out: Path) -> str:
    """The training pipeline on a baseline batch, in this process; the champion's version."""
    # Imported when first needed: Prefect reads its settings at import, after
    # `running_stack` has pointed them at the scenario's server.
    from flows.training import TrainingPipelineParams, run_training_pipeline

    batch = training_batch(rows, seed, out / "baseline.parquet")
    params = TrainingPipelineParams(data=str(batch), dataset_config=str(DATASET_CONFIG))
    result = run_training_pipeline(params)
    if result.model is None:
        raise ScenarioError(f"the first champion was not registered: {result.reason}")
    return str(result.model.version)


def wait_ready(url: str, timeout_s: float = 120.0) -> None:
    """Poll the service until it has a champion loaded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ScenarioError(f"the prediction service at {url} has no champion loaded")


def _replay(
    config: ScenarioConfig, settings: Settings, url: str, api: PrefectApi, old: str
) -> ScenarioSummary:
    world = World(config.shift, config.rows_per_window, config.windows, config.seed)
    traffic = TrafficClient(url)
    landing = settings.landing_dir / MODEL
    clock = _Clock()
    records: list[WindowRecord] = []
    milestones: list[Milestone] = []
    starts: list[datetime] = []
    late: _Late | None = None
    shift_at: datetime | None = None
    promoted_window: int | None = None
    try:
        for k in range(config.windows):
            shifted = config.shift is not None and k >= config.baseline_windows
            started = datetime.now(UTC)
            starts.append(started)
            if shifted and shift_at is None:
                shift_at = started
                milestones.append(
                    Milestone(name="shift", at_s=clock.now(), window=k, detail=f"{config.shift}")
                )
            if late is not None:  # the previous window's labels arrive now
                traffic.post_labels(late.answers)
                land_batch(late.happened, landing, late.index)
            pool_index = k - config.baseline_windows if shifted else k
            answers, happened = traffic.send(
                world.window(pool_index, shifted), config.window_seconds
            )
            ended = datetime.now(UTC)
            late = _Late(k, answers, happened)
            _wait_logged(settings, started, ended, len(answers))
            verdict = _monitor(starts[max(0, k - 1)], ended)
            records.append(_record(k, shifted, clock, started, ended, answers, verdict))
            if verdict.alarm and not any(m.name == "detection" for m in milestones):
                milestones.append(
                    Milestone(name="detection", at_s=clock.now(), window=k, detail=verdict.reason)
                )
            if promoted_window is None and _promoted(settings, old):
                promoted_window = k
            elif promoted_window is not None and k >= promoted_window + config.after_promotion:
                break
    finally:
        traffic.close()
    return _summarise(config, settings, api, world, clock, old, shift_at, records, milestones)


def _wait_logged(settings: Settings, start: datetime, end: datetime, rows: int) -> None:
    """Poll the prediction log until the window's answers are readable (the monitor's input)."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        logged = read_predictions(
            settings, model_name=MODEL, since=start, until=end + timedelta(seconds=1)
        )
        if len(logged) and int((~logged["shadow"].astype(bool)).sum()) >= rows:
            return
        time.sleep(0.1)
    raise ScenarioError(f"the prediction log did not show {rows} answers of the window in 30 s")


def _monitor(start: datetime, end: datetime) -> DriftMonitorResult:
    """The drift monitor flow, in this process, on [start, end): what its schedule runs."""
    from flows.drift import DriftMonitorParams, drift_monitor  # see train_first_champion

    minutes = (end - start).total_seconds() / 60
    params = DriftMonitorParams(
        dataset_config=str(DATASET_CONFIG), window_minutes=minutes, end=end, html_report=False
    )
    result: DriftMonitorResult = drift_monitor(params)
    return result


def _record(
    index: int,
    shifted: bool,
    clock: _Clock,
    started: datetime,
    ended: datetime,
    answers: list[Answer],
    verdict: DriftMonitorResult,
) -> WindowRecord:
    versions = sorted({a.version for a in answers}, key=int)
    by_version = {v: [a for a in answers if a.version == v] for v in versions}
    return WindowRecord(
        index=index,
        phase="shift" if shifted else "baseline",
        start_s=clock.at(started) or 0.0,
        end_s=clock.at(ended) or 0.0,
        rows=len(answers),
        accuracy=accuracy(answers),
        accuracy_by_version={v: accuracy(rows) or 0.0 for v, rows in by_version.items()},
        rows_by_version={v: len(rows) for v, rows in by_version.items()},
        champion_version=verdict.model_version,
        monitor_status=verdict.status,
        monitor_reason=verdict.reason,
        drift_share=verdict.drift_share,
        alarm=verdict.alarm,
    )


def _promoted(settings: Settings, old: str) -> bool:
    current = champion_version(settings, MODEL)
    return current is not None and current != old


def _window_at(records: list[WindowRecord], at_s: float | None) -> int | None:
    """The window running at `at_s` (the last one started before it)."""
    if at_s is None:
        return None
    started = [r.index for r in records if r.start_s <= at_s]
    return started[-1] if started else None


def _summarise(
    config: ScenarioConfig,
    settings: Settings,
    api: PrefectApi,
    world: World,
    clock: _Clock,
    old: str,
    shift_at: datetime | None,
    records: list[WindowRecord],
    milestones: list[Milestone],
) -> ScenarioSummary:
    shift_s = clock.at(shift_at)
    runs = [
        _retraining(settings, api, clock, run, shift_at)
        for run in retrainings(settings, MODEL)
        if run.run_id
    ]
    first = runs[0] if runs else None
    registered = registered_after(settings, MODEL, old)
    registered_s = clock.at(registered[0].at) if registered else None
    new = champion_version(settings, MODEL)
    new = None if new == old else new
    promoted_s = clock.at(promoted_at(settings, MODEL, new)) if new else None
    for name, at_s, detail in (
        ("retrain started", first.started_s if first else None, first.flow_run_id if first else ""),
        (
            "retrain finished",
            first.finished_s if first else None,
            first.status or "" if first else "",
        ),
        ("registered", registered_s, f"v{registered[0].version}" if registered else ""),
        ("promoted", promoted_s, f"v{new} is champion" if new else ""),
    ):
        if at_s is not None:
            milestones.append(
                Milestone(name=name, at_s=at_s, window=_window_at(records, at_s), detail=detail)
            )
    detection = next((m for m in milestones if m.name == "detection"), None)
    shift_window = config.baseline_windows if config.shift is not None else None
    alarms = [r.index for r in records if r.alarm]
    before = [i for i in alarms if shift_window is None or i < shift_window]
    runs_before = [r for r in runs if shift_s is None or (r.started_s or 0.0) < shift_s]
    old_post = new_post = None
    if config.shift is not None:
        post = world.holdout(shifted=True)
        old_post = holdout_score(settings, MODEL, old, post)
        new_post = holdout_score(settings, MODEL, new, post) if new else None
    old_base = holdout_score(settings, MODEL, old, world.holdout(shifted=False))
    if config.shift is None:
        recovered = not alarms and not runs
    else:
        recovered = (
            new_post is not None and old_post is not None and new_post.accuracy > old_post.accuracy
        )

    def since_shift(at_s: float | None) -> float | None:
        return None if at_s is None or shift_s is None else round(at_s - shift_s, 2)

    return ScenarioSummary(
        shift="none" if config.shift is None else config.shift.value,
        windows=len(records),
        rows_per_window=config.rows_per_window,
        window_seconds=config.window_seconds,
        shift_window=shift_window,
        shift_at_s=shift_s,
        detection_window=None if detection is None else detection.window,
        detection_delay_windows=None
        if detection is None or detection.window is None or shift_window is None
        else detection.window - shift_window,
        detected_at_s=None if detection is None else detection.at_s,
        retrain_started_at_s=first.started_s if first else None,
        retrain_finished_at_s=first.finished_s if first else None,
        registered_at_s=registered_s,
        promoted_at_s=promoted_s,
        shift_to_detection_s=since_shift(None if detection is None else detection.at_s),
        shift_to_retrain_s=since_shift(first.started_s if first else None),
        shift_to_registered_s=since_shift(registered_s),
        shift_to_promotion_s=since_shift(promoted_s),
        old_version=old,
        new_version=new,
        old_accuracy_post_drift=None if old_post is None else old_post.accuracy,
        new_accuracy_post_drift=None if new_post is None else new_post.accuracy,
        old_roc_auc_post_drift=None if old_post is None else old_post.roc_auc,
        new_roc_auc_post_drift=None if new_post is None else new_post.roc_auc,
        old_accuracy_baseline=old_base.accuracy,
        old_roc_auc_baseline=old_base.roc_auc,
        alarms=alarms,
        alarms_before_shift=len(before),
        retraining_runs=runs,
        retraining_runs_before_shift=len(runs_before),
        recovered=recovered,
        milestones=sorted(milestones, key=lambda m: m.at_s),
        window_records=records,
    )


def _retraining(
    settings: Settings,
    api: PrefectApi,
    clock: _Clock,
    ledger: RetrainRun,
    shift_at: datetime | None,
) -> RetrainingRecord:
    """A retraining as its flow run and the ledger tell it (with its batch's post-shift rows)."""
    assert ledger.run_id is not None
    run_id = ledger.run_id
    flow_run = api.flow_run(run_id)
    post_shift: int | None = None
    if ledger.batch_sha256 and shift_at is not None:
        batch = window_batch_dir(settings, MODEL) / f"{ledger.batch_sha256}.parquet"
        if batch.is_file():
            stamps = pd.to_datetime(pd.read_parquet(batch)["event_timestamp"], utc=True)
            post_shift = int((stamps >= shift_at).sum())
    return RetrainingRecord(
        flow_run_id=run_id,
        state=str(flow_run["state_type"]),
        started_s=clock.at(_parse(flow_run.get("start_time"))),
        finished_s=clock.at(_parse(flow_run.get("end_time"))),
        window_start_s=clock.at(ledger.window_start),
        window_end_s=clock.at(ledger.window_end),
        rows=ledger.rows,
        post_shift_rows=post_shift,
        status=ledger.status,
    )


def _parse(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _headline(summary: ScenarioSummary) -> str:
    if summary.shift == "none":
        verdict = "no alarm, no retraining" if summary.recovered else "FALSE ALARM"
        return f"Drift-recovery scenario, no-drift replay: {verdict}"
    if summary.new_version is None:
        return f"Drift-recovery scenario ({summary.shift} shift): no new champion"
    return (
        f"Drift-recovery scenario ({summary.shift} shift): v{summary.new_version} promoted "
        f"{summary.shift_to_promotion_s} s after the shift"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def artifact_markdown(summary: ScenarioSummary, plot: Path) -> str:
    """The Prefect artifact: the headline figures, the timeline, the windows and the plot."""
    image = base64.b64encode(plot.read_bytes()).decode()
    lines = [
        f"## {_headline(summary)}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| shift | {summary.shift} at window {summary.shift_window} |",
        f"| detection delay | {summary.detection_delay_windows} windows "
        f"({summary.shift_to_detection_s} s) |",
        f"| shift → retraining start | {summary.shift_to_retrain_s} s |",
        f"| shift → registered | {summary.shift_to_registered_s} s |",
        f"| shift → promoted | {summary.shift_to_promotion_s} s |",
        f"| old champion v{summary.old_version}, post-shift accuracy "
        f"| {_pct(summary.old_accuracy_post_drift)} |",
        f"| new champion v{summary.new_version or '-'}, post-shift accuracy "
        f"| {_pct(summary.new_accuracy_post_drift)} |",
        f"| post-shift ROC AUC, old / new | {_num(summary.old_roc_auc_post_drift)} / "
        f"{_num(summary.new_roc_auc_post_drift)} |",
        f"| alarms before the shift / retrainings | {summary.alarms_before_shift} / "
        f"{summary.retraining_runs_before_shift} |",
        "",
        "### Timeline",
        "",
        "| at (s) | window | milestone | detail |",
        "|---|---|---|---|",
        *(f"| {m.at_s:.1f} | {m.window} | {m.name} | {m.detail} |" for m in summary.milestones),
        "",
        "### Windows",
        "",
        "| window | phase | champion | accuracy | by version | monitor |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r.index} | {r.phase} | v{r.champion_version} | {_pct(r.accuracy)} | "
            + ", ".join(f"v{v}: {_pct(a)}" for v, a in r.accuracy_by_version.items())
            + f" | {'**alarm**: ' if r.alarm else ''}{r.monitor_reason} |"
            for r in summary.window_records
        ),
        "",
        f"![model accuracy over time](data:image/png;base64,{image})",
        "",
        f"Plot: `{plot}`",
    ]
    return "\n".join(lines) + "\n"
