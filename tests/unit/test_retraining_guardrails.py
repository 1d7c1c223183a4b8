"""Retraining guardrails (cooldown, debounce, rollout, minimum data) and the window."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from mlops.dataset_spec import load_spec
from mlops.errors import ConfigError
from mlops.events import RETRAINING_EXPIRED
from mlops.retraining import (
    GuardDecision,
    GuardOutcome,
    RetrainRequest,
    RetrainTrigger,
    RunStatus,
    beat,
    check_retrain,
    collect_window,
    expire_run,
    hold_alarm,
    is_alive,
    keep_beating,
    ledger_url,
    new_rows_since,
    oldest_waiting_alarm,
    overdue_reason,
    pending_alarms,
    recent_alarms,
    record_outcome,
    retrain_runs,
    retraining_window,
    trained_until,
)
from mlops.settings import FeastSettings, RetrainingSettings, Settings
from mlops.synthetic import Scenario, generate, write_batch

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MODEL = "card_fraud"
SPEC = load_spec(Path("datasets/card_fraud.yaml"))


@pytest.fixture
def guarded(settings: Settings) -> Settings:
    """One hour of cooldown, ten minutes of debounce, 100 new rows at least."""
    rules = RetrainingSettings(cooldown_s=3600, debounce_s=600, min_new_rows=100, window_days=7)
    return settings.model_copy(update={"retraining": rules})


def alarm(event: str, **fields: object) -> RetrainRequest:
    return RetrainRequest.model_validate({"event_id": event, "model_name": MODEL, **fields})


def proceed_later(settings: Settings) -> GuardDecision:
    """Alarm `e2`, 20 min after T0 (past the debounce) with enough rows: it proceeds."""
    return check_retrain(
        alarm("e2"),
        settings,
        now=T0 + timedelta(minutes=20),
        rollout_active=False,
        new_rows=500,
        run_id="r2",
    )


def decide(
    settings: Settings,
    request: RetrainRequest,
    at: datetime,
    *,
    rollout_active: bool = False,
    new_rows: int = 500,
    run_id: str | None = None,
) -> GuardOutcome:
    decision = check_retrain(
        request,
        settings,
        now=at,
        rollout_active=rollout_active,
        new_rows=new_rows,
        run_id=run_id or f"run-{request.event_id}",
    )
    return decision.outcome


def test_a_retraining_starts_a_cooldown_that_suppresses_the_next_alarm(guarded: Settings) -> None:
    first = check_retrain(
        alarm("e1"), guarded, now=T0, rollout_active=False, new_rows=500, run_id="r1"
    )
    assert first.proceed and first.outcome is GuardOutcome.PROCEED
    second = check_retrain(
        alarm("e2"),
        guarded,
        now=T0 + timedelta(minutes=30),
        rollout_active=False,
        new_rows=500,
        run_id="r2",
    )
    assert second.outcome is GuardOutcome.SUPPRESSED and not second.proceed
    assert "cooldown" in second.reason and "30 min" in second.reason
    assert second.last_retrain_at == T0
    # After the cooldown the next alarm proceeds.
    assert decide(guarded, alarm("e3"), T0 + timedelta(hours=1, seconds=1)) is GuardOutcome.PROCEED
    outcomes = {a.key: a.outcome for a in recent_alarms(guarded, MODEL)}
    assert outcomes == {
        "event:e1": GuardOutcome.PROCEED,
        "event:e2": GuardOutcome.SUPPRESSED,
        "event:e3": GuardOutcome.PROCEED,
    }
    assert [r.key for r in retrain_runs(guarded, MODEL)] == ["event:e3", "event:e1"]


def test_a_crashed_retraining_does_not_start_a_cooldown(guarded: Settings) -> None:
    assert decide(guarded, alarm("e1"), T0) is GuardOutcome.PROCEED
    record_outcome(guarded, "event:e1", RunStatus.FAILED, now=T0, detail="worker died")
    later = T0 + timedelta(minutes=20)  # past the debounce, inside the cooldown
    assert decide(guarded, alarm("e2"), later) is GuardOutcome.PROCEED
    failed = [r for r in retrain_runs(guarded, MODEL) if r.key == "event:e1"][0]
    assert failed.status == "failed" and failed.detail == "worker died"
    assert failed.finished_at == T0


def test_repeated_alarms_are_debounced_in_bursts_not_chained(guarded: Settings) -> None:
    # No data yet: nothing trains, so only the debounce holds alarms back.
    at = [T0 + timedelta(minutes=m) for m in (0, 5, 9, 11, 15)]
    outcomes = [decide(guarded, alarm(f"e{i}"), t, new_rows=0) for i, t in enumerate(at)]
    assert outcomes == [
        GuardOutcome.INSUFFICIENT_DATA,
        GuardOutcome.DEBOUNCED,
        GuardOutcome.DEBOUNCED,
        # 11 min after the burst's first alarm: a new burst, even though the previous
        # alarm was only 2 minutes earlier.
        GuardOutcome.INSUFFICIENT_DATA,
        GuardOutcome.DEBOUNCED,
    ]
    merged = {a.key: a.merged_into for a in recent_alarms(guarded, MODEL)}
    assert merged["event:e1"] == merged["event:e2"] == "event:e0"
    assert merged["event:e4"] == "event:e3"


def test_a_scheduled_retraining_is_not_debounced(guarded: Settings) -> None:
    assert decide(guarded, alarm("e1"), T0, new_rows=0) is GuardOutcome.INSUFFICIENT_DATA
    nightly = RetrainRequest(trigger=RetrainTrigger.SCHEDULE, model_name=MODEL)
    decision = check_retrain(
        nightly,
        guarded,
        now=T0 + timedelta(minutes=1),
        rollout_active=False,
        new_rows=500,
        run_id="nightly-1",
    )
    assert decision.proceed and decision.key == "run:nightly-1"


def test_an_alarm_during_a_rollout_is_deferred_and_taken_over_later(guarded: Settings) -> None:
    onset = T0 - timedelta(days=3)
    early = alarm("e1", onset=onset.isoformat())
    assert decide(guarded, early, T0, rollout_active=True) is GuardOutcome.DEFERRED
    pending = pending_alarms(guarded, MODEL)
    assert [(p.key, p.onset) for p in pending] == [("event:e1", onset)]
    # The rollout ends; the next alarm (past the debounce) retrains and takes it over.
    late = check_retrain(
        alarm("e2"),
        guarded,
        now=T0 + timedelta(hours=2),
        rollout_active=False,
        new_rows=500,
        run_id="r2",
    )
    assert late.proceed and late.takes_over == ("event:e1",)
    assert pending_alarms(guarded, MODEL) == ()
    resolved = {a.key: a.resolved_by for a in recent_alarms(guarded, MODEL)}
    assert resolved["event:e1"] == "event:e2"


def test_too_few_new_rows_do_not_retrain(guarded: Settings) -> None:
    decision = check_retrain(
        alarm("e1"), guarded, now=T0, rollout_active=False, new_rows=99, run_id="r1"
    )
    assert decision.outcome is GuardOutcome.INSUFFICIENT_DATA
    assert "99 new rows" in decision.reason and "100 needed" in decision.reason
    assert retrain_runs(guarded, MODEL) == ()


def test_an_alarm_held_back_for_too_few_rows_stays_pending_until_a_retraining_proceeds(
    guarded: Settings,
) -> None:
    onset = T0 - timedelta(hours=1)
    early = alarm("e1", onset=onset.isoformat())
    assert decide(guarded, early, T0, new_rows=40) is GuardOutcome.INSUFFICIENT_DATA
    assert [(p.key, p.onset) for p in pending_alarms(guarded, MODEL)] == [("event:e1", onset)]
    # Labels arrive late: past the debounce there are enough rows, and the retraining
    # that proceeds takes the first alarm over (its window reaches back to e1's onset).
    late = proceed_later(guarded)
    assert late.proceed and late.takes_over == ("event:e1",)
    assert pending_alarms(guarded, MODEL) == ()
    resolved = {a.key: a.resolved_by for a in recent_alarms(guarded, MODEL)}
    assert resolved == {"event:e1": "event:e2", "event:e2": None}


def test_a_scheduled_request_short_of_rows_is_not_kept_pending(guarded: Settings) -> None:
    scheduled = RetrainRequest(trigger=RetrainTrigger.SCHEDULE, model_name=MODEL)
    decision = check_retrain(
        scheduled, guarded, now=T0, rollout_active=False, new_rows=10, run_id="s1"
    )
    assert decision.outcome is GuardOutcome.INSUFFICIENT_DATA
    assert pending_alarms(guarded, MODEL) == ()


def test_the_monitor_raises_an_alarm_when_a_retraining_could_start(guarded: Settings) -> None:
    assert hold_alarm(alarm("m0"), guarded, now=T0, rollout_active=False) is None
    assert recent_alarms(guarded, MODEL) == ()


def test_the_monitor_holds_its_alarm_while_a_retraining_runs_and_in_the_cooldown(
    guarded: Settings,
) -> None:
    assert decide(guarded, alarm("e1"), T0, run_id="r1") is GuardOutcome.PROCEED
    running = hold_alarm(
        alarm("m1"), guarded, now=T0 + timedelta(minutes=2), rollout_active=False, run_id="mr1"
    )
    assert running is not None and running.outcome is GuardOutcome.SUPPRESSED
    assert "event:e1" in running.reason and "running" in running.reason
    record_outcome(guarded, "event:e1", "registered", now=T0 + timedelta(minutes=5))
    cooling = hold_alarm(alarm("m2"), guarded, now=T0 + timedelta(minutes=30), rollout_active=False)
    assert cooling is not None and cooling.outcome is GuardOutcome.SUPPRESSED
    assert "cooldown" in cooling.reason
    # Both held alarms are in the ledger; neither waits for a later retraining.
    recorded = {a.key: a.outcome for a in recent_alarms(guarded, MODEL)}
    assert recorded["event:m1"] is GuardOutcome.SUPPRESSED
    assert recorded["event:m2"] is GuardOutcome.SUPPRESSED
    assert pending_alarms(guarded, MODEL) == ()
    # A retry of the same monitor run gets its decision back, not a second row.
    again = hold_alarm(
        alarm("m1"), guarded, now=T0 + timedelta(minutes=3), rollout_active=False, run_id="mr1"
    )
    assert again is not None and again.key == "event:m1" and not again.duplicate
    # After the cooldown the monitor raises alarms again.
    assert (
        hold_alarm(alarm("m3"), guarded, now=T0 + timedelta(hours=2), rollout_active=False) is None
    )


def test_the_monitor_holds_its_alarm_while_a_retraining_run_is_queued(guarded: Settings) -> None:
    """The event of the previous window started a run that has not reached the ledger."""
    held = hold_alarm(
        alarm("m1"), guarded, now=T0, rollout_active=False, retraining_queued="brave-otter"
    )
    assert held is not None and held.outcome is GuardOutcome.SUPPRESSED
    assert "brave-otter" in held.reason and "has not finished" in held.reason
    assert pending_alarms(guarded, MODEL) == ()


def test_a_retraining_left_running_by_a_killed_worker_does_not_silence_the_monitor(
    guarded: Settings,
) -> None:
    assert decide(guarded, alarm("e1"), T0, run_id="r1") is GuardOutcome.PROCEED
    stale = T0 + timedelta(seconds=guarded.retraining.max_run_s + 1)
    assert stale - T0 > timedelta(seconds=guarded.retraining.cooldown_s)
    assert hold_alarm(alarm("m1"), guarded, now=stale, rollout_active=False) is None
    [run] = retrain_runs(guarded, MODEL)
    assert run.status == RunStatus.RUNNING.value


def test_the_monitor_defers_its_alarm_during_a_rollout_for_the_next_retraining(
    guarded: Settings,
) -> None:
    onset = T0 - timedelta(hours=1)
    held = hold_alarm(
        RetrainRequest(model_name=MODEL, onset=onset),
        guarded,
        now=T0,
        rollout_active=True,
        run_id="m1",
    )
    assert held is not None and held.outcome is GuardOutcome.DEFERRED
    assert [(p.key, p.onset) for p in pending_alarms(guarded, MODEL)] == [("run:m1", onset)]
    late = proceed_later(guarded)
    assert late.proceed and late.takes_over == ("run:m1",)


def test_a_redelivered_event_is_recognised_and_a_retried_run_keeps_its_decision(
    guarded: Settings,
) -> None:
    first = check_retrain(
        alarm("e1"), guarded, now=T0, rollout_active=False, new_rows=500, run_id="r1"
    )
    assert first.proceed
    later = T0 + timedelta(seconds=5)
    # The same event delivered again starts another flow run: recognised, not counted.
    again = check_retrain(
        alarm("e1"), guarded, now=later, rollout_active=False, new_rows=500, run_id="r2"
    )
    assert again.duplicate and not again.proceed and again.outcome is GuardOutcome.PROCEED
    assert again.reason.startswith("duplicate: request event:e1 was decided before")
    # The first flow run retried: its own decision, so it trains.
    retried = check_retrain(
        alarm("e1"), guarded, now=later, rollout_active=True, new_rows=0, run_id="r1"
    )
    assert retried.proceed and not retried.duplicate and retried.decided_at == T0
    assert len(recent_alarms(guarded, MODEL)) == 1
    assert len(retrain_runs(guarded, MODEL)) == 1


def test_concurrent_alarms_start_one_retraining(guarded: Settings) -> None:
    start = threading.Barrier(6)
    results: list[bool] = []

    def one(i: int) -> None:
        start.wait()
        decision = check_retrain(
            alarm(f"e{i}"), guarded, now=T0, rollout_active=False, new_rows=500, run_id=f"r{i}"
        )
        results.append(decision.proceed)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert len(retrain_runs(guarded, MODEL)) == 1


def test_new_data_counts_from_the_last_registered_retraining(guarded: Settings) -> None:
    assert trained_until(guarded, MODEL) is None
    decide(guarded, alarm("e1"), T0)
    end = T0 - timedelta(hours=1)
    record_outcome(guarded, "event:e1", RunStatus.RUNNING, now=T0, rows=800, data_end=end)
    assert trained_until(guarded, MODEL) is None  # still running
    record_outcome(guarded, "event:e1", "not_promoted", now=T0)
    assert trained_until(guarded, MODEL) is None  # the model in service never saw it
    decide(guarded, alarm("e2"), T0 + timedelta(hours=2))
    record_outcome(guarded, "event:e2", RunStatus.RUNNING, now=T0, data_end=end)
    record_outcome(guarded, "event:e2", "registered", now=T0 + timedelta(hours=2))
    assert trained_until(guarded, MODEL) == end
    with pytest.raises(ConfigError, match="no retraining run"):
        record_outcome(guarded, "event:nope", "registered", now=T0)


def test_request_fields_rendered_by_an_event_template_are_normalised() -> None:
    # Missing payload keys render as empty strings or null; a naive time is UTC.
    request = RetrainRequest.model_validate(
        {
            "event_id": "",
            "model_name": "",
            "onset": "2026-03-01T10:00:00",
            "window_start": None,
            "drifted_features": None,
            "drift_share": "0.5",
        }
    )
    assert request.event_id is None and request.model_name is None
    assert request.onset == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert request.drifted_features == () and request.drift_share == 0.5
    assert request.key("abc") == "run:abc"
    assert RetrainRequest(event_id="x").key("abc") == "event:x"


def test_the_ledger_is_sqlite_locally_and_postgresql_in_production(tmp_path: Path) -> None:
    local = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert ledger_url(local) == f"sqlite:///{tmp_path / 'retraining.db'}"
    production = Settings(  # type: ignore[call-arg]
        _env_file=None,
        profile="production",
        database_url="postgresql://mlops@db:5432/mlops",
        tracking_uri="http://mlflow:5000",
        optuna_storage="postgresql://mlops@db:5432/optuna",
        feast=FeastSettings(online_store="redis"),
        admin_token="not-the-default",
    )
    assert ledger_url(production) == "postgresql+psycopg://mlops@db:5432/mlops"
    driver = production.model_copy(update={"database_url": "postgresql+psycopg://h/db"})
    assert ledger_url(driver) == "postgresql+psycopg://h/db"


@pytest.mark.integration
def test_the_guardrails_hold_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    production = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=tmp_path,
        profile="production",
        database_url=postgres_url,
        tracking_uri="http://mlflow:5000",
        optuna_storage=postgres_url,
        feast=FeastSettings(online_store="redis"),
        admin_token="not-the-default",
        retraining=RetrainingSettings(cooldown_s=3600, debounce_s=600, min_new_rows=100),
    )
    test_concurrent_alarms_start_one_retraining(production)
    assert decide(production, alarm("late"), T0 + timedelta(minutes=30)) is (
        GuardOutcome.SUPPRESSED
    )
    assert not (tmp_path / "retraining.db").exists()


# --------------------------------------------------------------------------- stale work


def production_settings(postgres_url: str, home: Path, **retraining: float) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=home,
        profile="production",
        database_url=postgres_url,
        tracking_uri="http://mlflow:5000",
        optuna_storage=postgres_url,
        feast=FeastSettings(online_store="redis"),
        admin_token="not-the-default",
        retraining=RetrainingSettings(
            cooldown_s=3600, debounce_s=600, min_new_rows=100, **retraining
        ),
    )


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `tasks.retraining` emits, captured instead of sent to a Prefect server."""
    import tasks.retraining

    emitted: list[dict[str, Any]] = []
    monkeypatch.setattr(tasks.retraining, "emit_event", lambda **event: emitted.append(event))
    return emitted


