"""What a soak found: injections against the loop's reactions, read from where it keeps them.

Reactions come from Prefect's event log (every `mlops.*` event the loop emitted), the
retraining ledger (alarms and runs) and the serving side (HTTP statuses, memory). The
judgement rules, spelled out because a soak's figures are only as good as them:

* the **champion's regime** is the world's regime when the serving champion was
  registered (its training window ends there): the baseline for the first champion;
* a shift is **expected to alarm** when it moves the world away from the champion's
  regime; a return to the champion's own regime (the baseline again, say, when no
  retraining followed the previous shift) is not, and is reported as such;
* an expected shift **is detected** by the first drift alarm (raised
  `mlops.drift.detected` or held `mlops.drift.held`) after it and before the next shift;
* an **incident is detected** by the first `mlops.data_quality.degraded` inside it (or
  within `grace_s` after it started);
* a drift alarm is **false** when, outside any incident, the monitor's whole window
  (`grace_s` back from the alarm) saw the world in the champion's regime: no shift and
  no promotion in that window, and the world's regime the champion's;
* a **rollout** starts with `mlops.model.registered` and ends with the first
  `mlops.model.promoted` / `mlops.model.rolled_back` of its version; one never ended
  is active until the soak's end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops.events import (
    DATA_QUALITY_DEGRADED,
    DRIFT_ALARM_HELD,
    DRIFT_DETECTED,
    MODEL_PROMOTED,
    MODEL_REGISTERED,
    MODEL_ROLLED_BACK,
    ROLLOUT_EXPIRED,
)
from mlops.retraining import recent_alarms, retrain_runs
from mlops.settings import Settings
from mlops.synthetic import Scenario
from scenarios.observe import PrefectApi
from scenarios.soak_plan import InjectionKind, SoakPlan

ALARMS = (DRIFT_DETECTED, DRIFT_ALARM_HELD)


class MemorySample(BaseModel):
    """RSS of the service and the worker at one moment of the soak."""

    model_config = ConfigDict(frozen=True)

    at_s: float
    service_mib: float | None
    worker_mib: float | None


class InjectionOutcome(BaseModel):
    """One injection and when the loop noticed it."""

    model_config = ConfigDict(frozen=True)

    kind: str
    label: str
    at_s: float
    detected_at_s: float | None
    delay_s: float | None
    expected: bool = True
    """False for a shift back to the champion's own regime: nothing to detect."""


class RolloutOutcome(BaseModel):
    """One rollout: registered, then promoted, rolled back (expired or not) or still active."""

    model_config = ConfigDict(frozen=True)

    version: str
    started_s: float
    ended_s: float | None
    outcome: str
    active_s: float
    reason: str = ""


class SoakReport(BaseModel):
    """The soak's figures (seconds since its start)."""

    model_config = ConfigDict(frozen=True)

    hours: float
    started_at: datetime
    ended_at: datetime
    injections: list[InjectionOutcome]
    shifts_injected: int
    shifts_expected: int = Field(description="Shifts away from the champion's regime.")
    shifts_detected: int
    incidents_injected: int
    incidents_detected: int
    alarms: int
    false_alarms: int
    false_alarm_times_s: list[float]
    retrainings: dict[str, int] = Field(description="Ledger runs by status.")
    rollouts: list[RolloutOutcome]
    rollouts_started: int
    rollouts_finished: int
    longest_rollout_active_s: float | None
    longest_alarm_wait_s: float | None
    requests: int
    non_2xx: int
    statuses: dict[str, int]
    events: dict[str, int] = Field(description="mlops.* events by name.")
    memory: list[MemorySample]
    warm_s: float = Field(
        description="Growth is measured from the first sample this late: by then every "
        "process has imported what it runs (the monitor, the canary, the service's model)."
    )
    service_rss_growth: float | None = Field(description="End RSS / warm RSS - 1.")
    worker_rss_growth: float | None

    def healthy(self, rollout_deadline_s: float, max_growth: float = 0.10) -> bool:
        """Every injection noticed, no false alarm, no rollout past its deadline (plus one
        resume period of slack), memory grown by at most `max_growth`."""
        deadline_ok = all(r.active_s <= rollout_deadline_s * 1.1 for r in self.rollouts)
        memory_ok = all(
            growth is None or growth <= max_growth
            for growth in (self.service_rss_growth, self.worker_rss_growth)
        )
        return (
            self.shifts_detected == self.shifts_expected
            and self.incidents_detected == self.incidents_injected
            and self.false_alarms == 0
            and deadline_ok
            and memory_ok
        )

    def lines(self) -> list[str]:
        """The report as text for a terminal."""
        out = [
            f"soak of {self.hours:g} h, {self.started_at:%Y-%m-%d %H:%M} .. "
            f"{self.ended_at:%H:%M} UTC",
            "",
            "injections:",
        ]
        for item in self.injections:
            if not item.expected:
                seen = "the champion's own regime: no alarm expected"
            elif item.delay_s is None:
                seen = "NOT detected"
            else:
                seen = f"seen after {item.delay_s:.0f} s"
            out.append(f"  {item.at_s:7.0f} s  {item.label:40s} {seen}")
        out += [
            "",
            f"shifts detected {self.shifts_detected}/{self.shifts_expected} "
            f"({self.shifts_injected} injected), incidents "
            f"detected {self.incidents_detected}/{self.incidents_injected}",
            f"drift alarms {self.alarms}, false {self.false_alarms} "
            f"{self.false_alarm_times_s or ''}",
            f"retrainings {self.retrainings}",
            f"rollouts started {self.rollouts_started}, finished {self.rollouts_finished}; "
            f"longest active {_minutes(self.longest_rollout_active_s)}",
            *(
                f"  v{r.version}: {r.outcome} after {_minutes(r.active_s)} {r.reason}"
                for r in self.rollouts
            ),
            f"longest alarm wait {_minutes(self.longest_alarm_wait_s)}",
            f"requests {self.requests}, non-2xx {self.non_2xx} {self.statuses}",
            f"events {self.events}",
            f"RSS (cold -> warm at {self.warm_s / 60:.0f} min -> end) service "
            f"{_mib(self.memory, 'service_mib', self.warm_s)} "
            f"({_pct(self.service_rss_growth)} since warm), "
            f"worker {_mib(self.memory, 'worker_mib', self.warm_s)} "
            f"({_pct(self.worker_rss_growth)} since warm)",
        ]
        return out


