"""The canary policy: what to do with a rollout given its evidence (pure; no registry).

`decide` is a pure function of (state, evidence, settings, now), in this order:

0. A **paused** rollout holds, until it has been paused `paused_expiry_s` (or reaches
   its deadline): then it is rolled back, "expired without evidence".
1. **Guardrails** roll back at once, whatever the stage:
   - errors: the challenger's error rate in the stage is *significantly* above
     `max_error_rate` (the one-sided Clopper-Pearson lower bound at confidence
     1 - alpha exceeds it; a challenger that fails its first request is rolled back
     on that request, one error in a hundred against a 1 % limit is not);
   - latency: the challenger's p99 is *significantly* slower than the champion's: the
     lower bound of its 1 - alpha confidence interval exceeds `max_p99_latency_ratio`
     times the upper bound of the champion's, and by more than
     `min_p99_latency_increase_ms` (once both have at least `MIN_LATENCY_SAMPLES`
     latencies; the bounds are distribution-free, from order statistics, see
     `evidence.p99_bounds`). Two arms with the same latency distribution are rolled
     back with probability at most alpha at a look, however heavy its tail, where the
     point estimates of the p99 (the 3rd largest of 300 latencies) differ twofold by
     chance on a busy host.
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
5. At or after the rollout's **deadline** (`max_duration_s` after its start) with no
   verdict from 1. or 2.: **roll back, "expired without evidence"**, naming the stage,
   the share and what the evidence held. A rollout never stays active past its
   deadline, and retraining is never deferred forever behind one
   (`RolloutState.holds_retraining`).
6. Otherwise **hold**, saying what is missing.

`mlops.rollout.actions` makes a decision true in the registry (`apply_decision`) and
holds what people do by hand; `decision_events` and `event_payload` say which Prefect
events a decision emits and what they carry.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from scipy.stats import beta

from mlops.events import MODEL_PROMOTED, MODEL_ROLLED_BACK, ROLLOUT_EXPIRED
from mlops.rollout.evidence import StageEvidence, SummaryValue
from mlops.rollout.sequential import DEFAULT_TAU, TestDecision, msprt
from mlops.rollout.state import RolloutState, RolloutStatus
from mlops.settings import RolloutSettings

logger = logging.getLogger(__name__)

POLICY_ACTOR = "rollout-policy"
NO_EVIDENCE = "no evidence of improvement"
EXPIRED = "expired without evidence"


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
    expired: bool = False
    """A rollback because the rollout reached its deadline (or a paused one its expiry)."""
    from_revision: int | None = None
    """The revision of the state decided on; applying it to another revision is a no-op."""
    from_share: float | None = None
    """The challenger's share of answered traffic when the decision was made."""

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
    deadline = rollout_deadline(state, settings)

    def decision(
        action: RolloutAction,
        reason: str,
        to_stage: int,
        facts: dict[str, SummaryValue],
        *,
        expired: bool = False,
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
            expired=expired,
            from_revision=state.revision,
            from_share=state.share,
        )

    def expire(why: str, facts: dict[str, SummaryValue]) -> RolloutDecision:
        """Roll back at the deadline (or a paused rollout at its expiry), saying on what."""
        facts = facts | {
            "expired": True,
            "deadline": None if deadline is None else deadline.isoformat(),
            "stage": state.stage,
            "share": state.share,
            "status_before": state.status.value,
        }
        labelled = facts.get("labelled_paired", 0) or 0
        labelled = int(labelled) + int(facts.get("labelled_challenger", 0) or 0)
        seen = (
            f"{facts.get('challenger_predictions', 0)} challenger predictions in the stage, "
            f"{labelled}/{settings.min_labels} labelled"
        )
        if "p_better" in facts:
            seen += f", p_better {facts['p_better']:.3g} > alpha {settings.alpha}"
        return decision(
            RolloutAction.ROLLBACK,
            f"{EXPIRED}: {why} at stage {state.stage} ({_share(state.share)} of traffic); {seen}",
            state.stage,
            facts,
            expired=True,
        )

    if not state.active or state.challenger_version is None:
        return decision(RolloutAction.HOLD, f"rollout is {state.status}", state.stage, {})
    if state.status is RolloutStatus.PAUSED:
        expiry = paused_expiry(state, settings)
        ends = [moment for moment in (deadline, expiry) if moment is not None]
        if not ends or now < min(ends):
            return decision(RolloutAction.HOLD, f"rollout is {state.status}", state.stage, {})
        why = (
            f"paused since {_when(state.paused_at)} (expiry after {settings.paused_expiry_s:g} s)"
            if expiry is not None and now >= expiry
            else f"deadline {_when(deadline)} reached while paused"
        )
        return expire(why, {})
    if evidence is None:
        if deadline is not None and now >= deadline:
            return expire(f"deadline {_when(deadline)} reached", {})
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

    # 5. the deadline: no verdict in time
    facts["stage_seconds"] = _stage_seconds(state, now)
    if deadline is not None and now >= deadline:
        return expire(f"deadline {_when(deadline)} reached", facts)

    # 3. / 4. / 6. stage progress
    missing = _missing(state, evidence, settings, now)
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
    return _latency_breach(evidence, settings)