def check_stale_run_expires_and_its_alarms_wait_again(
    settings: Settings, emitted: list[dict[str, Any]]
) -> None:
    """A run whose worker died mid-training: its heartbeat stops, it expires, and the
    alarms it held (took over, suppressed while it ran or cooled down) are pending."""
    from tasks.retraining import expire_stale_retrainings

    onset = T0 - timedelta(days=2)
    assert decide(settings, alarm("d0", onset=onset.isoformat()), T0, rollout_active=True) is (
        GuardOutcome.DEFERRED
    )
    started = T0 + timedelta(minutes=20)
    assert decide(settings, alarm("e1"), started, run_id="r1") is GuardOutcome.PROCEED
    beating = started + timedelta(minutes=10)
    assert beat(settings, "event:e1", now=beating)
    held = hold_alarm(
        alarm("m1"), settings, now=beating + timedelta(minutes=1), rollout_active=False
    )
    assert held is not None and held.held_by == "event:e1" and "running" in held.reason
    assert pending_alarms(settings, MODEL) == ()
    # Within the heartbeat timeout nothing expires (and "r1" is no flow run id: Prefect
    # is not asked).
    assert (
        expire_stale_retrainings(MODEL, now=beating + timedelta(minutes=14), settings=settings)
        == ()
    )
    # The worker was killed after its last beat: 15 min of silence later the run expires.
    later = beating + timedelta(minutes=15, seconds=1)
    held_again = hold_alarm(alarm("m2"), settings, now=later, rollout_active=False)
    assert held_again is not None and held_again.reason.startswith("held: cooldown")
    [expired] = expire_stale_retrainings(MODEL, now=later, settings=settings)
    assert expired.run.key == "event:e1" and "last heartbeat for 15 min" in expired.reason
    assert expired.reopened == ("event:d0", "event:e1", "event:m1", "event:m2")
    [run] = retrain_runs(settings, MODEL)
    assert run.status == RunStatus.FAILED.value and run.finished_at == later
    assert run.detail.startswith("expired: last heartbeat for 15 min")
    waiting = {a.key: a for a in pending_alarms(settings, MODEL)}
    assert set(waiting) == {"event:d0", "event:e1", "event:m1", "event:m2"}
    assert waiting["event:m1"].outcome is GuardOutcome.DEFERRED
    assert (
        "reopened" in waiting["event:m1"].detail
        and "event:e1 expired" in waiting["event:m1"].detail
    )
    assert oldest_waiting_alarm(settings, MODEL) == waiting["event:d0"]
    [event] = emitted
    assert event["event"] == RETRAINING_EXPIRED
    assert event["resource"] == {
        "prefect.resource.id": "mlops.model.card_fraud",
        "prefect.resource.name": MODEL,
    }
    assert event["payload"] | {"reopened": None} == {
        "key": "event:e1",
        "run_id": "r1",
        "reason": expired.reason,
        "started_at": started.isoformat(),
        "reopened": None,
    }
    # The monitor's next alarm is no longer held by the dead run (failed: no cooldown).
    free = later + timedelta(minutes=11)  # past the debounce of m2
    assert hold_alarm(alarm("m3"), settings, now=free, rollout_active=False) is None
    # Expiring again changes nothing; the next retraining takes every waiting alarm over
    # and reaches back to d0's onset.
    assert expire_stale_retrainings(MODEL, now=free, settings=settings) == ()
    again = check_retrain(
        alarm("e2"), settings, now=free, rollout_active=False, new_rows=500, run_id="r2"
    )
    assert again.proceed
    assert again.takes_over == ("event:d0", "event:e1", "event:m1", "event:m2")


