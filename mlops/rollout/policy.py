"""The canary policy: what to do with a rollout given its evidence, and doing it.

`decide` is a pure function of (state, evidence, settings, now), in this order:

1. **Guardrails** roll back at once, whatever the stage:
   - errors: the challenger's error rate in the stage is *significantly* above
     `max_error_rate` (the one-sided Clopper-Pearson lower bound at confidence
     1 - alpha exceeds it; a challenger that fails its first request is rolled back
     on that request, one error in a hundred against a 1 % limit is not);
   - latency: challenger p99 / champion p99 above `max_p99_latency_ratio` (once both
     have at least `MIN_LATENCY_SAMPLES` latencies).
2. **The sequential test** (mSPRT on per-prediction log loss, see `sequential.py`),
   once `min_labels` challenger predictions are labelled: significantly better →
   promote (early, at any stage), significantly worse → roll back.
3. **Advance** to the next stage when the stage has `min_predictions` challenger
   predictions and `min_stage_seconds`, and the test has had its `min_labels` labels:
   no user is answered by the challenger before its predictions were checked against
   labels, so a broken model that passes the guardrails is caught in shadow.
4. At the **last stage** (100 %), once the same conditions hold with no verdict, the
   conservative default: **roll back, "no evidence of improvement"**. A challenger
   must show it is better to replace the champion; an equivalent one is not worth
   the change. (A setting could make this "promote when not worse" later.)
5. Otherwise **hold**, saying what is missing.

`apply_decision` makes a decision true in the registry (aliases, version tags, the
rollout state) and is idempotent: a decision made on a state that has moved since is
a logged no-op. People act through `promote_now` and `rollback_now`.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from enum import StrEnum

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, ConfigDict
from scipy.stats import beta

from mlops.registry.client import CHALLENGER, CHAMPION, version_by_alias
from mlops.rollout.evidence import StageEvidence, SummaryValue
from mlops.rollout.sequential import DEFAULT_TAU, TestDecision, msprt
from mlops.rollout.state import (
    RolloutError,
    RolloutState,
    RolloutStatus,
    read_rollout,
    utc_now,
    write_rollout,
)
from mlops.settings import RolloutSettings

logger = logging.getLogger(__name__)

POLICY_ACTOR = "rollout-policy"
ROLLED_BACK_REASON_TAG = "rollout.rolled_back_reason"
PROMOTED_REASON_TAG = "rollout.promoted_reason"
RESTORED_REASON_TAG = "rollout.restored_reason"
DECIDED_BY_TAG = "rollout.decided_by"
NO_EVIDENCE = "no evidence of improvement"


class RolloutAction(StrEnum):
    """What a decision does to a rollout."""

    ADVANCE = "advance"
    HOLD = "hold"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    RESTORE = "restore"
    """A person moves `champion` back to an earlier version (outside any rollout)."""


class RolloutDecision(BaseModel):
    """One decision about one rollout: what, why, on which evidence, by whom, when."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    challenger_version: str | None
    action: RolloutAction
    reason: str
    from_stage: int
    to_stage: int
    to_share: float
    """The challenger's share of answered traffic after the decision."""
    evidence: dict[str, SummaryValue]
    decided_at: datetime
    actor: str
    """Who or what decided: `rollout-policy` or a person's name."""

    @property
    def decision_id(self) -> str:
        """A stable id: recording the same decision twice (a retried task) adds one row."""
        key = "|".join(
            (
                self.model_name,
                self.challenger_version or "",
                self.action.value,
                str(self.from_stage),
                str(self.to_stage),
                self.decided_at.isoformat(),
                self.actor,
            )
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]


