"""The soak: the whole loop in real time for hours, with shifts and broken pipes injected.

Unlike the drift-recovery scenario, the driver does not run the monitor: the stack's
own schedules do (the drift monitor every few minutes, the canary's resume run every
few minutes), and its triggers start retraining and rollouts. The driver only plays
the world: it sends live traffic at a steady rate, returns each answer's label
`label_delay_s` later (and lands the labelled rows as a batch then), follows the seeded
plan of shifts and data-quality incidents (`soak_plan`), samples the memory of the
service and the worker, and at the end reads what the loop did from Prefect's events,
the retraining ledger and the audit trail (`soak_report`).

Timings keep the ratios of production: labels arrive later than a rollout stage
lasts, a stage lasts minutes, the monitor runs every few minutes on a window that
reaches back past the label delay, a rollout has a deadline of an hour.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from devstack.localstack import (
    SERVER,
    LocalStack,
    free_port,
    running_pid,
    start_server,
    stop,
    worker_component,
)
from devstack.localstack import SERVING as SERVING_COMPONENT
from mlops.settings import get_settings
from mlops.synthetic import TIMESTAMP, Scenario, generate
from scenarios.drift_recovery import MODEL, train_first_champion, wait_ready
from scenarios.observe import PrefectApi
from scenarios.soak_plan import SoakPlan, break_pipe, plan_soak
from scenarios.soak_report import MemorySample, SoakReport, build_report
from scenarios.stack import (
    REPO,
    running_stack,
    scenario_base_environment,
    start_service,
)
from scenarios.traffic import SIMULATED_START, Answer, TrafficClient, land_batch

logger = logging.getLogger(__name__)

SOAK_DEPLOYMENTS = ("on-drift", "on-registered", "resume", "hourly", "every-5-minutes")
"""Retraining on drift, the canary on a registration and on its schedule, the monitor, the
silent-run sweep."""


@dataclass(frozen=True)
class SoakConfig:
    """A soak's length, traffic and timings (seconds of real time).

    Attributes:
        hours: how long the world runs.
        out: state, logs and the report.
        rows_per_second: live traffic.
        request_rows: rows per prediction request.
        tick_s: traffic is sent (and the world's plan consulted) in ticks this long.
        label_delay_s: when an answer's label arrives, after the answer.
        monitor_every_s: the drift monitor's schedule.
        monitor_window_s: the traffic each monitor run judges (reaches past the delay).
        resume_every_s: the canary's resume schedule (one step per run).
        stage_s: the shortest rollout stage.
        rollout_deadline_s: an unfinished rollout ends by the policy then.
        warmup_s: baseline traffic before the first injection.
        min_gap_s: the least time between two injections: what one shift needs to be
            seen through (detection waits for labels, 20 min; the retraining for a
            stage's worth of labelled post-shift rows; the rollout's shadow stage for
            their labels again), so the next change does not land mid-recovery. A 2-h
            soak holds one shift; 3 h a shift and an incident.
        incident_s: how long a data-quality incident lasts.
        shifts: shifts asked for (fewer when the soak is short).
        incidents: data-quality incidents asked for.
        train_rows: rows of the first champion's baseline batch.
        seed: seeds the world and the plan.
    """

    hours: float
    out: Path
    rows_per_second: float = 6.0
    request_rows: int = 3
    tick_s: float = 30.0
    label_delay_s: float = 20 * 60.0
    monitor_every_s: float = 5 * 60.0
    monitor_window_s: float = 30 * 60.0
    resume_every_s: float = 2 * 60.0
    stage_s: float = 10 * 60.0
    rollout_deadline_s: float = 60 * 60.0
    warmup_s: float = 15 * 60.0
    min_gap_s: float = 75 * 60.0
    incident_s: float = 10 * 60.0
    shifts: int = 3
    incidents: int = 2
    train_rows: int = 8_000
    seed: int = 11

    @property
    def duration_s(self) -> float:
        """The soak's length in seconds."""
        return self.hours * 3600.0

    @property
    def grace_s(self) -> float:
        """How long a change shows in the monitor's verdicts: its window reaches
        `monitor_window_s` back, and a run comes every `monitor_every_s`."""
        return self.monitor_window_s + self.monitor_every_s

    @property
    def min_new_rows(self) -> int:
        """Labelled rows after an alarm's onset that a retraining needs: three quarters of
        what the monitor's window holds once its labels are in (30 min back, labels 20 min
        late: 10 min of traffic, 3,600 rows). Asking for all of it was a coin toss: a soak
        saw 3,507 of 3,600 and held the alarm as insufficient data."""
        labelled_s = max(self.monitor_window_s - self.label_delay_s, self.tick_s)
        return int(0.75 * self.rows_per_second * labelled_s)

    def save(self) -> None:
        """Keep the configuration in the soak's folder (`load` reads it back)."""
        fields = {k: str(v) if isinstance(v, Path) else v for k, v in vars(self).items()}
        (self.out / "soak-config.json").write_text(json.dumps(fields, indent=2))

    @classmethod
    def load(cls, out: Path) -> SoakConfig:
        """The configuration a soak kept in its folder `out`."""
        fields = json.loads((out / "soak-config.json").read_text())
        return cls(**{**fields, "out": out})

    def plan(self) -> SoakPlan:
        """The seeded injections of this soak."""
        return plan_soak(
            self.duration_s,
            seed=self.seed,
            warmup_s=self.warmup_s,
            min_gap_s=self.min_gap_s,
            incident_s=self.incident_s,
            shifts=self.shifts,
            incidents=self.incidents,
        )

    def environment(self, home: Path, serving_port: int) -> dict[str, str]:
        """`MLOPS_*` settings of every process of the soak (driver included)."""
        return {
            **scenario_base_environment(home),
            # A retraining learns from the last 45 min (an alarm's onset reaches further
            # back), needs most of the labelled rows an alarm's window can hold, and may
            # not follow another one within 20 min.
            "MLOPS_RETRAINING__WINDOW_DAYS": f"{45 * 60 / 86_400:.8f}",
            "MLOPS_RETRAINING__MIN_NEW_ROWS": str(self.min_new_rows),
            "MLOPS_RETRAINING__COOLDOWN_S": f"{20 * 60:g}",
            "MLOPS_RETRAINING__DEBOUNCE_S": f"{self.monitor_every_s * 2:g}",
            "MLOPS_ROLLOUT__MIN_STAGE_SECONDS": f"{self.stage_s:g}",
            "MLOPS_ROLLOUT__MIN_PREDICTIONS": "200",
            "MLOPS_ROLLOUT__MIN_LABELS": "300",
            "MLOPS_ROLLOUT__MAX_DURATION_S": f"{self.rollout_deadline_s:g}",
            "MLOPS_ROLLOUT__PAUSED_EXPIRY_S": f"{self.rollout_deadline_s / 3:g}",
            "MLOPS_SERVING__PORT": str(serving_port),
            "MLOPS_SERVING__POLL_INTERVAL_S": "5",
            # An all-null incident must reach the prediction log, where the monitor
            # judges it (by default serving refuses nulls the contract forbids, 422).
            "MLOPS_SERVING__IMPUTE_NULLS": "true",
        }

    def adjust(self, deployment: dict[str, Any]) -> None:
        """Turn on the monitor's and the canary's schedules at the soak's pace."""
        name = deployment["name"]
        if name == "hourly":
            deployment["schedules"] = [{"interval": self.monitor_every_s, "active": True}]
            deployment["parameters"]["params"]["window_minutes"] = self.monitor_window_s / 60
            deployment["parameters"]["params"]["html_report"] = False
        elif name == "resume":
            deployment["schedules"] = [{"interval": self.resume_every_s, "active": True}]


@dataclass
class _Pending:
    """A tick's answers and rows, waiting for their labels."""

    due: float
    answers: list[Answer]
    truth: pd.DataFrame


@dataclass
class _World:
    """One shuffled pool of rows per regime, drawn from in order (then again)."""

    rows: int
    seed: int
    pools: dict[Scenario, pd.DataFrame] = field(default_factory=dict)
    cursors: dict[Scenario, int] = field(default_factory=dict)

    def draw(self, regime: Scenario, count: int) -> pd.DataFrame:
        if regime not in self.pools:
            frame = generate(regime, self.rows, SIMULATED_START, days=14.0, seed=self.seed)
            self.pools[regime] = frame.sample(frac=1.0, random_state=self.seed).reset_index(
                drop=True
            )
            self.cursors[regime] = 0
        pool, start = self.pools[regime], self.cursors[regime]
        index = [(start + k) % len(pool) for k in range(count)]
        self.cursors[regime] = (start + count) % len(pool)
        return pool.iloc[index].reset_index(drop=True)


def run_soak(config: SoakConfig) -> SoakReport:
    """Run the loop for `config.hours` on a stack of its own; returns the report.

    Raises:
        ScenarioError: the first champion could not be trained or the service failed.
        StackError: a part of the stack did not start.
    """
    config.out.mkdir(parents=True, exist_ok=True)
    config.save()
    plan = config.plan()
    with running_stack(
        config.out, config.environment, deployments=SOAK_DEPLOYMENTS, adjust=config.adjust
    ) as stack:
        settings = get_settings()
        first = train_first_champion(config.train_rows, config.seed, config.out)
        url = start_service(stack)
        wait_ready(url)
        api = PrefectApi(stack.api_url)
        traffic = TrafficClient(url, tolerant=True)
        started = datetime.now(UTC)
        try:
            marks = {"started_at": started.isoformat(), "first_version": first}
            memory = _play(config, plan, stack, traffic, settings.landing_dir / MODEL, marks)
            report = build_report(
                config_hours=config.hours,
                plan=plan,
                settings=settings,
                api=api,
                model=MODEL,
                first_version=first,
                started=started,
                ended=datetime.now(UTC),
                statuses=dict(traffic.statuses),
                memory=memory,
                grace_s=config.grace_s,
                warm_s=config.warmup_s,
            )
        finally:
            traffic.close()
            api.close()
    (config.out / "soak-report.json").write_text(report.model_dump_json(indent=2))
    return report


def rebuild_report(config: SoakConfig) -> SoakReport:
    """Judge a finished soak again from its folder: what the driver kept
    (`soak-progress.json`) and the loop's own records (the Prefect server, restarted on
    the soak's state for the purpose, the ledger). For a soak whose driver died, or
    one judged by an earlier rule; writes `soak-report.rebuilt.json`."""
    progress = json.loads((config.out / "soak-progress.json").read_text())
    if "started_at" in progress:
        started = datetime.fromisoformat(progress["started_at"])
    else:  # a soak of an earlier version: its report has it
        report_file = json.loads((config.out / "soak-report.json").read_text())
        started = datetime.fromisoformat(report_file["started_at"])
    memory = [MemorySample.model_validate(sample) for sample in progress["memory"]]
    ended = started + timedelta(seconds=memory[-1].at_s) if memory else datetime.now(UTC)
    stack = LocalStack(
        repo=REPO,
        run_dir=config.out / "run-report",
        prefect_home=config.out / "prefect",
        port=free_port(),
        env=config.environment(config.out / "state", free_port()),
    )
    os.environ.update(stack.env)
    get_settings.cache_clear()
    start_server(stack)
    api = PrefectApi(stack.api_url)
    try:
        report = build_report(
            config_hours=config.hours,
            plan=config.plan(),
            settings=get_settings(),
            api=api,
            model=MODEL,
            first_version=str(progress.get("first_version", "1")),
            started=started,
            ended=ended,
            statuses={int(code): n for code, n in progress["statuses"].items()},
            memory=memory,
            grace_s=config.grace_s,
            warm_s=config.warmup_s,
        )
    finally:
        api.close()
        stop(stack, SERVER)
    (config.out / "soak-report.rebuilt.json").write_text(report.model_dump_json(indent=2))
    return report


def _play(
    config: SoakConfig,
    plan: SoakPlan,
    stack: LocalStack,
    traffic: TrafficClient,
    landing: Path,
    marks: dict[str, str],
) -> list[MemorySample]:
    """Send the world's traffic for the soak's duration; returns the memory samples."""
    world = _World(rows=max(20_000, int(config.rows_per_second * 3600)), seed=config.seed)
    began = time.monotonic()
    waiting: deque[_Pending] = deque()
    memory: list[MemorySample] = []
    tick = 0
    while (elapsed := time.monotonic() - began) < config.duration_s:
        regime = plan.regime_at(elapsed)
        rows = world.draw(regime, int(config.rows_per_second * config.tick_s))
        incident = plan.incident_at(elapsed)
        sent = rows if incident is None else break_pipe(rows, incident)
        answers, happened = traffic.send(sent, config.tick_s, config.request_rows)
        truth = rows.copy()  # the source system records the true values, not the broken pipe's
        truth[TIMESTAMP] = happened[TIMESTAMP].to_numpy()
        waiting.append(_Pending(time.monotonic() + config.label_delay_s, answers, truth))
        if not memory:  # the start: after the first tick warmed the service up
            memory.append(_memory(stack, time.monotonic() - began))
        while waiting and waiting[0].due <= time.monotonic():
            done = waiting.popleft()
            traffic.post_labels(done.answers)
            land_batch(done.truth, landing, tick)
            tick += 1
        if int(elapsed) // 300 != int(time.monotonic() - began) // 300:
            memory.append(_memory(stack, time.monotonic() - began))
            _save_progress(config.out, traffic, memory, marks)
            logger.info(
                "soak %.0f/%.0f s: regime %s%s, %d requests answered",
                elapsed,
                config.duration_s,
                regime,
                f", incident {incident.label}" if incident else "",
                traffic.statuses.get(200, 0),
            )
    memory.append(_memory(stack, time.monotonic() - began))
    _save_progress(config.out, traffic, memory, marks)
    return memory


def _save_progress(
    out: Path, traffic: TrafficClient, memory: list[MemorySample], marks: dict[str, str]
) -> None:
    """What only the driver knows (HTTP statuses, memory), kept as the soak goes: a report
    can be rebuilt from it and the stack's state should the driver die before the end."""
    progress = {
        **marks,
        "statuses": {str(code): count for code, count in traffic.statuses.items()},
        "memory": [sample.model_dump() for sample in memory],
    }
    (out / "soak-progress.json").write_text(json.dumps(progress, indent=2))


def _memory(stack: LocalStack, at_s: float) -> MemorySample:
    """RSS of the prediction service (with its worker processes) and of the Prefect worker."""
    return MemorySample(
        at_s=round(at_s, 1),
        service_mib=_rss_mib(running_pid(stack, SERVING_COMPONENT), children=True),
        worker_mib=_rss_mib(running_pid(stack, worker_component(1)), children=False),
    )


def _rss_mib(pid: int | None, *, children: bool) -> float | None:
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        members = [process, *(process.children(recursive=True) if children else [])]
        rss: int = sum(p.memory_info().rss for p in members)
        return round(rss / 2**20, 1)
    except psutil.Error:
        return None