def test_a_retraining_whose_heartbeat_stopped_expires_and_its_alarms_wait_again(
    guarded: Settings, events: list[dict[str, Any]]
) -> None:
    check_stale_run_expires_and_its_alarms_wait_again(guarded, events)


def test_expiring_is_compare_and_set(guarded: Settings) -> None:
    assert decide(guarded, alarm("e1"), T0, run_id="r1") is GuardOutcome.PROCEED
    record_outcome(guarded, "event:e1", "registered", now=T0 + timedelta(minutes=5))
    assert expire_run(guarded, "event:e1", "flow run crashed", now=T0 + timedelta(hours=5)) is None
    assert expire_run(guarded, "event:nope", "gone", now=T0) is None
    assert retrain_runs(guarded, MODEL)[0].status == "registered"
    assert (
        decide(guarded, alarm("e2"), T0 + timedelta(hours=2), run_id="r2") is GuardOutcome.PROCEED
    )
    first = expire_run(guarded, "event:e2", "flow run crashed", now=T0 + timedelta(hours=3))
    assert first is not None and first.reopened == ("event:e2",)
    assert expire_run(guarded, "event:e2", "again", now=T0 + timedelta(hours=4)) is None
    # A beat of an expired run says so (the training process learns it was given up).
    assert not beat(guarded, "event:e2", now=T0 + timedelta(hours=4))


