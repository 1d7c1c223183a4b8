"""The quality gate as a pure function: baseline margin, champion tolerance, metric choice.

Edge values are binary fractions (0.75, 0.0625, ...) so `baseline + margin` and
`champion - tolerance` are exact and the tests pin the gate's inclusive edges, not
floating-point rounding.
"""

from __future__ import annotations

import pytest

from mlops.registry.gate import quality_gate
from mlops.settings import GateSettings

MARGIN = 0.0625
TOLERANCE = 0.03125
GATE = GateSettings(metric="roc_auc", min_gain_over_baseline=MARGIN, champion_tolerance=TOLERANCE)


def scores(roc_auc: float, accuracy: float = 0.9, f1: float = 0.5) -> dict[str, float]:
    """Holdout metrics as the training stage hands them to the gate."""
    return {"roc_auc": roc_auc, "accuracy": accuracy, "f1": f1, "log_loss": 0.2, "ece": 0.01}


def test_without_a_champion_beating_the_baseline_by_the_margin_passes() -> None:
    decision = quality_gate(scores(0.875), scores(0.75), None, GATE)
    assert decision.passed
    assert decision.metric == "roc_auc"
    assert (decision.candidate, decision.baseline) == (0.875, 0.75)
    assert decision.champion is None and decision.champion_version is None
    assert decision.reason == "roc_auc 0.8750 vs baseline 0.7500, no champion yet"


def test_the_baseline_margin_is_inclusive() -> None:
    assert quality_gate(scores(0.8125), scores(0.75), None, GATE).passed  # 0.75 + 0.0625


def test_short_of_the_margin_is_refused_with_the_numbers() -> None:
    decision = quality_gate(scores(0.8124), scores(0.75), None, GATE)
    assert not decision.passed
    assert decision.reason == (
        "roc_auc 0.8124 does not beat the logistic-regression baseline 0.7500 by 0.0625"
    )


def test_a_candidate_below_the_baseline_is_refused_even_without_a_champion() -> None:
    decision = quality_gate(scores(0.6), scores(0.75), None, GATE)
    assert not decision.passed
    assert "baseline 0.7500" in decision.reason


def test_within_the_champion_tolerance_passes_and_names_the_champion() -> None:
    champion = scores(0.90625)
    decision = quality_gate(scores(0.875), scores(0.75), champion, GATE, champion_version="3")
    assert decision.passed  # 0.90625 - 0.03125 = 0.875: the tolerance edge is inclusive
    assert (decision.champion, decision.champion_version) == (0.90625, "3")
    assert decision.reason == "roc_auc 0.8750 vs baseline 0.7500, champion v3 0.9062"


def test_worse_than_the_champion_beyond_the_tolerance_is_refused() -> None:
    decision = quality_gate(
        scores(0.8749), scores(0.75), scores(0.90625), GATE, champion_version="3"
    )
    assert not decision.passed
    assert decision.reason == (
        "roc_auc 0.8749 is worse than champion v3 (0.9062) on the same holdout (tolerance 0.0312)"
    )


def test_a_rerun_that_remade_the_champion_passes_without_comparing() -> None:
    # A compressed champion may score a little above its own fp32 parent: re-running the
    # pipeline on the same data must not refuse the model it made before.
    decision = quality_gate(
        scores(0.875), scores(0.75), None, GATE, champion_version="2", champion_is_candidate=True
    )
    assert decision.passed
    assert "champion v2 is this very model" in decision.reason


def test_the_baseline_still_applies_to_a_rerun_of_the_champion() -> None:
    decision = quality_gate(
        scores(0.6), scores(0.75), None, GATE, champion_version="2", champion_is_candidate=True
    )
    assert not decision.passed


def test_equal_to_the_champion_passes_with_no_tolerance() -> None:
    strict = GATE.model_copy(update={"champion_tolerance": 0.0})
    assert quality_gate(scores(0.875), scores(0.75), scores(0.875), strict, "1").passed
    assert not quality_gate(scores(0.875), scores(0.75), scores(0.8751), strict, "1").passed


def test_the_baseline_is_checked_before_the_champion() -> None:
    decision = quality_gate(scores(0.5), scores(0.75), scores(0.9), GATE, champion_version="2")
    assert not decision.passed
    assert "baseline" in decision.reason and "champion" not in decision.reason
    assert decision.champion == 0.9  # the evidence is kept even when not decisive


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_the_configured_metric_decides_and_the_others_are_ignored(metric: str) -> None:
    gate = GateSettings(metric=metric, min_gain_over_baseline=MARGIN)  # type: ignore[arg-type]
    # The candidate loses badly on roc_auc but wins on the configured metric, and the
    # other way round: only the configured metric may decide.
    good = quality_gate(
        scores(0.5, accuracy=0.9375, f1=0.9375), scores(0.99, accuracy=0.75, f1=0.75), None, gate
    )
    assert good.passed and good.metric == metric
    assert (good.candidate, good.baseline) == (0.9375, 0.75)
    assert good.reason.startswith(f"{metric} 0.9375")
    bad = quality_gate(
        scores(0.99, accuracy=0.5, f1=0.5), scores(0.5, accuracy=0.75, f1=0.75), None, gate
    )
    assert not bad.passed and bad.reason.startswith(f"{metric} 0.5000 does not beat")


def test_default_settings_gate_on_roc_auc_with_a_one_point_margin() -> None:
    defaults = GateSettings()
    assert (defaults.metric, defaults.min_gain_over_baseline, defaults.champion_tolerance) == (
        "roc_auc",
        0.01,
        0.0,
    )
    assert quality_gate(scores(0.86), scores(0.85), None, defaults).passed
    assert not quality_gate(scores(0.859), scores(0.85), None, defaults).passed
