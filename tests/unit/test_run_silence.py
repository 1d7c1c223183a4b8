"""The silent-run sweep's judgement: a run is dead only after its limit of silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops.runs import RunPhase, RunSighting, silence

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LIMITS = {"crashed_after_s": 90.0, "pending_after_s": 900.0}


def _run(phase: RunPhase, since_s: float, beat_s: float | None = None) -> RunSighting:
    beat = None if beat_s is None else NOW - timedelta(seconds=beat_s)
    return RunSighting("id", "run", phase, NOW - timedelta(seconds=since_s), beat)


def test_a_running_run_that_beats_lives_however_long_it_runs() -> None:
    assert silence(_run(RunPhase.RUNNING, since_s=7200, beat_s=30), NOW, **LIMITS) is None


def test_a_running_run_is_dead_when_its_heartbeats_stop() -> None:
    reason = silence(_run(RunPhase.RUNNING, since_s=600, beat_s=91), NOW, **LIMITS)
    assert reason is not None and "no heartbeat for 91 s" in reason and "heartbeat at" in reason


def test_a_run_killed_before_its_first_beat_is_judged_from_its_start() -> None:
    assert silence(_run(RunPhase.RUNNING, since_s=60), NOW, **LIMITS) is None
    reason = silence(_run(RunPhase.RUNNING, since_s=120), NOW, **LIMITS)
    assert reason is not None and "start at" in reason


def test_a_heartbeat_older_than_the_state_counts_from_the_state() -> None:
    # Beats of an earlier attempt do not condemn a run that just turned Running again.
    assert silence(_run(RunPhase.RUNNING, since_s=10, beat_s=3600), NOW, **LIMITS) is None


def test_a_pending_run_gets_its_own_longer_limit() -> None:
    assert silence(_run(RunPhase.PENDING, since_s=600), NOW, **LIMITS) is None
    reason = silence(_run(RunPhase.PENDING, since_s=901), NOW, **LIMITS)
    assert reason is not None and reason.startswith("Pending for 901 s")