def test_the_heartbeat_thread_keeps_a_long_retraining_alive(guarded: Settings) -> None:
    assert decide(guarded, alarm("e1"), T0, run_id="r1") is GuardOutcome.PROCEED
    clock = iter(T0 + timedelta(minutes=m) for m in range(1, 1000))
    with keep_beating(guarded, "event:e1", interval_s=0.02, clock=lambda: next(clock)):
        deadline = time.monotonic() + 10
        while retrain_runs(guarded, MODEL)[0].last_seen < T0 + timedelta(minutes=3):
            assert time.monotonic() < deadline, "the heartbeat thread did not beat"
            time.sleep(0.02)
    [run] = retrain_runs(guarded, MODEL)
    seen = run.last_seen
    assert is_alive(run, seen + timedelta(minutes=14), guarded.retraining)
    # Long past the start, yet alive: it beat minutes ago, so the monitor stays held.
    held = hold_alarm(alarm("m1"), guarded, now=seen + timedelta(minutes=1), rollout_active=False)
    assert held is not None and "is running" in held.reason
    time.sleep(0.1)
    assert retrain_runs(guarded, MODEL)[0].last_seen == seen, "the thread stopped"


def test_a_quality_incident_holds_alarms_and_retrainings_as_pending(guarded: Settings) -> None:
    incident = "amount is null in 100 % of the window (was 0 %)"
    held = hold_alarm(alarm("m1"), guarded, now=T0, rollout_active=False, quality_incident=incident)
    assert held is not None and held.outcome is GuardOutcome.QUALITY_HOLD
    assert incident in held.reason
    refused = check_retrain(
        RetrainRequest(trigger=RetrainTrigger.SCHEDULE, model_name=MODEL),
        guarded,
        now=T0 + timedelta(minutes=1),
        rollout_active=False,
        new_rows=500,
        run_id="nightly",
        quality_incident=incident,
    )
    assert refused.outcome is GuardOutcome.QUALITY_HOLD and not refused.proceed
    assert retrain_runs(guarded, MODEL) == ()
    assert [a.key for a in pending_alarms(guarded, MODEL)] == ["event:m1", "run:nightly"]
    # The pipe is fixed: the first retraining that proceeds takes both over.
    fixed = proceed_later(guarded)
    assert fixed.proceed and fixed.takes_over == ("event:m1", "run:nightly")


