"""The rollout policy on evidence computed from prediction-log frames, and its effects.

The registry is an in-memory stand-in with the few `MlflowClient` methods the rollout
uses (the real registry is exercised in `tests/integration/test_rollout_registry.py`).
The last tests run whole rollouts: requests routed by `route`, logged, labelled a
tick later, reduced to evidence, decided and applied, tick after tick.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from mlops.events import MODEL_PROMOTED, MODEL_ROLLED_BACK, ROLLOUT_EXPIRED
from mlops.registry.client import CHALLENGER, CHAMPION
from mlops.rollout.actions import (
    ROLLED_BACK_REASON_TAG,
    apply_decision,
    promote_now,
    rollback_now,
    try_apply_decision,
)
from mlops.rollout.audit import AuditTrail
from mlops.rollout.evidence import MIN_LATENCY_SAMPLES, compute_evidence
from mlops.rollout.lock import RolloutLock
from mlops.rollout.policy import (
    NO_EVIDENCE,
    RolloutAction,
    RolloutDecision,
    decide,
    decision_events,
    event_payload,
)
from mlops.rollout.state import (
    STATE_TAG,
    RolloutError,
    RolloutState,
    RolloutStatus,
    StaleRolloutError,
    Variant,
    pause_rollout,
    read_rollout,
    resume_rollout,
    start_rollout,
    write_rollout,
)
from mlops.rollout.stepper import step_rollout
from mlops.settings import RolloutSettings, get_settings
from serving.routing import route

NAME = "card_fraud"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = RolloutSettings(
    min_predictions=200, min_stage_seconds=600, min_labels=150, alpha=0.05, max_error_rate=0.01
)


@pytest.fixture(autouse=True)
def _rollout_lock_in_tmp(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """State changes take the rollout lock of the settings: keep its file in tmp."""
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# --- an in-memory registry --------------------------------------------------------------


@dataclass
class FakeRegistry:
    """The `MlflowClient` methods the rollout calls, on dictionaries."""

    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def get_registered_model(self, name: str) -> Any:
        self._known(name)
        return SimpleNamespace(name=name, tags=dict(self.tags), aliases=dict(self.aliases))

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._known(name)
        self.tags[key] = value

    def get_model_version(self, name: str, version: str) -> Any:
        self._known(name)
        if version not in self.versions:
            raise MlflowException(f"no v{version}", error_code=RESOURCE_DOES_NOT_EXIST)
        return SimpleNamespace(name=name, version=version, tags=dict(self.versions[version]))

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.versions[version][key] = value

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        if alias not in self.aliases:
            raise MlflowException(f"no alias {alias}", error_code=INVALID_PARAMETER_VALUE)
        return self.get_model_version(name, self.aliases[alias])

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.aliases.pop(alias)

    def _known(self, name: str) -> None:
        if name != NAME:
            raise MlflowException(f"no model {name}", error_code=RESOURCE_DOES_NOT_EXIST)


def registry() -> tuple[FakeRegistry, MlflowClient]:
    fake = FakeRegistry(versions={"1": {}, "2": {}}, aliases={CHAMPION: "1", CHALLENGER: "2"})
    return fake, cast(MlflowClient, fake)


def state_at(stage: int, **fields: Any) -> RolloutState:
    share = SETTINGS.stages[stage]
    values: dict[str, Any] = {
        "model_name": NAME,
        "challenger_version": "2",
        "status": RolloutStatus.RUNNING,
        "stage": stage,
        "share": share,
        "shadow": share == 0.0,
        "stage_started_at": T0,
        "updated_at": T0,
    }
    return RolloutState(**(values | fields))


# --- prediction-log frames ------------------------------------------------------------


@dataclass
class Log:
    """Rows as the prediction log stores them, and labels as feedback stores them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        variant: Variant,
        score: float | None,
        *,
        ts: datetime,
        prediction_id: str | None = None,
        shadow: bool = False,
        pinned: bool = False,
        latency_ms: float = 5.0,
        error: str | None = None,
        label: int | None = None,
        entity: str = "card-1",
    ) -> str:
        pid = prediction_id or uuid.uuid4().hex
        if shadow:
            pid = f"{pid}-shadow"  # as the service names a mirrored row
        self.rows.append(
            {
                "prediction_id": pid,
                "request_id": pid[:8],
                "model_name": NAME,
                "model_version": "2" if variant is Variant.CHALLENGER else "1",
                "variant": variant.value,
                "shadow": shadow,
                "pinned": pinned,
                "entity": entity,
                "score": None if error else score,
                "prediction": None if error or score is None else int(score >= 0.5),
                "latency_ms": latency_ms,
                "status": "error" if error else "ok",
                "error": error,
                "ts": ts,
            }
        )
        if label is not None:
            self.labels.append({"prediction_id": pid, "label": str(label), "ts": ts})
        return pid

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        columns = ["prediction_id", "label", "ts"]
        return pd.DataFrame(self.rows), pd.DataFrame(self.labels, columns=columns)


