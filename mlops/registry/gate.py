"""The quality gate between training and registration.

A candidate must beat the logistic-regression baseline on the same holdout by a margin
and must not be worse than the current champion evaluated on that same holdout.
A refusal is an outcome with a reason, not an error: nothing is registered.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlops.contracts import GateDecision
from mlops.settings import GateSettings

_EPSILON = 1e-9
"""Rounding slack: a candidate that meets a margin exactly (0.82 vs 0.81 + 0.01) passes."""


def quality_gate(
    candidate: Mapping[str, float],
    baseline: Mapping[str, float],
    champion: Mapping[str, float] | None,
    settings: GateSettings,
    champion_version: str | None = None,
    *,
    champion_is_candidate: bool = False,
) -> GateDecision:
    """Decide whether `candidate` may be registered as challenger (higher metric is better).

    `champion_is_candidate`: the champion was trained on the same training set with the
    same parameters (same lineage key), i.e. this run re-made it. The champion may be a
    compressed variant whose metric differs slightly from its fp32 parent's, so it is
    not compared: the run passes and registration finds the existing version.
    """
    metric = settings.metric
    mine, theirs = candidate[metric], baseline[metric]
    held = champion[metric] if champion is not None else None
    evidence = GateDecision(
        passed=False,
        reason="",
        metric=metric,
        candidate=mine,
        baseline=theirs,
        champion=held,
        champion_version=champion_version,
    )
    needed = theirs + settings.min_gain_over_baseline
    if mine < needed - _EPSILON:
        reason = (
            f"{metric} {mine:.4f} does not beat the logistic-regression baseline "
            f"{theirs:.4f} by {settings.min_gain_over_baseline:.4f}"
        )
        return evidence.model_copy(update={"reason": reason})
    if champion_is_candidate:
        reason = (
            f"champion v{champion_version} is this very model (same training set and parameters)"
        )
        return evidence.model_copy(update={"passed": True, "reason": reason})
    if held is not None and mine < held - settings.champion_tolerance - _EPSILON:
        reason = (
            f"{metric} {mine:.4f} is worse than champion v{champion_version} ({held:.4f}) "
            f"on the same holdout (tolerance {settings.champion_tolerance:.4f})"
        )
        return evidence.model_copy(update={"reason": reason})
    versus = ", no champion yet"
    if held is not None:
        versus = f", champion v{champion_version} {held:.4f}"
    reason = f"{metric} {mine:.4f} vs baseline {theirs:.4f}{versus}"
    return evidence.model_copy(update={"passed": True, "reason": reason})