def decide(
    state: RolloutState,
    evidence: StageEvidence | None,
    settings: RolloutSettings,
    now: datetime,
    *,
    actor: str = POLICY_ACTOR,
    tau: float = DEFAULT_TAU,
) -> RolloutDecision:
    """Decide the next step of a rollout (see the module docstring for the rules)."""
    stages = settings.stages
    last = len(stages) - 1
    stage = min(state.stage, last)

    def decision(
        action: RolloutAction, reason: str, to_stage: int, facts: dict[str, SummaryValue]
    ) -> RolloutDecision:
        share = {
            RolloutAction.ADVANCE: stages[to_stage],
            RolloutAction.HOLD: state.share,
            RolloutAction.PROMOTE: 1.0,
            RolloutAction.ROLLBACK: 0.0,
        }[action]
        return RolloutDecision(
            model_name=state.model_name,
            challenger_version=state.challenger_version,
            action=action,
            reason=reason,
            from_stage=state.stage,
            to_stage=to_stage,
            to_share=share,
            evidence=facts,
            decided_at=now,
            actor=actor,
        )

    if state.status is not RolloutStatus.RUNNING or state.challenger_version is None:
        return decision(RolloutAction.HOLD, f"rollout is {state.status}", state.stage, {})
    if evidence is None:
        return decision(RolloutAction.HOLD, "no evidence yet", state.stage, {})
    if evidence.challenger_version != state.challenger_version:
        raise ValueError(
            f"evidence of v{evidence.challenger_version} for a rollout of "
            f"v{state.challenger_version}"
        )
    facts = dict(evidence.summary())

    # 1. guardrails
    breach = _guardrail_breach(evidence, settings)
    if breach:
        return decision(RolloutAction.ROLLBACK, breach, state.stage, facts)

    # 2. the sequential test
    test = msprt(evidence.losses, alpha=settings.alpha, tau=tau, min_labels=settings.min_labels)
    facts |= {
        "test": "mSPRT",
        "test_decision": test.decision.value,
        "loss_delta": test.estimate,
        "loss_delta_std_error": test.std_error,
        "p_better": test.p_better,
        "p_worse": test.p_worse,
        "alpha": settings.alpha,
        "tau": tau,
    }
    if test.decision is TestDecision.PROMOTE:
        return decision(
            RolloutAction.PROMOTE,
            f"challenger better: log loss lower by {test.estimate:.4f} "
            f"(always-valid p {test.p_better:.3g} <= alpha {settings.alpha})",
            state.stage,
            facts,
        )
    if test.decision is TestDecision.ROLLBACK:
        return decision(
            RolloutAction.ROLLBACK,
            f"challenger worse: log loss higher by {-(test.estimate or 0.0):.4f} "
            f"(always-valid p {test.p_worse:.3g} <= alpha {settings.alpha})",
            state.stage,
            facts,
        )

    # 3. / 4. / 5. stage progress
    missing = _missing(state, evidence, settings, now)
    facts["stage_seconds"] = _stage_seconds(state, now)
    if missing:
        return decision(RolloutAction.HOLD, "waiting for " + ", ".join(missing), state.stage, facts)
    if stage >= last:
        return decision(
            RolloutAction.ROLLBACK,
            f"{NO_EVIDENCE} at {stages[last]:.0%} of traffic "
            f"(p_better {test.p_better:.3g} > alpha {settings.alpha})",
            state.stage,
            facts,
        )
    to = stage + 1
    return decision(
        RolloutAction.ADVANCE,
        f"stage {stage} complete: {_share(stages[stage])} -> {_share(stages[to])}",
        to,
        facts,
    )


def apply_decision(
    client: MlflowClient, state: RolloutState, decision: RolloutDecision
) -> RolloutState:
    """Make a policy decision true in the registry and return the new rollout state.

    Idempotent: the state is read again, and a decision made on a state that has moved
    since (another stage, status or version) changes nothing (logged). A hold changes
    nothing either. Promotion moves `champion` to the challenger and removes
    `challenger`; rollback removes `challenger` and tags the version with the reason;
    the aliases move before the state is written, so a crash in between is repaired by
    deciding and applying again.
    """
    current = read_rollout(client, state.model_name)
    if decision.action is RolloutAction.HOLD:
        return current
    if (
        current.status is not RolloutStatus.RUNNING
        or current.challenger_version != decision.challenger_version
        or current.stage != decision.from_stage
    ):
        logger.info(
            "model %s: %s of v%s decided at stage %d no longer applies "
            "(rollout is %s, v%s, stage %d): nothing done",
            decision.model_name,
            decision.action,
            decision.challenger_version,
            decision.from_stage,
            current.status,
            current.challenger_version,
            current.stage,
        )
        return current
    return _apply(client, current, decision)