def shadow_pairs(
    log: Log,
    n: int,
    *,
    champion: float = 0.1,
    challenger: float = 0.1,
    challenger_on_positives: float = 0.6,
    positive_every: int = 10,
    labelled: bool = True,
    start: datetime = T0,
    challenger_latency: float = 5.0,
    champion_latency: float = 5.0,
) -> None:
    """`n` mirrored requests: a champion answer and a challenger shadow row each.

    The champion scores positives 0.6 and negatives `champion`; the challenger scores
    them `challenger_on_positives` and `challenger` (by default the same as the champion).
    """
    for i in range(n):
        ts = start + timedelta(seconds=i)
        label = int(i % positive_every == 0) if labelled else None
        score_champ = 0.6 if label else champion
        pid = log.add(
            Variant.CHAMPION, score_champ, ts=ts, label=label, latency_ms=champion_latency
        )
        log.add(
            Variant.CHALLENGER,
            challenger_on_positives if label else challenger,
            ts=ts,
            prediction_id=pid,
            shadow=True,
            latency_ms=challenger_latency,
        )


def evidence_of(log: Log, state: RolloutState, now: datetime) -> Any:
    predictions, feedback = log.frames()
    return compute_evidence(state, predictions, feedback, now)


# --- guardrails ------------------------------------------------------------------------


def test_a_failing_challenger_is_rolled_back_at_its_first_error() -> None:
    log, state = Log(), state_at(0)
    pid = log.add(Variant.CHAMPION, 0.1, ts=T0)
    log.add(Variant.CHALLENGER, None, ts=T0, prediction_id=pid, shadow=True, error="NaN output")
    made = decide(state, evidence_of(log, state, T0), SETTINGS, T0)
    assert made.action is RolloutAction.ROLLBACK
    assert made.reason.startswith("guardrail: challenger error rate 1/1")
    assert made.evidence["challenger_errors"] == 1


def test_an_occasional_error_below_the_limit_does_not_roll_back() -> None:
    log, state = Log(), state_at(0)
    shadow_pairs(log, 300)
    log.add(Variant.CHALLENGER, None, ts=T0, shadow=True, error="timeout")  # 1 in 301
    made = decide(state, evidence_of(log, state, T0 + timedelta(hours=1)), SETTINGS, T0)
    assert made.action is not RolloutAction.ROLLBACK


def test_a_sustained_error_rate_above_the_limit_rolls_back() -> None:
    log, state = Log(), state_at(1)
    for i in range(400):
        error = "boom" if i % 20 == 0 else None  # 5 % against a 1 % limit
        log.add(Variant.CHALLENGER, 0.1, ts=T0 + timedelta(seconds=i), error=error)
        log.add(Variant.CHAMPION, 0.1, ts=T0 + timedelta(seconds=i))
    made = decide(state, evidence_of(log, state, T0), SETTINGS, T0)
    assert made.action is RolloutAction.ROLLBACK
    assert "error rate 20/400" in made.reason


def test_a_slow_challenger_is_rolled_back_on_p99_latency() -> None:
    log, state = Log(), state_at(0)
    shadow_pairs(log, MIN_LATENCY_SAMPLES, labelled=False, challenger_latency=15.0)
    made = decide(state, evidence_of(log, state, T0), SETTINGS, T0)
    assert made.action is RolloutAction.ROLLBACK
    assert made.reason.startswith("guardrail: challenger p99 latency 15.0 ms")
    # constant latencies: every order statistic, so both bounds, equal the p99
    assert (
        "(95% lower bound 15.0 ms, 300 latencies) vs the champion's 5.0 ms "
        "(95% upper bound 5.0 ms, 300 latencies): at least 3.00x and +10.0 ms slower "
        "(limit 2.00x and +5 ms)"
    ) in made.reason
    assert made.evidence["challenger_p99_lower_ms"] == 15.0
    assert made.evidence["champion_p99_upper_ms"] == 5.0
    assert made.evidence["champion_latency_samples"] == MIN_LATENCY_SAMPLES


