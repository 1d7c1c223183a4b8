"""The retraining stage's core, without Prefect: the plan (window, guardrails, batch),
expiring retrainings whose process is gone, and whether a running flow run still trains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops.dataset_spec import load_spec
from mlops.errors import ConfigError
from mlops.retraining import (
    GuardOutcome,
    RetrainRequest,
    RunStatus,
    beat,
    check_retrain,
    expire_stale_runs,
    expiry_payload,
    hold_alarm,
    pending_alarms,
    record_outcome,
    retrain_runs,
    retraining_alive,
    window_batch_dir,
)
from mlops.retraining.planning import plan_retraining, retraining_request
from mlops.settings import RetrainingSettings, Settings
from mlops.synthetic import Scenario, generate, write_batch

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPEC = load_spec(Path("datasets/card_fraud.yaml"))
MODEL = SPEC.name


@pytest.fixture
def guarded(settings: Settings) -> Settings:
    """One hour of cooldown, ten minutes of debounce, 100 new rows at least, 7-day window;
    heartbeats silent for 15 minutes mean a dead run."""
    rules = RetrainingSettings(
        cooldown_s=3600,
        debounce_s=600,
        min_new_rows=100,
        window_days=7,
        heartbeat_timeout_s=900,
        max_run_s=6 * 3600,
    )
    return settings.model_copy(update={"retraining": rules})


def alarm(event: str, **fields: object) -> RetrainRequest:
    return RetrainRequest.model_validate({"event_id": event, "model_name": MODEL, **fields})


def land(settings: Settings, name: str, frame: pd.DataFrame) -> None:
    write_batch(frame, settings.landing_dir / MODEL / name)


def test_a_request_trains_the_model_of_its_dataset_spec() -> None:
    unnamed = retraining_request(SPEC, RetrainRequest(event_id="e1"))
    assert unnamed.model_name == MODEL and unnamed.event_id == "e1"
    assert retraining_request(SPEC, alarm("e2")).model_name == MODEL
    with pytest.raises(ConfigError, match="trains a model of its own name"):
        retraining_request(SPEC, RetrainRequest(event_id="e3", model_name="other"))


def test_a_plan_that_proceeds_writes_the_window_batch_and_opens_the_run(
    guarded: Settings,
) -> None:
    before = generate(Scenario.BASELINE, 300, T0 - timedelta(days=6), days=3, seed=1)
    old = generate(Scenario.BASELINE, 200, T0 - timedelta(days=30), days=3, seed=2)
    land(guarded, "2026-02-23.parquet", before)
    land(guarded, "2026-01-30.parquet", old)  # outside the 7-day window

    plan = plan_retraining(
        guarded, SPEC, RetrainRequest(event_id="e1"), now=T0, rollout_active=False, run_id="r1"
    )

    decision = plan.decision
    assert decision.proceed and decision.outcome is GuardOutcome.PROCEED
    assert decision.model_name == MODEL and decision.new_rows == plan.rows == len(before)
    assert (plan.window.start, plan.window.end) == (T0 - timedelta(days=7), T0)
    assert plan.new_rows_since is None  # no registered retraining, no onset: every row is new
    assert plan.batch is not None and plan.batch_sha256 is not None
    batch = Path(plan.batch)
    assert batch.parent == window_batch_dir(guarded, MODEL)
    assert batch.name == f"{plan.batch_sha256}.parquet"
    assert len(pd.read_parquet(batch)) == len(before)
    [run] = retrain_runs(guarded, MODEL)
    assert (run.key, run.status, run.rows, run.run_id) == (
        "event:e1",
        RunStatus.RUNNING.value,
        len(before),
        "r1",
    )
    # A retry of the same flow run gets the same decision and batch back, opens no more.
    again = plan_retraining(
        guarded,
        SPEC,
        RetrainRequest(event_id="e1"),
        now=T0 + timedelta(seconds=30),
        rollout_active=False,
        run_id="r1",
    )
    assert again.decision.proceed and again.decision.key == decision.key
    assert again.batch == plan.batch and len(retrain_runs(guarded, MODEL)) == 1


def test_only_rows_after_the_drift_onset_count_as_new(guarded: Settings) -> None:
    onset = T0 - timedelta(days=1)
    land(guarded, "a.parquet", generate(Scenario.BASELINE, 400, T0 - timedelta(days=5), days=3))
    land(guarded, "b.parquet", generate(Scenario.COVARIATE_SHIFT, 60, onset, days=0.9, seed=3))

    plan = plan_retraining(
        guarded, SPEC, alarm("d1", onset=onset.isoformat()), now=T0, rollout_active=False
    )

    assert plan.rows == 460 and plan.decision.new_rows == 60
    assert plan.new_rows_since == onset
    assert plan.decision.outcome is GuardOutcome.INSUFFICIENT_DATA and not plan.decision.proceed
    assert plan.batch is None and retrain_runs(guarded, MODEL) == ()
    assert [a.key for a in pending_alarms(guarded, MODEL)] == ["event:d1"]


def test_the_window_reaches_back_to_a_pending_alarms_onset(guarded: Settings) -> None:
    onset = T0 - timedelta(days=10)
    deferred = hold_alarm(
        alarm("d0", onset=onset.isoformat()),
        guarded,
        now=T0 - timedelta(hours=1),
        rollout_active=True,
    )
    assert deferred is not None and deferred.outcome is GuardOutcome.DEFERRED
    land(guarded, "old.parquet", generate(Scenario.BASELINE, 200, onset, days=2, seed=4))

    plan = plan_retraining(
        guarded, SPEC, RetrainRequest(event_id="e1"), now=T0, rollout_active=False, run_id="r1"
    )

    assert plan.window.start == onset and plan.window.reaches_onset
    assert plan.rows == 200 and plan.decision.proceed
    assert plan.decision.takes_over == ("event:d0",)


def test_a_rollout_or_a_quality_incident_holds_the_plan(guarded: Settings) -> None:
    land(guarded, "a.parquet", generate(Scenario.BASELINE, 300, T0 - timedelta(days=3), days=2))

    during_rollout = plan_retraining(
        guarded, SPEC, RetrainRequest(event_id="e1"), now=T0, rollout_active=True
    )
    assert during_rollout.decision.outcome is GuardOutcome.DEFERRED
    incident = plan_retraining(
        guarded,
        SPEC,
        RetrainRequest(event_id="e2"),
        now=T0 + timedelta(minutes=20),
        rollout_active=False,
        quality_incident="feature amount is all null since 11:00",
    )
    assert incident.decision.outcome is GuardOutcome.QUALITY_HOLD
    assert "all null" in incident.decision.reason
    assert (during_rollout.batch, incident.batch) == (None, None)
    assert retrain_runs(guarded, MODEL) == ()


def start_run(settings: Settings, event: str, at: datetime, run_id: str) -> None:
    decision = check_retrain(
        alarm(event), settings, now=at, rollout_active=False, new_rows=500, run_id=run_id
    )
    assert decision.proceed


def test_a_silent_run_expires_and_reopens_its_alarm(guarded: Settings) -> None:
    start_run(guarded, "e1", T0, "r1")
    asked: list[str] = []

    def gone(run_id: str) -> str | None:
        asked.append(run_id)
        return None

    assert (
        expire_stale_runs(guarded, MODEL, now=T0 + timedelta(minutes=14), flow_run_gone=gone) == ()
    )
    assert asked == ["r1"]  # a beating run: the orchestrator is asked about its flow run
    later = T0 + timedelta(minutes=15, seconds=1)
    [expired] = expire_stale_runs(guarded, MODEL, now=later, flow_run_gone=gone)
    assert asked == ["r1"]  # a silent run needs no second opinion
    assert expired.run.key == "event:e1" and "heartbeat for 15 min" in expired.reason
    assert expired.reopened == ("event:e1",)
    assert expiry_payload(expired) == {
        "key": "event:e1",
        "run_id": "r1",
        "reason": expired.reason,
        "started_at": T0.isoformat(),
        "reopened": ["event:e1"],
    }
    [run] = retrain_runs(guarded, MODEL)
    assert run.status == RunStatus.FAILED.value and run.finished_at == later
    # Already expired: nothing to do, nobody asked.
    assert expire_stale_runs(guarded, MODEL, now=later, flow_run_gone=gone) == ()


def test_a_beating_run_whose_flow_run_ended_expires(guarded: Settings) -> None:
    start_run(guarded, "e1", T0, "r1")
    now = T0 + timedelta(minutes=5)
    assert beat(guarded, "event:e1", now=now)

    [expired] = expire_stale_runs(
        guarded, MODEL, now=now, flow_run_gone=lambda run_id: f"its flow run {run_id} crashed"
    )

    assert expired.reason == "its flow run r1 crashed"
    assert retrain_runs(guarded, MODEL)[0].detail == "expired: its flow run r1 crashed"


def test_a_finished_run_is_never_expired(guarded: Settings) -> None:
    start_run(guarded, "e1", T0, "r1")
    record_outcome(guarded, "event:e1", "registered", now=T0 + timedelta(minutes=5))
    assert (
        expire_stale_runs(
            guarded, MODEL, now=T0 + timedelta(days=1), flow_run_gone=lambda _: "deleted"
        )
        == ()
    )
    assert retrain_runs(guarded, MODEL)[0].status == "registered"


def test_a_running_flow_run_trains_while_its_ledger_row_is_alive(guarded: Settings) -> None:
    fresh = T0 + timedelta(minutes=10)
    # Just started (within the heartbeat timeout): deciding takes seconds, it is alive.
    assert retraining_alive(guarded, "r1", T0, fresh)
    assert retraining_alive(guarded, "r1", None, fresh)
    # Long running with no ledger row: the worker died before it decided.
    late = T0 + timedelta(hours=1)
    assert not retraining_alive(guarded, "r1", T0, late)
    start_run(guarded, "e1", T0, "r1")
    assert beat(guarded, "event:e1", now=late - timedelta(minutes=1))
    assert retraining_alive(guarded, "r1", T0, late)
    # Its heartbeat stopped: the worker is gone.
    assert not retraining_alive(guarded, "r1", T0, late + timedelta(minutes=20))