def build_report(
    *,
    config_hours: float,
    plan: SoakPlan,
    settings: Settings,
    api: PrefectApi,
    model: str,
    first_version: str,
    started: datetime,
    ended: datetime,
    statuses: dict[int, int],
    memory: list[MemorySample],
    grace_s: float,
    warm_s: float,
) -> SoakReport:
    """Read what the loop did during the soak and judge it against the plan."""
    events = api.events("mlops.", started, ended)

    def at(event: dict[str, Any]) -> float:
        return (datetime.fromisoformat(str(event["occurred"])) - started).total_seconds()

    def named(*names: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at(e), e) for e in events if e["event"] in names]

    alarms = [t for t, _ in named(*ALARMS)]
    quality = [t for t, _ in named(DATA_QUALITY_DEGRADED)]
    registered = {str(e["payload"].get("version")): t for t, e in named(MODEL_REGISTERED)}
    champions = champion_regimes(
        plan,
        [(t, str(e["payload"].get("version"))) for t, e in named(MODEL_PROMOTED)],
        registered,
    )
    outcomes = _injections(plan, alarms, quality, grace_s, champions)
    false_alarms = _false_alarms(plan, alarms, champions, grace_s)
    rollouts = _rollouts(named, first_version, (ended - started).total_seconds())
    runs = retrain_runs(settings, model)
    by_status: dict[str, int] = {}
    for run in runs:
        if run.started_at >= started:
            by_status[run.status] = by_status.get(run.status, 0) + 1
    waits = [
        ((alarm.resolved_at or ended) - alarm.received_at).total_seconds()
        for alarm in recent_alarms(settings, model, limit=10_000)
        if alarm.received_at >= started and alarm.outcome.value != "proceed"
    ]
    counted: dict[str, int] = {}
    for event in events:
        counted[event["event"]] = counted.get(event["event"], 0) + 1
    requests = sum(statuses.values())
    return SoakReport(
        hours=config_hours,
        started_at=started,
        ended_at=ended,
        injections=outcomes,
        shifts_injected=len(plan.shifts),
        shifts_expected=sum(1 for o in outcomes if o.kind == InjectionKind.SHIFT and o.expected),
        shifts_detected=sum(
            1 for o in outcomes if o.kind == InjectionKind.SHIFT and o.delay_s is not None
        ),
        incidents_injected=len(plan.incidents),
        incidents_detected=sum(
            1 for o in outcomes if o.kind == InjectionKind.DATA_QUALITY and o.delay_s is not None
        ),
        alarms=len(alarms),
        false_alarms=len(false_alarms),
        false_alarm_times_s=[round(t, 1) for t in false_alarms],
        retrainings=by_status,
        rollouts=rollouts,
        rollouts_started=len(rollouts),
        rollouts_finished=sum(1 for r in rollouts if r.ended_s is not None),
        longest_rollout_active_s=max((r.active_s for r in rollouts), default=None),
        longest_alarm_wait_s=round(max(waits), 1) if waits else None,
        requests=requests,
        non_2xx=sum(n for code, n in statuses.items() if not 200 <= code < 300),
        statuses={str(code): n for code, n in sorted(statuses.items())},
        events=counted,
        memory=memory,
        warm_s=warm_s,
        service_rss_growth=_growth(memory, "service_mib", warm_s),
        worker_rss_growth=_growth(memory, "worker_mib", warm_s),
    )