def test_a_few_milliseconds_of_p99_noise_do_not_roll_back() -> None:
    """Three times as slow, but 4 ms more: what a busy host does to a 2 ms p99 by chance."""
    log, state = Log(), state_at(0)
    shadow_pairs(
        log, MIN_LATENCY_SAMPLES, labelled=False, challenger_latency=6.0, champion_latency=2.0
    )
    evidence = evidence_of(log, state, T0)
    assert evidence.p99_latency_ratio == pytest.approx(3.0)
    assert decide(state, evidence, SETTINGS, T0).action is RolloutAction.HOLD


def test_latency_needs_enough_samples_for_a_p99() -> None:
    log, state = Log(), state_at(0)
    shadow_pairs(log, MIN_LATENCY_SAMPLES - 1, labelled=False, challenger_latency=15.0)
    evidence = evidence_of(log, state, T0)
    assert evidence.p99_latency_ratio is None
    assert decide(state, evidence, SETTINGS, T0).action is RolloutAction.HOLD


def test_an_empty_log_holds() -> None:
    state = state_at(0)
    made = decide(state, compute_evidence(state, pd.DataFrame(), pd.DataFrame(), T0), SETTINGS, T0)
    assert (made.action, made.reason) == (
        RolloutAction.HOLD,
        "waiting for predictions 0/200, time 0/600 s, labels 0/150",
    )
    assert made.evidence["challenger_error_rate"] is None


# --- stage progress ---------------------------------------------------------------------


def test_a_stage_advances_only_with_predictions_time_and_labels() -> None:
    state = state_at(0)
    enough = T0 + timedelta(seconds=SETTINGS.min_stage_seconds)

    log = Log()
    shadow_pairs(log, 199)
    held = decide(state, evidence_of(log, state, enough), SETTINGS, enough)
    assert held.action is RolloutAction.HOLD
    assert held.reason == "waiting for predictions 199/200"

    log = Log()
    shadow_pairs(log, 200, labelled=False)
    early = enough - timedelta(seconds=1)
    held = decide(state, evidence_of(log, state, early), SETTINGS, early)
    assert held.reason == "waiting for time 599/600 s, labels 0/150"

    log = Log()
    shadow_pairs(log, 200)
    made = decide(state, evidence_of(log, state, enough), SETTINGS, enough)
    assert made.action is RolloutAction.ADVANCE
    assert (made.from_stage, made.to_stage, made.to_share) == (0, 1, 0.05)
    assert made.reason == "stage 0 complete: shadow -> 5%"
    assert made.evidence["test_decision"] == "continue"


def test_predictions_of_an_earlier_stage_do_not_count() -> None:
    log = Log()
    shadow_pairs(log, 300)  # during stage 0
    state = state_at(1, stage_started_at=T0 + timedelta(hours=1))
    now = T0 + timedelta(hours=2)
    made = decide(state, evidence_of(log, state, now), SETTINGS, now)
    assert made.action is RolloutAction.HOLD
    assert made.reason == "waiting for predictions 0/200"


def test_paused_and_finished_rollouts_hold() -> None:
    log = Log()
    shadow_pairs(log, 300)
    for status in (RolloutStatus.PAUSED, RolloutStatus.PROMOTED, RolloutStatus.ROLLED_BACK):
        state = state_at(0, status=status)
        made = decide(state, evidence_of(log, state, T0), SETTINGS, T0 + timedelta(days=1))
        assert (made.action, made.reason) == (RolloutAction.HOLD, f"rollout is {status}")


# --- the sequential test in the policy --------------------------------------------------


def test_clear_evidence_promotes_early() -> None:
    log, state = Log(), state_at(0)
    # the champion scores 0.1 on negatives, the challenger a better-calibrated 0.02
    shadow_pairs(log, 200, challenger=0.02, positive_every=1_000)
    made = decide(state, evidence_of(log, state, T0), SETTINGS, T0)
    assert made.action is RolloutAction.PROMOTE
    assert made.reason.startswith("challenger better: log loss lower by")
    assert isinstance(made.evidence["p_better"], float) and made.evidence["p_better"] <= 0.05


