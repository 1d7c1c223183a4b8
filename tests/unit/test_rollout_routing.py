"""Champion/challenger routing: sticky per key, monotone across stages, and fair (its
per-call cost is a figure of benchmarks/hot_paths.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops.rollout.state import RolloutState, RolloutStatus, Variant
from serving.routing import Route, bucket, route

STAGES = (0.0, 0.05, 0.25, 0.5, 1.0)
KEYS = [f"card-{i}" for i in range(100_000)]


def running(share: float, version: str = "7", **fields: object) -> RolloutState:
    return RolloutState(
        model_name="card_fraud",
        challenger_version=version,
        status=RolloutStatus.RUNNING,
        stage=STAGES.index(share) if share in STAGES else 1,
        share=share,
        shadow=share == 0.0,
        **fields,  # type: ignore[arg-type]
    )


def on_challenger(state: RolloutState, keys: list[str] = KEYS) -> set[str]:
    return {k for k in keys if route(k, state, True).answer is Variant.CHALLENGER}


def test_a_key_always_gets_the_same_model() -> None:
    state = running(0.25)
    first = [route(k, state, True) for k in KEYS[:1_000]]
    again = [route(k, running(0.25), True) for k in KEYS[:1_000]]  # another replica's state
    assert first == again
    assert bucket("card_fraud", "7", "card-1") == bucket("card_fraud", "7", "card-1")


@pytest.mark.parametrize("share", [0.05, 0.25, 0.5])
def test_the_share_is_respected_over_100k_keys(share: float) -> None:
    observed = len(on_challenger(running(share))) / len(KEYS)
    tolerance = 4 * math.sqrt(share * (1 - share) / len(KEYS))  # 4 standard errors
    assert abs(observed - share) <= tolerance, (observed, share)


def test_routing_is_monotone_across_stages() -> None:
    previous: set[str] = set()
    for share in STAGES[1:]:
        current = on_challenger(running(share))
        assert previous <= current, f"keys left the challenger when the share grew to {share}"
        previous = current
    assert previous == set(KEYS)  # 100 %


def test_each_rollout_draws_its_own_keys() -> None:
    """The version salts the hash: the next rollout does not pick the same users."""
    first = on_challenger(running(0.25, version="7"))
    second = on_challenger(running(0.25, version="8"))
    overlap = len(first & second) / len(first)
    assert overlap == pytest.approx(0.25, abs=0.02)  # independent draws


def test_buckets_are_uniform() -> None:
    values = np.array([bucket("card_fraud", "7", k) for k in KEYS[:20_000]])
    assert values.min() >= 0.0 and values.max() < 1.0
    counts, _ = np.histogram(values, bins=10, range=(0.0, 1.0))
    assert counts.min() > 1_800 and counts.max() < 2_200


def test_shadow_answers_with_the_champion_and_mirrors_every_request() -> None:
    state = running(0.0)
    assert state.shadow
    assert {route(k, state, True) for k in KEYS[:1_000]} == {
        Route(Variant.CHAMPION, mirror_to_challenger=True)
    }


@pytest.mark.parametrize(
    "status",
    [RolloutStatus.PAUSED, RolloutStatus.IDLE, RolloutStatus.PROMOTED, RolloutStatus.ROLLED_BACK],
)
@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_a_rollout_that_is_not_running_sends_the_challenger_nothing(
    status: RolloutStatus, share: float
) -> None:
    state = running(share).model_copy(update={"status": status})
    routes = {route(k, state, True) for k in KEYS[:2_000]}
    assert routes == {Route(Variant.CHAMPION, mirror_to_challenger=False)}


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_a_replica_without_the_challenger_loaded_answers_with_the_champion(share: float) -> None:
    state = running(share)
    routes = {route(k, state, False) for k in KEYS[:2_000]}
    assert routes == {Route(Variant.CHAMPION, mirror_to_challenger=False)}


def test_no_challenger_version_means_champion() -> None:
    state = RolloutState(model_name="card_fraud", status=RolloutStatus.RUNNING, share=0.5)
    assert route("card-1", state, True) == Route(Variant.CHAMPION, mirror_to_challenger=False)
