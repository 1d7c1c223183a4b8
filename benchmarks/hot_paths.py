"""Per-call costs on the paths that run for every request or every monitor window.

* `serving.routing.route`: one call per prediction (sticky champion/challenger split),
  beside a bare `hashlib.blake2b` of the same key, the least any sticky split costs;
* `serving.validation.validate_instances`: the per-row checks of a 256-row predict
  request under the data contract (types, the float32 range, nulls where the contract
  allows none), beside `orjson.loads` of the same body, which every request pays anyway;
* `mlops.quality.check_quality`: the monitor's data-contract check of a 10,000-row
  window of card-fraud traffic (typed columns, and all-object columns as mixed JSON
  reads back), beside `DataFrame.describe()` of the same window, the cheapest summary
  a hand-written check would start from.

Run from the repository root: `.venv/bin/python benchmarks/hot_paths.py`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from mlops.dataset_spec import load_spec
from mlops.quality import check_quality
from mlops.rollout.state import RolloutState, RolloutStatus
from mlops.settings import QualitySettings, ValidationSettings
from mlops.synthetic import Scenario, generate
from mlops.validation.profile import learn_profile
from mlops.validation.suite import never_null_columns
from serving.routing import route
from serving.validation import InputSchema, validate_instances

SPEC = Path("datasets/card_fraud.yaml")


def _per_call(action: Callable[[], object], calls: int) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        action()
    return (time.perf_counter() - began) / calls


def main() -> None:
    state = RolloutState(
        model_name="card_fraud",
        challenger_version="7",
        status=RolloutStatus.RUNNING,
        stage=2,
        share=0.25,
    )
    keys = [f"card-{i}" for i in range(50_000)]
    began = time.perf_counter()
    for key in keys:
        route(key, state, True)
    routed = (time.perf_counter() - began) / len(keys)
    began = time.perf_counter()
    for key in keys:
        hashlib.blake2b(key.encode(), digest_size=8).digest()
    hashed = (time.perf_counter() - began) / len(keys)

    spec = load_spec(SPEC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    profile = learn_profile(spec, generate(Scenario.BASELINE, 20_000, start, seed=0), "f" * 64)
    window = generate(Scenario.BASELINE, 10_000, start, seed=1)
    features = list(profile.feature_schema.numeric) + list(profile.feature_schema.categorical)
    typed, mixed = window[features], window[features].astype(object)
    validation, quality = ValidationSettings(), QualitySettings()
    schema = InputSchema(
        numeric=profile.feature_schema.numeric,
        categorical=profile.feature_schema.categorical,
        entity=spec.entity,
        never_null=never_null_columns(profile, validation),
    )
    body = orjson.dumps({"instances": window[features].head(256).to_dict("records")})
    instances = orjson.loads(body)["instances"]
    rows = [
        ("route() per prediction", routed, hashed, "blake2b of the key"),
        (
            "validate_instances, per row of 256",
            _per_call(lambda: validate_instances(instances, schema), 2_000) / 256,
            _per_call(lambda: orjson.loads(body), 2_000) / 256,
            "orjson.loads, per row",
        ),
        (
            "check_quality, 10k rows typed",
            _per_call(lambda: check_quality(profile, typed, validation, quality), 5),
            _per_call(lambda: typed.describe(include="all"), 5),
            "describe()",
        ),
        (
            "check_quality, 10k rows as JSON objects",
            _per_call(lambda: check_quality(profile, mixed, validation, quality), 5),
            _per_call(lambda: mixed.describe(include="all"), 5),
            "describe()",
        ),
    ]
    print(f"{'path':42s} {'ours':>10s} {'baseline':>10s} {'ratio':>7s}  baseline is")  # noqa: T201
    for name, ours, base, what in rows:
        print(  # noqa: T201
            f"{name:42s} {_fmt(ours):>10s} {_fmt(base):>10s} {ours / base:6.1f}x  {what}"
        )


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"


if __name__ == "__main__":
    main()