def test_clear_evidence_of_a_worse_challenger_rolls_back() -> None:
    log, state = Log(), state_at(0)
    shadow_pairs(log, 200, challenger=0.5, challenger_on_positives=0.5)  # random weights
    made = decide(state, evidence_of(log, state, T0), SETTINGS, T0)
    assert made.action is RolloutAction.ROLLBACK
    assert made.reason.startswith("challenger worse")


def test_the_test_waits_for_min_labels() -> None:
    log, state = Log(), state_at(0)
    shadow_pairs(log, 149, challenger=0.5, challenger_on_positives=0.5)
    made = decide(state, evidence_of(log, state, T0), SETTINGS, T0)
    assert made.action is RolloutAction.HOLD
    assert made.evidence["test_decision"] == "continue"


def test_the_last_stage_without_a_verdict_rolls_back() -> None:
    log, state = Log(), state_at(4)
    shadow_pairs(log, 300)  # identical scores: no difference to find
    for i in range(300):
        log.add(Variant.CHALLENGER, 0.1, ts=T0 + timedelta(seconds=i), label=0)
    now = T0 + timedelta(hours=1)
    made = decide(state, evidence_of(log, state, now), SETTINGS, now)
    assert made.action is RolloutAction.ROLLBACK
    assert made.reason.startswith(f"{NO_EVIDENCE} at 100% of traffic")
    assert made.to_share == 0.0


def test_evidence_pairs_shadow_rows_and_keeps_the_rest_unpaired() -> None:
    log, state = Log(), state_at(1)
    shadow_pairs(log, 50)
    for i in range(40):
        log.add(Variant.CHALLENGER, 0.2, ts=T0 + timedelta(minutes=5, seconds=i), label=0)
    for i in range(60):
        log.add(Variant.CHAMPION, 0.2, ts=T0 + timedelta(minutes=5, seconds=i), label=1)
    log.add(Variant.CHAMPION, 0.2, ts=T0 - timedelta(days=1), label=1)  # before the rollout
    losses = evidence_of(log, state, T0).losses
    assert (losses.paired.n, losses.challenger.n, losses.champion.n) == (50, 40, 60)
    assert losses.champion.mean == pytest.approx(-np.log(0.2))


def test_rows_of_a_pinned_version_are_not_evidence() -> None:
    """A client that names the version (`/v2/models/{name}/versions/{version}/infer`)
    chose the model, not the router: however many its rows, however good or bad, the
    comparison stays the one of randomly routed traffic."""
    log, state = Log(), state_at(2)
    for i in range(400):
        ts = T0 + timedelta(seconds=i)
        log.add(Variant.CHALLENGER if i % 4 == 0 else Variant.CHAMPION, 0.3, ts=ts, label=i % 2)
    now = T0 + timedelta(hours=1)
    routed_only = evidence_of(log, state, now)

    early = T0 - timedelta(hours=1)  # would open the champion's window an hour earlier
    log.add(Variant.CHALLENGER, 0.01, ts=early, label=0, pinned=True)
    for i in range(300):
        ts = T0 + timedelta(minutes=10, seconds=i)
        log.add(Variant.CHALLENGER, 0.01, ts=ts, label=0, pinned=True, latency_ms=900.0)
        log.add(Variant.CHAMPION, 0.99, ts=ts, label=0, pinned=True, error="boom")
        log.add(Variant.CHAMPION, 0.3, ts=early, label=1, pinned=True)
    evidence = evidence_of(log, state, now)

    assert evidence.summary() == routed_only.summary()
    assert (evidence.challenger.predictions, evidence.champion.predictions) == (100, 300)
    assert evidence.champion.errors == 0 and evidence.challenger.p99_latency_ms is None
    assert decide(state, evidence, SETTINGS, now) == decide(state, routed_only, SETTINGS, now)


# --- applying decisions -------------------------------------------------------------------


def test_apply_advance_then_a_stale_repeat_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    fake, client = registry()
    state = start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    log = Log()
    shadow_pairs(log, 200)
    now = T0 + timedelta(hours=1)
    made = decide(state, evidence_of(log, state, now), SETTINGS, now)
    advanced = apply_decision(client, state, made)
    assert (advanced.stage, advanced.share, advanced.shadow) == (1, 0.05, False)
    assert advanced.stage_started_at == now
    assert read_rollout(client, NAME) == advanced
    with caplog.at_level(logging.INFO, logger="mlops.rollout.actions"):
        again = apply_decision(client, state, made)
    assert again == advanced
    assert "no longer applies" in caplog.text