def _latency_breach(evidence: StageEvidence, settings: RolloutSettings) -> str:
    """Roll back on latency only when the challenger's p99 is slower beyond doubt: its
    lower bound above the limit set by the champion's upper bound (see the docstring)."""
    chall = evidence.challenger
    lower = chall.p99_latency_lower_ms
    upper = evidence.champion_reference_p99_upper_ms
    if lower is None or upper is None:
        return ""
    if evidence.latency_alpha != settings.alpha:
        logger.warning(
            "model %s: p99 bounds at alpha %g, the rollout's alpha is %g",
            evidence.model_name,
            evidence.latency_alpha,
            settings.alpha,
        )
    if lower <= settings.max_p99_latency_ratio * upper:
        return ""
    if lower - upper <= settings.min_p99_latency_increase_ms:
        return ""
    confidence = f"{1 - evidence.latency_alpha:.0%}"
    ratio = evidence.p99_latency_ratio_lower_bound
    at_least = "" if ratio is None else f"{ratio:.2f}x and "
    return (
        f"guardrail: challenger p99 latency {chall.p99_latency_ms:.1f} ms "
        f"({confidence} lower bound {lower:.1f} ms, {chall.latency_samples} latencies) "
        f"vs the champion's {evidence.champion_reference_p99_ms:.1f} ms "
        f"({confidence} upper bound {upper:.1f} ms, "
        f"{evidence.champion_reference_latency_samples} latencies): "
        f"at least {at_least}+{lower - upper:.1f} ms slower "
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


def rollout_deadline(state: RolloutState, settings: RolloutSettings) -> datetime | None:
    """When an unfinished rollout expires: its own deadline, or (a state written before
    deadlines existed) `max_duration_s` after its start or its stage's start."""
    if state.deadline is not None:
        return state.deadline
    began = state.started_at or state.stage_started_at or state.updated_at
    return None if began is None else began + timedelta(seconds=settings.max_duration_s)


def paused_expiry(state: RolloutState, settings: RolloutSettings) -> datetime | None:
    """When a paused rollout expires: `paused_expiry_s` after it was paused (None when it
    is not paused, or was paused before pauses were timed: its deadline still holds)."""
    if state.status is not RolloutStatus.PAUSED or state.paused_at is None:
        return None
    return state.paused_at + timedelta(seconds=settings.paused_expiry_s)


def decision_events(decision: RolloutDecision) -> tuple[str, ...]:
    """The event names (`mlops.events`) a decision emits once applied."""
    if decision.action is RolloutAction.PROMOTE:
        return (MODEL_PROMOTED,)
    if decision.action is RolloutAction.ROLLBACK:
        return (MODEL_ROLLED_BACK, ROLLOUT_EXPIRED) if decision.expired else (MODEL_ROLLED_BACK,)
    return ()


def event_payload(decision: RolloutDecision) -> dict[str, object]:
    """What a promotion, rollback or expiry event carries: who, what, why, where, evidence."""
    return {
        "version": decision.challenger_version,
        "reason": decision.reason,
        "actor": decision.actor,
        "action": decision.action.value,
        "expired": decision.expired,
        "stage": decision.from_stage,
        "share": decision.to_share if decision.from_share is None else decision.from_share,
        "to_share": decision.to_share,
        "decided_at": decision.decided_at.isoformat(),
        "decision_id": decision.decision_id,
        "evidence": dict(decision.evidence),
    }


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(timespec="seconds")
