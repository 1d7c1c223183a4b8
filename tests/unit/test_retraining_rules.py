"""The retraining guardrails' pure rules: one `judge` for the retraining and the monitor."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from mlops.retraining.models import (
    AlarmRecord,
    GuardOutcome,
    RetrainRun,
    RetrainTrigger,
    RunStatus,
)
from mlops.retraining.rules import (
    Facts,
    ago,
    is_alive,
    is_pending,
    judge,
    overdue_reason,
    stale_reason,
)
from mlops.settings import RetrainingSettings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MODEL = "card_fraud"
RULES = RetrainingSettings(
    cooldown_s=3600,
    debounce_s=600,
    min_new_rows=100,
    max_run_s=4 * 3600,
    heartbeat_interval_s=60,
    heartbeat_timeout_s=900,
)


def run(
    started_min_ago: float,
    *,
    status: str = RunStatus.RUNNING.value,
    beat_min_ago: float | None = None,
) -> RetrainRun:
    started = NOW - timedelta(minutes=started_min_ago)
    return RetrainRun(
        key="event:r",
        model_name=MODEL,
        started_at=started,
        finished_at=None,
        window_start=None,
        window_end=None,
        data_end=None,
        rows=None,
        batch_sha256=None,
        status=status,
        detail="",
        run_id="flow-run",
        heartbeat_at=None if beat_min_ago is None else NOW - timedelta(minutes=beat_min_ago),
    )


def alarm(min_ago: float, outcome: GuardOutcome = GuardOutcome.SUPPRESSED) -> AlarmRecord:
    return AlarmRecord(
        key="event:head",
        model_name=MODEL,
        trigger=RetrainTrigger.DRIFT,
        received_at=NOW - timedelta(minutes=min_ago),
        onset=None,
        drift_share=0.5,
        drifted_features=("amount",),
        reason="drift",
        outcome=outcome,
        detail="deferred: a canary rollout",
        new_rows=None,
        window_start=None,
        window_end=None,
        run_id=None,
        merged_into=None,
        resolved_by=None,
        resolved_at=None,
    )


def facts(**fields: object) -> Facts:
    return Facts(**{"model": MODEL, "trigger": RetrainTrigger.DRIFT, **fields})  # type: ignore[arg-type]


def test_nothing_holds_a_request_on_a_quiet_model() -> None:
    verdict = judge(facts(new_rows=500), RULES, NOW)
    assert verdict.outcome is GuardOutcome.PROCEED and not verdict.held
    assert verdict.reason == "retraining card_fraud on 500 new rows"
    assert not judge(facts(), RULES, NOW).held  # the monitor does not count rows


def test_a_live_run_holds_and_names_itself() -> None:
    verdict = judge(facts(last_run=run(5, beat_min_ago=1), new_rows=500), RULES, NOW)
    assert verdict.outcome is GuardOutcome.SUPPRESSED and verdict.held_by == "event:r"
    assert "event:r" in verdict.reason and "is running" in verdict.reason


def test_a_run_with_a_silent_heartbeat_is_stale_and_only_its_cooldown_counts() -> None:
    silent = run(30, beat_min_ago=16)
    reason = stale_reason(silent, NOW, heartbeat_timeout_s=900, max_run_s=4 * 3600)
    assert reason is not None and "last heartbeat for 16 min (limit 15 min)" in reason
    assert not is_alive(silent, NOW, RULES)
    verdict = judge(facts(last_run=silent, new_rows=500), RULES, NOW)
    assert verdict.reason.startswith("cooldown:") and verdict.held_by == "event:r"
    # Past the cooldown a dead run holds nothing at all.
    dead = run(90, beat_min_ago=80)
    assert judge(facts(last_run=dead, new_rows=500), RULES, NOW).outcome is GuardOutcome.PROCEED


def test_a_run_that_never_beat_counts_from_its_start_and_max_run_s_caps_any_run() -> None:
    assert stale_reason(run(10), NOW, heartbeat_timeout_s=900, max_run_s=14400) is None
    never = stale_reason(run(20), NOW, heartbeat_timeout_s=900, max_run_s=14400)
    assert never is not None and never.startswith("no heartbeat for 20 min")
    hung = stale_reason(run(300, beat_min_ago=0), NOW, heartbeat_timeout_s=900, max_run_s=14400)
    assert hung == "running for 5.0 h, longer than the limit of 4.0 h"
    finished = run(300, status="registered")
    assert stale_reason(finished, NOW, heartbeat_timeout_s=900, max_run_s=14400) is None


def test_the_rules_apply_in_order() -> None:
    everything = facts(
        quality_incident="amount is all null",
        retraining_queued="brave-otter",
        last_run=run(5, beat_min_ago=0),
        burst_head=alarm(1),
        rollout_active=True,
        new_rows=0,
    )
    order = []
    current = everything
    for clear in (
        {"quality_incident": None},
        {"retraining_queued": None},
        {"last_run": run(5, status="registered")},
        {"last_run": None},
        {"burst_head": None},
        {"rollout_active": False},
        {"new_rows": 500},
    ):
        order.append(judge(current, RULES, NOW).outcome)
        current = Facts(**{**current.__dict__, **clear})
    order.append(judge(current, RULES, NOW).outcome)
    assert order == [
        GuardOutcome.QUALITY_HOLD,
        GuardOutcome.SUPPRESSED,  # queued
        GuardOutcome.SUPPRESSED,  # running
        GuardOutcome.SUPPRESSED,  # cooldown
        GuardOutcome.DEBOUNCED,
        GuardOutcome.DEFERRED,
        GuardOutcome.INSUFFICIENT_DATA,
        GuardOutcome.PROCEED,
    ]
    quality = judge(everything, RULES, NOW)
    assert "amount is all null" in quality.reason and "pending" in quality.reason


def test_only_drift_alarms_are_debounced() -> None:
    head = alarm(2)
    drift = judge(facts(burst_head=head, new_rows=500), RULES, NOW)
    assert drift.outcome is GuardOutcome.DEBOUNCED and drift.merged_into == "event:head"
    nightly = facts(trigger=RetrainTrigger.SCHEDULE, burst_head=head, new_rows=500)
    assert judge(nightly, RULES, NOW).outcome is GuardOutcome.PROCEED


LAST_RUNS = (
    None,
    run(5, beat_min_ago=1),  # alive, inside the cooldown
    run(30, beat_min_ago=20),  # silent heartbeat, inside the cooldown
    run(90, beat_min_ago=1),  # alive, past the cooldown
    run(90, beat_min_ago=60),  # silent, past the cooldown
    run(300, beat_min_ago=0),  # past max_run_s
    run(30, status="registered"),
    run(90, status="not_promoted"),
)


@pytest.mark.parametrize(
    ("last", "head", "rollout", "quality"),
    list(
        itertools.product(
            LAST_RUNS, (None, alarm(3), alarm(30)), (False, True), (None, "unit change")
        )
    ),
)
def test_the_monitor_holds_exactly_what_a_retraining_with_enough_rows_refuses(
    last: RetrainRun | None, head: AlarmRecord | None, rollout: bool, quality: str | None
) -> None:
    common = facts(last_run=last, burst_head=head, rollout_active=rollout, quality_incident=quality)
    monitor = judge(common, RULES, NOW)
    retraining = judge(Facts(**{**common.__dict__, "new_rows": 10_000}), RULES, NOW)
    assert monitor.outcome is retraining.outcome
    assert monitor.held_by == retraining.held_by and monitor.merged_into == retraining.merged_into


def test_pending_outcomes_and_overdue_alarms() -> None:
    assert is_pending(GuardOutcome.DEFERRED, RetrainTrigger.SCHEDULE)
    assert is_pending(GuardOutcome.QUALITY_HOLD, RetrainTrigger.MANUAL)
    assert is_pending(GuardOutcome.INSUFFICIENT_DATA, RetrainTrigger.DRIFT)
    assert not is_pending(GuardOutcome.INSUFFICIENT_DATA, RetrainTrigger.SCHEDULE)
    assert not is_pending(GuardOutcome.SUPPRESSED, RetrainTrigger.DRIFT)
    waiting = alarm(25 * 60, GuardOutcome.DEFERRED)
    assert overdue_reason(waiting, NOW, 26 * 3600) is None
    reason = overdue_reason(waiting, NOW, 24 * 3600)
    assert reason is not None
    assert "has waited 25.0 h for a retraining (limit 24.0 h)" in reason
    assert "deferred: a canary rollout" in reason


def test_durations_read_well() -> None:
    assert [ago(timedelta(seconds=s)) for s in (5, 300, 9000)] == ["5 s", "5 min", "2.5 h"]


def test_the_heartbeat_timeout_must_outlast_a_late_beat() -> None:
    with pytest.raises(ValueError, match="at least twice"):
        RetrainingSettings(heartbeat_interval_s=600, heartbeat_timeout_s=900)