def test_apply_promote_moves_the_aliases() -> None:
    fake, client = registry()
    state = start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    made = _decision(RolloutAction.PROMOTE, "better")
    promoted = apply_decision(client, state, made)
    assert promoted.status is RolloutStatus.PROMOTED
    assert fake.aliases == {CHAMPION: "2"}
    assert apply_decision(client, state, made) == promoted  # idempotent


def test_apply_rollback_clears_the_alias_and_tags_the_reason() -> None:
    fake, client = registry()
    state = start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    rolled = apply_decision(client, state, _decision(RolloutAction.ROLLBACK, "worse"))
    assert rolled.status is RolloutStatus.ROLLED_BACK
    assert fake.aliases == {CHAMPION: "1"}
    assert fake.versions["2"][ROLLED_BACK_REASON_TAG] == "worse"


def _decision(action: RolloutAction, reason: str) -> RolloutDecision:
    return RolloutDecision(
        model_name=NAME,
        challenger_version="2",
        action=action,
        reason=reason,
        from_stage=0,
        to_stage=0,
        to_share=0.0,
        evidence={},
        decided_at=T0,
        actor="test",
    )


def test_manual_promotion_and_rollback() -> None:
    fake, client = registry()
    start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    made = rollback_now(client, NAME, actor="alice", reason="looks off", now=T0)
    assert (made.action, made.actor, made.challenger_version) == (
        RolloutAction.ROLLBACK,
        "alice",
        "2",
    )
    assert fake.aliases == {CHAMPION: "1"}
    assert rollback_now(client, NAME, "alice", "again").action is RolloutAction.HOLD
    with pytest.raises(RolloutError, match="no challenger to promote"):
        promote_now(client, NAME, "alice", "no challenger left")

    fake.versions["3"] = {}
    fake.aliases[CHALLENGER] = "3"  # registered, no rollout started
    made = promote_now(client, NAME, actor="bob", reason="hotfix", now=T0)
    assert (made.action, made.challenger_version) == (RolloutAction.PROMOTE, "3")
    assert fake.aliases == {CHAMPION: "3"}
    assert read_rollout(client, NAME).status is RolloutStatus.PROMOTED


def test_pause_and_resume() -> None:
    _, client = registry()
    start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    paused = pause_rollout(client, NAME, "incident", now=T0)
    assert (paused.status, paused.reason) == (RolloutStatus.PAUSED, "incident")
    assert route("card-1", paused, True).mirror_to_challenger is False
    later = T0 + timedelta(hours=3)
    resumed = resume_rollout(client, NAME, now=later)
    assert (resumed.status, resumed.stage_started_at) == (RolloutStatus.RUNNING, later)
    assert resume_rollout(client, NAME) == resumed


def test_start_is_idempotent_and_skips_the_champion() -> None:
    fake, client = registry()
    first = start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    assert (first.status, first.shadow, first.share) == (RolloutStatus.RUNNING, True, 0.0)
    assert start_rollout(client, NAME, "2", SETTINGS.stages) == first
    assert start_rollout(client, NAME, "1", SETTINGS.stages) == first  # v1 is the champion
    with pytest.raises(RolloutError, match="increase"):
        start_rollout(client, NAME, "2", (0.0, 0.5, 0.25))


def test_read_rollout_of_an_unknown_model_is_idle() -> None:
    _, client = registry()
    assert read_rollout(client, "other") == RolloutState(model_name="other")


# --- whole rollouts -----------------------------------------------------------------------


