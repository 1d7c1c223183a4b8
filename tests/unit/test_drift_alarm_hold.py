"""The drift monitor's alarm, without Prefect: the retraining it asks for, and whether the
retraining ledger holds it instead of raising it (with how long alarms have waited)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlops.drift import ColumnDrift, ColumnKind, DriftMethod, DriftReport, DriftStatus
from mlops.monitoring import Champion, drift_reason, drift_request, hold_drift_alarm
from mlops.retraining import GuardOutcome, RetrainTrigger, oldest_waiting_alarm, recent_alarms
from mlops.settings import RetrainingSettings, Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHAMPION = Champion(
    name="card_fraud",
    version="3",
    run_id="run-3",
    reference_id="card_fraud-v3",
    cache_dir="/nowhere",
)


def column(name: str, drifted: bool) -> ColumnDrift:
    return ColumnDrift(
        column=name,
        kind=ColumnKind.NUMERIC,
        status=DriftStatus.EVALUATED,
        method=DriftMethod.KS,
        threshold=0.05,
        score=0.001 if drifted else 0.4,
        drifted=drifted,
        reference_rows=1000,
        current_rows=400,
    )


REPORT = DriftReport(
    reference_id=CHAMPION.reference_id,
    status=DriftStatus.EVALUATED,
    current_rows=400,
    drift_share=0.5,
    columns=(column("amount", True), column("hour", True), column("distance", False)),
    n_drifted=2,
    share_drifted=2 / 3,
    dataset_drift=True,
)


@pytest.fixture
def ledger(settings: Settings) -> Settings:
    """Ten minutes of debounce; a pending alarm is overdue after an hour."""
    rules = RetrainingSettings(cooldown_s=3600, debounce_s=600, max_alarm_wait_s=3600)
    return settings.model_copy(update={"retraining": rules})


def test_a_drift_alarm_asks_for_a_retraining_from_the_window_start() -> None:
    start = T0 - timedelta(hours=1)
    request = drift_request(CHAMPION, REPORT, start)
    assert request.trigger is RetrainTrigger.DRIFT and request.model_name == "card_fraud"
    assert (request.onset, request.window_start) == (start, start)
    assert request.drifted_features == ("amount", "hour")
    assert request.drift_share == pytest.approx(2 / 3)
    assert request.reason == drift_reason(REPORT) and "2 of 3 features drifted" in request.reason


def test_an_alarm_nothing_holds_is_raised_and_not_recorded(ledger: Settings) -> None:
    held = hold_drift_alarm(
        ledger, CHAMPION, REPORT, T0 - timedelta(hours=1), now=T0, rollout_active=False
    )
    assert held is None
    assert recent_alarms(ledger, "card_fraud") == ()


def test_an_alarm_while_a_retraining_is_queued_is_suppressed(ledger: Settings) -> None:
    held = hold_drift_alarm(
        ledger,
        CHAMPION,
        REPORT,
        T0 - timedelta(hours=1),
        now=T0,
        rollout_active=False,
        retraining_queued="tame-owl",
        run_id="m1",
    )
    assert held is not None
    decision = held.decision
    assert decision.outcome is GuardOutcome.SUPPRESSED and "tame-owl" in decision.reason
    assert decision.key == "run:m1"
    # A suppressed alarm does not wait: the queued run decides on the drift.
    assert held.oldest is None and held.waiting_since == decision.decided_at
    assert held.held_payload() == {
        "version": "3",
        "reason": decision.reason,
        "outcome": "suppressed",
        "key": "run:m1",
        "waiting_since": decision.decided_at.isoformat(),
    }
    assert held.overdue is None and held.overdue_payload() is None


def test_alarms_deferred_by_a_rollout_wait_and_become_overdue(ledger: Settings) -> None:
    first = hold_drift_alarm(ledger, CHAMPION, REPORT, T0, now=T0, rollout_active=True, run_id="m1")
    assert first is not None and first.decision.outcome is GuardOutcome.DEFERRED
    assert first.oldest is not None and first.oldest.key == "run:m1"
    assert first.waiting_since == T0 and first.overdue_payload() is None

    later = T0 + timedelta(hours=2)
    second = hold_drift_alarm(
        ledger, CHAMPION, REPORT, later, now=later, rollout_active=True, run_id="m2"
    )

    assert second is not None and second.decision.outcome is GuardOutcome.DEFERRED
    assert second.held_payload()["waiting_since"] == T0.isoformat()  # the oldest's arrival
    assert second.overdue is not None and "run:m1" in second.overdue
    assert "waited 2.0 h" in second.overdue
    assert second.overdue_payload() == {
        "version": "3",
        "reason": second.overdue,
        "oldest_key": "run:m1",
        "waiting_s": 7200.0,
    }
    assert oldest_waiting_alarm(ledger, "card_fraud") == second.oldest
