"""The suite derived from the profile: names, scopes and learned bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.settings import ValidationSettings
from mlops.validation import Scope, Suite, build_suite
from mlops.validation.suite import NAME_KEY, allowed_null_rate, widen_range
from tests.unit.validation_frames import COUNTRIES, MERCHANTS, SPEC, reference_profile


def _kwargs(suite: Suite, name: str) -> dict[str, Any]:
    return suite.by_name[name].expectation.configuration.kwargs


def test_every_expectation_has_a_stable_unique_name() -> None:
    suite = build_suite(SPEC, reference_profile(), ValidationSettings())

    names = [e.name for e in suite.expectations]
    expected = {"table.not_empty", "keys.unique", "is_fraud.label_domain"}
    for column in (
        "customer_id",
        "event_timestamp",
        "is_fraud",
        "amount",
        "score",
        "age",
        "tip",
        "merchant",
        "country",
    ):
        expected |= {f"{column}.exists", f"{column}.dtype", f"{column}.not_null"}
    expected |= {f"{c}.in_range" for c in ("amount", "score", "age", "tip")}
    expected |= {"merchant.in_set", "country.in_set"}
    assert set(names) == expected
    assert len(names) == len(set(names))
    assert suite.name == "payments." + "f" * 12
    for named in suite.expectations:
        assert (named.expectation.meta or {})[NAME_KEY] == named.name


def test_the_same_profile_gives_the_same_suite() -> None:
    profile = reference_profile()
    first = build_suite(SPEC, profile, ValidationSettings())
    second = build_suite(SPEC, profile, ValidationSettings())

    assert [e.name for e in first.expectations] == [e.name for e in second.expectations]
    assert [e.expectation.configuration.kwargs for e in first.expectations] == [
        e.expectation.configuration.kwargs for e in second.expectations
    ]


def test_scopes_separate_row_checks_from_batch_checks() -> None:
    suite = build_suite(SPEC, reference_profile(), ValidationSettings())

    row = {e.name for e in suite.expectations if e.scope is Scope.ROW}
    assert row == {
        "keys.unique",
        "is_fraud.label_domain",
        "merchant.in_set",
        "country.in_set",
        "amount.in_range",
        "score.in_range",
        "age.in_range",
        "tip.in_range",
        *(
            f"{c}.not_null"
            for c in ("customer_id", "event_timestamp", "is_fraud", "amount", "score", "age")
            + ("merchant", "country")
        ),
    }
    # tip had 10 % nulls in the reference: its null *rate* is a batch-level property.
    assert suite.by_name["tip.not_null"].scope is Scope.COLUMN
    assert suite.by_name["amount.dtype"].scope is Scope.COLUMN


def test_ranges_are_widened_by_the_margin_and_never_below_zero() -> None:
    profile = reference_profile()
    suite = build_suite(SPEC, profile, ValidationSettings(range_margin=0.5))

    amount = profile.column("amount")
    assert amount.min is not None and amount.max is not None
    span = amount.max - amount.min
    assert _kwargs(suite, "amount.in_range")["min_value"] == 0.0
    assert _kwargs(suite, "amount.in_range")["max_value"] == pytest.approx(amount.max + 0.5 * span)
    score = profile.column("score")
    assert score.min is not None and score.max is not None
    score_span = score.max - score.min
    assert _kwargs(suite, "score.in_range")["min_value"] == pytest.approx(
        score.min - 0.5 * score_span
    )


def test_widen_range_edge_cases() -> None:
    assert widen_range(2.0, 4.0, 0.25) == (1.5, 4.5)
    assert widen_range(0.5, 4.5, 1.0) == (0.0, 8.5)
    assert widen_range(-1.0, 1.0, 0.5) == (-2.0, 2.0)
    assert widen_range(3.0, 3.0, 0.25) == (2.25, 3.75)


def test_long_tailed_columns_widen_on_a_log_scale_bounded_ones_stay_tight() -> None:
    rng = np.random.default_rng(3)
    amounts = pd.Series(rng.lognormal(3.5, 1.1, 20_000))
    hours = pd.Series(rng.integers(0, 24, 20_000).astype(float))
    frame = pd.DataFrame({"amount": amounts, "hour": hours})
    low, high = widen_range(amounts.min(), amounts.max(), 0.25, log_scale=True)
    # A fresh sample's tail fits, an impossible negative amount does not.
    fresh = rng.lognormal(3.5, 1.1, 200_000)
    assert low == 0.0 and fresh.max() < high
    # A bounded column keeps a tight range: 30 o'clock is out.
    assert widen_range(hours.min(), hours.max(), 0.25) == (0.0, 28.75)
    assert bool(frame["amount"].skew() > 1.0) and not bool(frame["hour"].skew() > 1.0)


def test_null_rates_follow_the_reference_plus_tolerance() -> None:
    profile = reference_profile()
    strict = build_suite(SPEC, profile, ValidationSettings())
    lenient = build_suite(SPEC, profile, ValidationSettings(null_rate_tolerance=0.05))

    assert _kwargs(strict, "tip.not_null")["mostly"] == pytest.approx(0.9)
    assert _kwargs(lenient, "tip.not_null")["mostly"] == pytest.approx(0.85)
    # A column without nulls in the reference allows none, whatever the tolerance.
    assert "mostly" not in _kwargs(lenient, "amount.not_null")
    assert (
        allowed_null_rate(profile.column("amount"), ValidationSettings(null_rate_tolerance=0.5))
        == 0
    )
    assert lenient.by_name["amount.not_null"].scope is Scope.ROW


def test_category_sets_and_label_domain_come_from_the_reference() -> None:
    suite = build_suite(SPEC, reference_profile(), ValidationSettings())

    assert _kwargs(suite, "merchant.in_set")["value_set"] == list(MERCHANTS)
    assert _kwargs(suite, "country.in_set")["value_set"] == list(COUNTRIES)
    assert _kwargs(suite, "is_fraud.label_domain")["value_set"] == [0, 1]
    assert _kwargs(suite, "keys.unique")["column_list"] == ["customer_id", "event_timestamp"]


def test_the_suite_converts_to_a_gx_suite() -> None:
    suite = build_suite(SPEC, reference_profile(), ValidationSettings())

    gx_suite = suite.to_gx()

    assert gx_suite.name == suite.name
    assert len(gx_suite.expectations) == len(suite.expectations)