def promote_now(
    client: MlflowClient,
    model_name: str,
    actor: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> RolloutDecision:
    """A person promotes the challenger now, whatever the rollout's stage or status.

    Returns the decision (record it in the audit trail); `read_rollout` gives the new
    state. Promoting an already promoted rollout returns a hold and changes nothing.

    Raises:
        RolloutError: there is no challenger to promote.
    """
    return _manual(client, model_name, RolloutAction.PROMOTE, actor, reason, now or utc_now())


def rollback_now(
    client: MlflowClient,
    model_name: str,
    actor: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> RolloutDecision:
    """A person rolls the challenger back now (its version is tagged with the reason).

    Returns the decision (record it in the audit trail). Rolling back an already
    rolled-back rollout returns a hold and changes nothing.

    Raises:
        RolloutError: there is no challenger to roll back.
    """
    return _manual(client, model_name, RolloutAction.ROLLBACK, actor, reason, now or utc_now())


def restore_champion(
    client: MlflowClient,
    model_name: str,
    version: str,
    actor: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> RolloutDecision:
    """A person makes an earlier version the champion again (the undo of a promotion).

    Serving replicas follow the alias within their poll interval. Returns the decision
    (record it in the audit trail); restoring the version that already is the champion
    returns a hold and changes nothing.

    Raises:
        RolloutError: the version does not exist, or a rollout is in progress (roll the
            challenger back first: a restore must not race the rollout's decisions).
    """
    now = now or utc_now()
    state = read_rollout(client, model_name)
    if state.active:
        raise RolloutError(
            f"model {model_name}: the rollout of v{state.challenger_version} is in progress; "
            "roll it back before restoring a champion"
        )
    try:
        client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RolloutError(f"model {model_name} has no version {version}") from exc
    champion = version_by_alias(client, model_name, CHAMPION)
    before = None if champion is None else str(champion.version)
    done = before == version
    decision = RolloutDecision(
        model_name=model_name,
        challenger_version=version,
        action=RolloutAction.HOLD if done else RolloutAction.RESTORE,
        reason=f"v{version} already is the champion" if done else reason,
        from_stage=state.stage,
        to_stage=state.stage,
        to_share=0.0,
        evidence={"manual": True, "champion_before": before},
        decided_at=now,
        actor=actor,
    )
    if done:
        return decision
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, RESTORED_REASON_TAG, reason)
    client.set_model_version_tag(model_name, version, DECIDED_BY_TAG, actor)
    logger.warning(
        "model %s: champion restored to v%s (was v%s): %s", model_name, version, before, reason
    )
    return decision


def _manual(
    client: MlflowClient,
    model_name: str,
    action: RolloutAction,
    actor: str,
    reason: str,
    now: datetime,
) -> RolloutDecision:
    state = read_rollout(client, model_name)
    version = state.challenger_version if state.active else None
    if version is None:
        challenger = version_by_alias(client, model_name, CHALLENGER)
        champion = version_by_alias(client, model_name, CHAMPION)
        if challenger is not None and (
            champion is None or str(champion.version) != str(challenger.version)
        ):
            version = str(challenger.version)
    done = RolloutStatus.PROMOTED if action is RolloutAction.PROMOTE else RolloutStatus.ROLLED_BACK
    if version is None and state.status is done:
        logger.info("model %s v%s: already %s", model_name, state.challenger_version, done)
        return RolloutDecision(
            model_name=model_name,
            challenger_version=state.challenger_version,
            action=RolloutAction.HOLD,
            reason=f"already {done}",
            from_stage=state.stage,
            to_stage=state.stage,
            to_share=state.share,
            evidence={"manual": True, "status_before": state.status.value},
            decided_at=now,
            actor=actor,
        )
    if version is None:
        raise RolloutError(f"model {model_name}: no challenger to {action}")
    made = RolloutDecision(
        model_name=model_name,
        challenger_version=version,
        action=action,
        reason=reason,
        from_stage=state.stage,
        to_stage=state.stage,
        to_share=1.0 if action is RolloutAction.PROMOTE else 0.0,
        evidence={"manual": True, "status_before": state.status.value},
        decided_at=now,
        actor=actor,
    )
    if state.challenger_version != version:  # no rollout of it: the decision starts its record
        state = RolloutState(model_name=model_name, challenger_version=version, stage=state.stage)
    _apply(client, state, made)
    return made


def _apply(client: MlflowClient, state: RolloutState, decision: RolloutDecision) -> RolloutState:
    name, version = state.model_name, decision.challenger_version
    assert version is not None
    if decision.action is RolloutAction.PROMOTE:
        client.set_registered_model_alias(name, CHAMPION, version)
        _clear_challenger(client, name, version)
        client.set_model_version_tag(name, version, PROMOTED_REASON_TAG, decision.reason)
        client.set_model_version_tag(name, version, DECIDED_BY_TAG, decision.actor)
        new = state.model_copy(
            update={
                "status": RolloutStatus.PROMOTED,
                "share": 0.0,
                "shadow": False,
                "reason": decision.reason,
                "updated_at": decision.decided_at,
            }
        )
        logger.info("model %s v%s promoted to champion: %s", name, version, decision.reason)
    elif decision.action is RolloutAction.ROLLBACK:
        _clear_challenger(client, name, version)
        client.set_model_version_tag(name, version, ROLLED_BACK_REASON_TAG, decision.reason)
        client.set_model_version_tag(name, version, DECIDED_BY_TAG, decision.actor)
        new = state.model_copy(
            update={
                "status": RolloutStatus.ROLLED_BACK,
                "share": 0.0,
                "shadow": False,
                "reason": decision.reason,
                "updated_at": decision.decided_at,
            }
        )
        logger.warning("model %s v%s rolled back: %s", name, version, decision.reason)
    elif decision.action is RolloutAction.ADVANCE:
        new = state.model_copy(
            update={
                "stage": decision.to_stage,
                "share": decision.to_share,
                "shadow": decision.to_share == 0.0,
                "stage_started_at": decision.decided_at,
                "updated_at": decision.decided_at,
                "reason": decision.reason,
            }
        )
        logger.info("model %s v%s: %s", name, version, decision.reason)
    else:
        return state
    write_rollout(client, new)
    return new


def _clear_challenger(client: MlflowClient, name: str, version: str) -> None:
    """Remove `challenger` if it still names this version (a newer one keeps it)."""
    holder = version_by_alias(client, name, CHALLENGER)
    if holder is not None and str(holder.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


def _guardrail_breach(evidence: StageEvidence, settings: RolloutSettings) -> str:
    chall = evidence.challenger
    if chall.errors:
        lower = float(beta.ppf(settings.alpha, chall.errors, chall.predictions - chall.errors + 1))
        if lower > settings.max_error_rate:
            return (
                f"guardrail: challenger error rate {chall.errors}/{chall.predictions} "
                f"({chall.errors / chall.predictions:.1%}, lower bound {lower:.2%}) "
                f"above {settings.max_error_rate:.2%}"
            )
    ratio = evidence.p99_latency_ratio
    if ratio is None or ratio <= settings.max_p99_latency_ratio:
        return ""
    assert chall.p99_latency_ms is not None and evidence.champion_reference_p99_ms is not None
    slower_ms = chall.p99_latency_ms - evidence.champion_reference_p99_ms
    if slower_ms <= settings.min_p99_latency_increase_ms:
        return ""
    return (
        f"guardrail: challenger p99 latency {chall.p99_latency_ms:.1f} ms is {ratio:.2f}x "
        f"the champion's {evidence.champion_reference_p99_ms:.1f} ms "
        f"(limit {settings.max_p99_latency_ratio:.2f}x and "
        f"+{settings.min_p99_latency_increase_ms:g} ms)"
    )


def _missing(
    state: RolloutState, evidence: StageEvidence, settings: RolloutSettings, now: datetime
) -> list[str]:
    missing = []
    if evidence.challenger.predictions < settings.min_predictions:
        missing.append(f"predictions {evidence.challenger.predictions}/{settings.min_predictions}")
    elapsed = _stage_seconds(state, now)
    if elapsed < settings.min_stage_seconds:
        missing.append(f"time {elapsed:.0f}/{settings.min_stage_seconds:.0f} s")
    labelled = evidence.losses.challenger_labelled
    if labelled < settings.min_labels:
        missing.append(f"labels {labelled}/{settings.min_labels}")
    return missing


def _stage_seconds(state: RolloutState, now: datetime) -> float:
    if state.stage_started_at is None:
        return 0.0
    return max((now - state.stage_started_at).total_seconds(), 0.0)


def _share(share: float) -> str:
    return "shadow" if share == 0.0 else f"{share:.0%}"