@dataclass
class World:
    """Traffic on 2,000 cards; true fraud probabilities; labels a tick after the request."""

    challenger_quality: str
    seed: int = 0
    rng: np.random.Generator = field(init=False)
    log: Log = field(default_factory=Log)
    pending: list[tuple[str, int, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def tick(self, state: RolloutState, now: datetime, requests: int = 300) -> float:
        """Serve one tick of requests; return the challenger's answered share."""
        for pid, label, ts in self.pending:  # last tick's labels arrive now
            self.log.labels.append({"prediction_id": pid, "label": str(label), "ts": ts})
        self.pending = []
        answered_by_challenger = 0
        for i in range(requests):
            card = f"card-{self.rng.integers(2_000)}"
            q = float(self.rng.beta(0.5, 8.0))
            label = int(self.rng.random() < q)
            ts = now + timedelta(milliseconds=i)
            champ_score = _noisy(q, 1.0, self.rng)
            chall_score = (
                float(self.rng.random())
                if self.challenger_quality == "random-weights"
                else _noisy(q, 0.1, self.rng)
            )
            decision = route(card, state, challenger_loaded=True)
            if decision.answer is Variant.CHALLENGER:
                answered_by_challenger += 1
                pid = self.log.add(Variant.CHALLENGER, chall_score, ts=ts, entity=card)
            else:
                pid = self.log.add(Variant.CHAMPION, champ_score, ts=ts, entity=card)
                if decision.mirror_to_challenger:
                    self.log.add(
                        Variant.CHALLENGER,
                        chall_score,
                        ts=ts,
                        prediction_id=pid,
                        shadow=True,
                        entity=card,
                    )
            self.pending.append((pid, label, ts))
        return answered_by_challenger / requests


def _noisy(q: float, noise: float, rng: np.random.Generator) -> float:
    logit = np.log(q) - np.log1p(-q) + noise * rng.standard_normal()
    return float(1.0 / (1.0 + np.exp(-logit)))


def run_rollout(world: World, ticks: int = 60) -> tuple[RolloutState, float, list[str]]:
    """Tick every 5 minutes until the rollout ends; the highest share and the actions."""
    _, client = registry()
    state = start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    highest, actions = 0.0, []
    for k in range(ticks):
        now = T0 + timedelta(minutes=5 * k)
        highest = max(highest, world.tick(state, now))
        later = now + timedelta(minutes=5)
        made = decide(state, evidence_of(world.log, state, later), SETTINGS, later)
        actions.append(made.action.value)
        state = apply_decision(client, state, made)
        if not state.active:
            break
    return state, highest, actions


def test_a_random_weights_challenger_never_answers_a_request() -> None:
    state, highest, actions = run_rollout(World("random-weights"))
    assert state.status is RolloutStatus.ROLLED_BACK
    assert state.reason.startswith("challenger worse")
    assert highest == 0.0  # never past the first stage's (shadow) share
    assert "advance" not in actions


def test_a_random_weights_challenger_without_labels_stays_in_shadow() -> None:
    world = World("random-weights")
    _, client = registry()
    state = start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    for k in range(12):
        now = T0 + timedelta(minutes=5 * k)
        world.tick(state, now)
        world.pending = []  # labels never arrive
        made = decide(state, evidence_of(world.log, state, now), SETTINGS, now)
        state = apply_decision(client, state, made)
    assert (state.status, state.stage, state.shadow) == (RolloutStatus.RUNNING, 0, True)
    assert made.reason == "waiting for labels 0/150"


def test_a_better_challenger_is_promoted() -> None:
    state, highest, actions = run_rollout(World("better", seed=1))
    assert state.status is RolloutStatus.PROMOTED, actions
    assert state.reason.startswith("challenger better")


def test_labels_are_read_as_classes() -> None:
    log, state = Log(), state_at(1)
    for i, label in enumerate(["1", "1.0", "True", "0", "false", "0.0"]):
        pid = log.add(Variant.CHALLENGER, 0.8, ts=T0 + timedelta(seconds=i))
        log.labels.append({"prediction_id": pid, "label": label, "ts": T0})
    predictions, feedback = log.frames()
    losses = compute_evidence(state, predictions, feedback, T0).losses.challenger
    assert losses.n == 6
    assert losses.total == pytest.approx(-3 * np.log(0.8) - 3 * np.log(0.2))
    named = feedback.assign(label=["fraud", "fraud", "fraud", "ok", "ok", "ok"])
    again = compute_evidence(state, predictions, named, T0, positive_label="fraud").losses
    assert again.challenger.total == pytest.approx(losses.total)


# --- deadlines, expiry, compare-and-set, the cheap step -----------------------------------

SHORT = SETTINGS.model_copy(update={"max_duration_s": 2 * 3600.0, "paused_expiry_s": 3600.0})


def test_start_sets_the_deadline_and_the_first_revision() -> None:
    _, client = registry()
    state = start_rollout(client, NAME, "2", SETTINGS.stages, now=T0, max_duration_s=7200)
    assert (state.revision, state.started_at, state.deadline) == (1, T0, T0 + timedelta(hours=2))
    assert state.holds_retraining(T0 + timedelta(hours=1))
    assert not state.holds_retraining(state.deadline)
    default = start_rollout(client, NAME, "2", SETTINGS.stages)  # idempotent: unchanged
    assert default == state
    _, other = registry()
    fresh = start_rollout(other, NAME, "2", SETTINGS.stages, now=T0)
    assert fresh.deadline == T0 + timedelta(seconds=RolloutSettings().max_duration_s)


def test_a_rollout_without_a_verdict_is_rolled_back_at_its_deadline() -> None:
    log, state = Log(), state_at(2, deadline=T0 + timedelta(hours=2), revision=7)
    shadow_pairs(log, 300, labelled=False)  # plenty of traffic, no labels yet
    before = T0 + timedelta(hours=2) - timedelta(seconds=1)
    assert decide(state, evidence_of(log, state, before), SHORT, before).action is (
        RolloutAction.HOLD
    )
    at = T0 + timedelta(hours=2)
    made = decide(state, evidence_of(log, state, at), SHORT, at)
    assert (made.action, made.expired, made.to_share) == (RolloutAction.ROLLBACK, True, 0.0)
    assert made.reason.startswith("expired without evidence: deadline 2025-03-01T14:00:00+00:00")
    assert "at stage 2 (25% of traffic)" in made.reason and "0/150 labelled" in made.reason
    assert made.evidence["expired"] is True and made.evidence["share"] == 0.25
    assert made.from_revision == 7
    assert decision_events(made) == (MODEL_ROLLED_BACK, ROLLOUT_EXPIRED)
    payload = event_payload(made)
    assert {k: payload[k] for k in ("version", "actor", "stage", "share", "expired")} == {
        "version": "2",
        "actor": "rollout-policy",
        "stage": 2,
        "share": 0.25,
        "expired": True,
    }
    assert payload["reason"] == made.reason
    # without evidence at all (nothing computed) the deadline holds as well
    assert decide(state, None, SHORT, at).expired


def test_a_clear_verdict_at_the_deadline_still_wins() -> None:
    log, state = Log(), state_at(0, deadline=T0)
    shadow_pairs(log, 200, challenger=0.02, positive_every=1_000)
    made = decide(state, evidence_of(log, state, T0), SETTINGS, T0)
    assert (made.action, made.expired) == (RolloutAction.PROMOTE, False)
    assert decision_events(made) == (MODEL_PROMOTED,)


def test_a_paused_rollout_expires_and_is_rolled_back() -> None:
    fake, client = registry()
    start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    paused = pause_rollout(client, NAME, "data-quality incident", now=T0 + timedelta(hours=1))
    assert paused.paused_at == T0 + timedelta(hours=1)
    expiry = T0 + timedelta(hours=2)
    held = decide(paused, None, SHORT, expiry - timedelta(seconds=1))
    assert (held.action, held.reason) == (RolloutAction.HOLD, "rollout is paused")
    made = decide(paused, None, SHORT, expiry)
    assert (made.action, made.expired) == (RolloutAction.ROLLBACK, True)
    assert made.reason.startswith("expired without evidence: paused since 2025-03-01T13:00:00")
    assert made.evidence["status_before"] == "paused"
    rolled = apply_decision(client, paused, made)
    assert (rolled.status, rolled.revision) == (RolloutStatus.ROLLED_BACK, paused.revision + 1)
    assert fake.aliases == {CHAMPION: "1"}
    assert fake.versions["2"][ROLLED_BACK_REASON_TAG] == made.reason
    with pytest.raises(RolloutError, match="no paused rollout"):  # decided: never resumed
        resume_rollout(client, NAME)


def test_a_paused_rollout_past_its_deadline_expires_too() -> None:
    state = state_at(1, status=RolloutStatus.PAUSED, paused_at=T0, deadline=T0 + timedelta(1))
    made = decide(state, None, SETTINGS, T0 + timedelta(days=1))  # expiry: a day too
    assert made.expired
    state = state.model_copy(update={"paused_at": T0 + timedelta(hours=12)})
    made = decide(state, None, SETTINGS, T0 + timedelta(days=1))
    assert made.expired and "reached while paused" in made.reason


def test_a_state_tag_of_an_older_version_still_parses_and_still_expires() -> None:
    fake, client = registry()
    old = {  # written before deadlines and revisions existed
        "model_name": NAME,
        "challenger_version": "2",
        "status": "running",
        "stage": 1,
        "share": 0.05,
        "shadow": False,
        "stage_started_at": T0.isoformat(),
        "updated_at": T0.isoformat(),
        "reason": "stage 0 complete",
    }
    fake.tags[STATE_TAG] = json.dumps(old)
    state = read_rollout(client, NAME)
    assert (state.revision, state.deadline, state.paused_at) == (0, None, None)
    assert state.holds_retraining(T0 + timedelta(days=30))  # no deadline of its own...
    made = decide(state, None, SHORT, T0 + timedelta(hours=2))  # ...but the policy's
    assert made.expired
    assert apply_decision(client, state, made).revision == 1


def test_a_write_on_a_stale_revision_is_refused() -> None:
    _, client = registry()
    start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    seen = read_rollout(client, NAME)
    first = write_rollout(client, seen.model_copy(update={"reason": "first"}))
    assert first.revision == seen.revision + 1
    with pytest.raises(StaleRolloutError, match="revision 2.*revision 1"):
        write_rollout(client, seen.model_copy(update={"reason": "second"}))
    assert read_rollout(client, NAME) == first


def test_two_steppers_on_one_state_apply_once_and_audit_once(tmp_path: Path) -> None:
    _, client = registry()
    state = start_rollout(client, NAME, "2", SETTINGS.stages, now=T0)
    log = Log()
    shadow_pairs(log, 200)
    now = T0 + timedelta(hours=1)
    audit = AuditTrail(f"sqlite:///{tmp_path / 'audit.db'}")
    lock = RolloutLock(f"sqlite:///{tmp_path / 'lock.db'}")
    stale = decide(state, evidence_of(log, state, now), SETTINGS, now)  # made by "another run"
    first = step_rollout(
        client,
        NAME,
        SETTINGS,
        lambda s, at: evidence_of(log, s, at),
        lock=lock,
        audit=audit,
        now=now,
    )
    assert (first.applied, first.state.stage, first.state.revision) == (True, 1, 2)
    again = try_apply_decision(client, state, stale, lock=lock)
    assert again == (first.state, False)
    assert [r.action for r in audit.history(NAME)] == ["advance"]
    audit.close()
    lock.close()


class CountingRegistry(FakeRegistry):
    """Records every registry call."""

    def __init__(self, fake: FakeRegistry) -> None:
        super().__init__(fake.versions, fake.aliases, fake.tags)
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name not in ("calls", "versions", "aliases", "tags"):
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


class NoLock(RolloutLock):
    def __init__(self) -> None:
        super().__init__("sqlite:///:memory:")

    def hold(self, model_name: str) -> Any:
        raise AssertionError("a step with nothing to do takes no lock")


def no_evidence(state: RolloutState, now: datetime) -> Any:
    raise AssertionError("a step with nothing to do reads no evidence")


@pytest.mark.parametrize("status", ["idle", "promoted", "rolled_back"])
def test_a_step_without_an_active_rollout_reads_one_record_and_does_nothing(status: str) -> None:
    fake, _ = registry()
    if status != "idle":
        done = state_at(1, status=RolloutStatus(status))
        fake.tags[STATE_TAG] = done.model_dump_json()
    counting = CountingRegistry(fake)
    step = step_rollout(cast(MlflowClient, counting), NAME, SETTINGS, no_evidence, lock=NoLock())
    assert step.decision is None and not step.applied
    assert step.state.status.value == status
    assert counting.calls == ["get_registered_model"]


def test_a_rollout_stepped_by_schedule_never_stays_active_past_its_deadline(
    tmp_path: Path,
) -> None:
    """Labels never arrive; a step every 5 minutes; the deadline ends it, audited."""
    world = World("better", seed=2)
    _, client = registry()
    lock = RolloutLock(f"sqlite:///{tmp_path / 'lock.db'}")
    audit = AuditTrail(f"sqlite:///{tmp_path / 'audit.db'}")
    state = start_rollout(client, NAME, "2", SHORT.stages, now=T0, max_duration_s=7200)
    assert state.deadline is not None
    for k in range(1, 40):
        now = T0 + timedelta(minutes=5 * k)
        world.tick(state, now)
        world.pending = []  # labels later than the whole rollout
        step = step_rollout(
            client,
            NAME,
            SHORT,
            lambda s, at: evidence_of(world.log, s, at),
            lock=lock,
            audit=audit,
            now=now,
        )
        state = step.state
        assert not (state.active and now >= state.deadline), f"active at {now}"
        if not state.active:
            break
    assert state.status is RolloutStatus.ROLLED_BACK and now == state.deadline
    [record] = audit.history(NAME)
    assert (record.action, record.actor) == ("rollback", "rollout-policy")
    assert record.reason.startswith("expired without evidence")
    assert record.evidence["expired"] is True and record.evidence["stage"] == 0
    audit.close()
    lock.close()