def test_an_overdue_alarm_is_the_oldest_waiting_one(guarded: Settings) -> None:
    assert oldest_waiting_alarm(guarded, MODEL) is None
    hold_alarm(alarm("m1"), guarded, now=T0, rollout_active=True)
    hold_alarm(alarm("m2"), guarded, now=T0 + timedelta(hours=1), rollout_active=True)
    oldest = oldest_waiting_alarm(guarded, MODEL)
    assert oldest is not None and oldest.key == "event:m1"
    limit = guarded.retraining.max_alarm_wait_s
    assert overdue_reason(oldest, T0 + timedelta(seconds=limit), limit) is None
    late = overdue_reason(oldest, T0 + timedelta(hours=30), limit)
    assert late is not None and "waited 30.0 h" in late and "canary rollout" in late


OLD_SCHEMA = (
    """CREATE TABLE retraining_alarms (key VARCHAR(200) PRIMARY KEY,
    model_name VARCHAR(200) NOT NULL, trigger VARCHAR(32) NOT NULL,
    received_at TIMESTAMP NOT NULL, onset TIMESTAMP, drift_share FLOAT,
    drifted_features JSON NOT NULL, reason TEXT NOT NULL, outcome VARCHAR(32) NOT NULL,
    detail TEXT NOT NULL, new_rows INTEGER, window_start TIMESTAMP, window_end TIMESTAMP,
    run_id VARCHAR(64), merged_into VARCHAR(200), resolved_by VARCHAR(200),
    resolved_at TIMESTAMP)""",
    """CREATE TABLE retraining_runs (key VARCHAR(200) PRIMARY KEY,
    model_name VARCHAR(200) NOT NULL, started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP, window_start TIMESTAMP, window_end TIMESTAMP,
    data_end TIMESTAMP, rows INTEGER, batch_sha256 VARCHAR(64), status VARCHAR(32) NOT NULL,
    detail TEXT NOT NULL, run_id VARCHAR(64))""",
    """INSERT INTO retraining_runs (key, model_name, started_at, status, detail, run_id)
    VALUES ('event:old', 'card_fraud', '2026-03-01 12:00:00', 'running', 'old', 'r0')""",
)