ChampionTimeline = list[tuple[float, Scenario]]
"""When each champion started serving (seconds since the soak's start) and its regime."""


def champion_regimes(
    plan: SoakPlan, promotions: list[tuple[float, str]], registered: dict[str, float]
) -> ChampionTimeline:
    """The champions' regimes over the soak: the baseline first, then at each promotion
    the world's regime when the promoted version was registered."""
    timeline: ChampionTimeline = [(0.0, Scenario.BASELINE)]
    for at_s, version in sorted(promotions):
        timeline.append((at_s, plan.regime_at(registered.get(version, at_s))))
    return timeline


def _champion_at(champions: ChampionTimeline, at_s: float) -> Scenario:
    return [regime for since, regime in champions if since <= at_s][-1]


def _injections(
    plan: SoakPlan,
    alarms: list[float],
    quality: list[float],
    grace_s: float,
    champions: ChampionTimeline,
) -> list[InjectionOutcome]:
    shifts = [s.at_s for s in plan.shifts]
    found = []
    for injection in plan.injections:
        expected = True
        if injection.kind is InjectionKind.SHIFT:
            expected = injection.regime != _champion_at(champions, injection.at_s)
            later = [s for s in shifts if s > injection.at_s]
            until = later[0] if later else float("inf")
            hits = [t for t in alarms if injection.at_s <= t < until] if expected else []
        else:
            until = injection.at_s + injection.duration_s + grace_s
            hits = [t for t in quality if injection.at_s <= t < until]
        first = hits[0] if hits else None
        found.append(
            InjectionOutcome(
                kind=injection.kind.value,
                label=injection.label,
                at_s=injection.at_s,
                detected_at_s=None if first is None else round(first, 1),
                delay_s=None if first is None else round(first - injection.at_s, 1),
                expected=expected,
            )
        )
    return found


def _false_alarms(
    plan: SoakPlan, alarms: list[float], champions: ChampionTimeline, grace_s: float
) -> list[float]:
    shifts = [s.at_s for s in plan.shifts]
    incidents = [(i.at_s, i.at_s + i.duration_s + grace_s) for i in plan.incidents]
    changes = shifts + [since for since, _ in champions[1:]]
    false = []
    for t in alarms:
        if any(start <= t < end for start, end in incidents):
            continue
        if any(t - grace_s < change <= t for change in changes):
            continue  # the monitor's window holds two regimes or two champions
        if plan.regime_at(t) == _champion_at(champions, t):
            false.append(t)
    return false


def _rollouts(named: Any, first_version: str, total_s: float) -> list[RolloutOutcome]:
    ends: dict[str, tuple[float, str, str]] = {}
    expired = {str(e["payload"].get("version")) for _, e in named(ROLLOUT_EXPIRED)}
    for t, event in named(MODEL_PROMOTED, MODEL_ROLLED_BACK):
        version = str(event["payload"].get("version"))
        if version in ends:
            continue
        outcome = "promoted" if event["event"] == MODEL_PROMOTED else "rolled back"
        if outcome == "rolled back" and version in expired:
            outcome = "expired"
        ends[version] = (t, outcome, str(event["payload"].get("reason", "")))
    found = []
    for t, event in named(MODEL_REGISTERED):
        version = str(event["payload"].get("version"))
        if version == first_version:
            continue
        end = ends.get(version)
        found.append(
            RolloutOutcome(
                version=version,
                started_s=round(t, 1),
                ended_s=None if end is None else round(end[0], 1),
                outcome="active" if end is None else end[1],
                active_s=round((total_s if end is None else end[0]) - t, 1),
                reason="" if end is None else end[2],
            )
        )
    return found


def _values(memory: list[MemorySample], field: str) -> list[float]:
    return [getattr(m, field) for m in memory if getattr(m, field) is not None]


def _warm(memory: list[MemorySample], field: str, warm_s: float) -> float | None:
    late = _values([m for m in memory if m.at_s >= warm_s], field)
    return late[0] if late else None


def _growth(memory: list[MemorySample], field: str, warm_s: float) -> float | None:
    values, warm = _values(memory, field), _warm(memory, field, warm_s)
    if len(values) < 2 or not warm:
        return None
    return round(values[-1] / warm - 1.0, 4)


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _mib(memory: list[MemorySample], field: str, warm_s: float) -> str:
    values, warm = _values(memory, field), _warm(memory, field, warm_s)
    if not values:
        return "-"
    middle = "?" if warm is None else f"{warm:.0f}"
    return f"{values[0]:.0f} -> {middle} -> {values[-1]:.0f} MiB"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"
