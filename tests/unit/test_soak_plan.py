"""The soak's seeded plan of injections and the rules that judge the loop's reactions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.synthetic import Scenario
from scenarios.soak_plan import (
    Defect,
    Injection,
    InjectionKind,
    SoakPlan,
    break_pipe,
    plan_soak,
)
from scenarios.soak_report import _false_alarms, _injections, champion_regimes

HOUR = 3600.0


def _plan(hours: float, seed: int = 11) -> SoakPlan:
    return plan_soak(
        hours * HOUR,
        seed=seed,
        warmup_s=1200,
        min_gap_s=1800,
        incident_s=600,
        shifts=3,
        incidents=2,
    )


def test_a_plan_is_seeded_spaced_and_holds_both_kinds() -> None:
    plan = _plan(2.0)
    assert plan == _plan(2.0)
    assert plan != _plan(2.0, seed=12)
    times = [i.at_s for i in plan.injections]
    assert times == sorted(times)
    assert times[0] >= 1200
    assert all(b - a >= 1800 for a, b in zip(times, times[1:], strict=False))
    assert times[-1] <= 2 * HOUR - 1800
    assert plan.injections[0].kind is InjectionKind.SHIFT
    assert plan.shifts and plan.incidents


def test_a_short_soak_keeps_what_fits() -> None:
    assert _plan(0.5).injections == ()
    assert [i.kind for i in _plan(1.0).injections] == [InjectionKind.SHIFT]


def test_the_world_follows_the_plan() -> None:
    plan = SoakPlan(
        (
            Injection(InjectionKind.SHIFT, 100.0, regime=Scenario.CONCEPT_SHIFT),
            Injection(
                InjectionKind.DATA_QUALITY,
                200.0,
                feature="amount",
                defect=Defect.NULLS,
                duration_s=50.0,
            ),
        )
    )
    assert plan.regime_at(99.0) is Scenario.BASELINE
    assert plan.regime_at(100.0) is Scenario.CONCEPT_SHIFT
    assert plan.incident_at(199.0) is None
    assert plan.incident_at(220.0) is plan.injections[1]
    assert plan.incident_at(250.0) is None


@pytest.mark.parametrize("defect", list(Defect))
def test_a_broken_pipe_breaks_one_feature_only(defect: Defect) -> None:
    rows = pd.DataFrame({"amount": [1.0, 2.5], "other": [3.0, 4.0]})
    incident = Injection(
        InjectionKind.DATA_QUALITY, 0.0, feature="amount", defect=defect, duration_s=1.0
    )
    broken = break_pipe(rows, incident)
    expected = [np.nan, np.nan] if defect is Defect.NULLS else [1000.0, 2500.0]
    np.testing.assert_array_equal(broken["amount"].to_numpy(), expected)
    assert broken["other"].tolist() == [3.0, 4.0]
    assert rows["amount"].tolist() == [1.0, 2.5]


def test_detection_and_false_alarms_are_judged_against_the_plan() -> None:
    plan = SoakPlan(
        (
            Injection(InjectionKind.SHIFT, 1000.0, regime=Scenario.CONCEPT_SHIFT),
            Injection(
                InjectionKind.DATA_QUALITY,
                5000.0,
                feature="amount",
                defect=Defect.UNITS,
                duration_s=600.0,
            ),
        )
    )
    alarms = [500.0, 1900.0, 2500.0, 4000.0, 5100.0]
    quality = [5300.0]
    # v2, registered at 2000 s (the shifted regime), serves from 3000 s.
    champions = champion_regimes(plan, [(3000.0, "2")], {"2": 2000.0})
    found = _injections(plan, alarms, quality, 300.0, champions)
    assert [o.delay_s for o in found] == [900.0, 300.0]
    # 500: before any shift; 4000: 1000 s after the recovery; 5100: inside the incident.
    assert _false_alarms(plan, alarms, champions, grace_s=300.0) == [500.0, 4000.0]


def test_a_return_to_the_champions_regime_is_not_a_shift_to_detect() -> None:
    plan = SoakPlan(
        (
            Injection(InjectionKind.SHIFT, 1000.0, regime=Scenario.CONCEPT_SHIFT),
            Injection(InjectionKind.SHIFT, 3000.0, regime=Scenario.BASELINE),
        )
    )
    champions = champion_regimes(plan, [], {})  # no retraining: the baseline champion serves
    alarms = [1200.0, 2900.0, 3100.0, 3250.0, 3400.0]
    found = _injections(plan, alarms, [], 300.0, champions)
    assert [(o.expected, o.delay_s) for o in found] == [(True, 200.0), (False, None)]
    # 3100 and 3250: the window still holds shifted rows; 3400: baseline world, baseline champion.
    assert _false_alarms(plan, alarms, champions, grace_s=300.0) == [3400.0]
    # Had a retraining on the shifted regime been promoted at 2500 s, the return is a shift.
    retrained = champion_regimes(plan, [(2500.0, "2")], {"2": 2000.0})
    found = _injections(plan, alarms, [], 300.0, retrained)
    assert [(o.expected, o.delay_s) for o in found] == [(True, 200.0), (True, 100.0)]
    assert _false_alarms(plan, alarms, retrained, grace_s=300.0) == [2900.0]


def test_a_soak_keeps_its_configuration_and_judges_with_the_monitors_whole_window(
    tmp_path: Path,
) -> None:
    from scenarios.soak import SoakConfig

    config = SoakConfig(hours=2.5, out=tmp_path, seed=3, min_gap_s=1800.0)
    config.save()
    assert SoakConfig.load(tmp_path) == config
    # A shift shows in every verdict whose window (30 min) holds its rows, one run late.
    assert config.grace_s == config.monitor_window_s + config.monitor_every_s == 35 * 60
    # An alarm's window holds 10 min of labelled traffic; a retraining asks for 3/4 of it.
    assert config.min_new_rows == 2_700