def check_an_old_ledger_gains_the_new_columns(settings: Settings) -> None:
    engine = create_engine(ledger_url(settings))
    with engine.begin() as conn:
        for statement in OLD_SCHEMA:
            conn.execute(text(statement))
    engine.dispose()
    [old] = retrain_runs(settings, MODEL)
    assert old.key == "event:old" and old.heartbeat_at is None and old.last_seen == T0
    # The columns exist now: heartbeats and held alarms are recorded.
    assert beat(settings, "event:old", now=T0 + timedelta(minutes=1))
    held = hold_alarm(alarm("m1"), settings, now=T0 + timedelta(minutes=2), rollout_active=False)
    assert held is not None and held.held_by == "event:old"
    assert retrain_runs(settings, MODEL)[0].heartbeat_at == T0 + timedelta(minutes=1)
    assert recent_alarms(settings, MODEL)[0].held_by == "event:old"


def test_an_old_ledger_gains_the_new_columns(guarded: Settings) -> None:
    guarded.home.mkdir(parents=True, exist_ok=True)
    check_an_old_ledger_gains_the_new_columns(guarded)


@pytest.mark.integration
def test_stale_work_expires_on_postgresql(
    postgres_url: str, tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    production = production_settings(postgres_url, tmp_path)
    check_stale_run_expires_and_its_alarms_wait_again(production, events)
    assert not (tmp_path / "retraining.db").exists()


@pytest.mark.integration
def test_an_old_ledger_gains_the_new_columns_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    check_an_old_ledger_gains_the_new_columns(production_settings(postgres_url, tmp_path))


# --------------------------------------------------------------------------- the window


def test_the_window_reaches_back_to_the_drift_onset() -> None:
    plain = retraining_window(T0, 7)
    assert (plain.start, plain.end, plain.reaches_onset) == (T0 - timedelta(days=7), T0, False)
    onset = T0 - timedelta(days=10)
    extended = retraining_window(T0, 7, onset=onset)
    assert extended.start == onset and extended.reaches_onset
    assert "extended back to the drift onset" in extended.describe()
    # A recent onset is inside the default window already: nothing is cut off.
    assert retraining_window(T0, 7, onset=T0 - timedelta(days=1)).start == plain.start
    chosen = retraining_window(T0, 7, start=T0 - timedelta(days=2), onset=T0 - timedelta(days=3))
    assert chosen.start == T0 - timedelta(days=3)
    with pytest.raises(ConfigError, match="starts at"):
        retraining_window(T0, 7, start=T0 + timedelta(hours=1))


def test_collect_window_gathers_landing_rows_into_one_immutable_batch(
    settings: Settings, tmp_path: Path
) -> None:
    landing = settings.landing_dir / SPEC.name
    old = generate(Scenario.BASELINE, 300, T0 - timedelta(days=20), days=5)
    before = generate(Scenario.BASELINE, 300, T0 - timedelta(days=9), days=5)
    drifted = generate(Scenario.COVARIATE_SHIFT, 200, T0 - timedelta(days=4), days=4)
    write_batch(old, landing / "2026-02-09.parquet")
    write_batch(before, landing / "2026-02-20.parquet")
    write_batch(drifted, landing / "2026-02-25.parquet")
    # The same rows delivered again (a resend) and a writer's unfinished file.
    write_batch(drifted.head(50), landing / "2026-02-26-resend.parquet")
    (landing / ".2026-02-27.parquet.partial").write_bytes(b"half a file")
    window = retraining_window(T0, 7, onset=T0 - timedelta(days=6))
    out = tmp_path / "windows"

    batch = collect_window(settings, SPEC, window, out, since=T0 - timedelta(days=4))

    assert batch.path is not None and batch.path.name == f"{batch.sha256}.parquet"
    rows = pd.read_parquet(batch.path)
    stamps = pd.to_datetime(rows[SPEC.timestamp], utc=True)
    expected = pd.concat([before, drifted])
    expected_stamps = pd.to_datetime(expected[SPEC.timestamp], utc=True)
    inside = expected[(expected_stamps >= window.start) & (expected_stamps <= window.end)]
    assert batch.rows == len(rows) == len(inside)
    assert not rows.duplicated(list(SPEC.key_columns)).any()
    assert stamps.is_monotonic_increasing and stamps.min() >= window.start
    assert batch.new_rows == len(drifted) and batch.data_end == stamps.max()
    # Same landing rows, same bytes, same file: nothing new is written.
    again = collect_window(settings, SPEC, window, out, since=T0 - timedelta(days=4))
    assert again.path == batch.path and sorted(p.name for p in out.iterdir()) == [batch.path.name]


def test_an_empty_window_writes_nothing(settings: Settings, tmp_path: Path) -> None:
    batch = collect_window(settings, SPEC, retraining_window(T0, 7), tmp_path / "windows")
    assert (batch.path, batch.rows, batch.new_rows) == (None, 0, 0)
    assert not (tmp_path / "windows").exists()


def test_new_rows_count_after_the_drift_onset_and_what_the_champion_saw() -> None:
    trained, onset = T0 - timedelta(days=3), T0 - timedelta(hours=2)
    assert new_rows_since(trained, onset) == onset
    assert new_rows_since(trained, None) == trained
    assert new_rows_since(onset, trained) == onset  # the champion saw past an old onset
    assert new_rows_since(None, onset.replace(tzinfo=None)) == onset
    assert new_rows_since(None, None) is None
