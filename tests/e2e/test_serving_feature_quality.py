"""`/metrics` counts null, out-of-range and unseen feature values against the data contract."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from mlops.settings import QualitySettings, Settings
from mlops.validation import learn_profile, save_profile
from tests.serving_support import (  # noqa: F401  (fixtures)
    SPEC,
    ServerThread,
    SmallModels,
    register_model,
    serving_models,
    serving_store,
    unique_name,
    wait_ready,
    with_serving,
)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def service(
    serving_store: Settings,  # noqa: F811
    serving_models: SmallModels,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, str, SmallModels]]:
    name = unique_name("quality")
    settings = with_serving(serving_store, model_name=name, poll_interval_s=60.0)
    settings = settings.model_copy(
        update={"quality": QualitySettings(serving_dataset=f"{SPEC.name}-{name}")}
    )
    raw = serving_models.raw
    profile = learn_profile(SPEC, raw, "e" * 64).model_copy(
        update={"dataset": f"{SPEC.name}-{name}"}
    )
    save_profile(profile, settings)
    register_model(settings, name, serving_models, 0)
    with ServerThread(settings) as server:
        wait_ready(server.url)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client, name, serving_models


def test_metrics_count_nulls_and_out_of_range_values_per_feature(
    service: tuple[httpx.Client, str, SmallModels],
) -> None:
    client, name, models = service
    rows = models.rows(4)
    rows[0]["amount"] = None
    rows[1]["amount"] = None
    rows[2]["amount"] = 1e9  # a unit change
    rows[3]["merchant_category"] = "casino"
    rows[3]["channel"] = None
    answer = client.post("/v1/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text

    wanted = {
        ("mlops_feature_null_total", "amount"): 2.0,
        ("mlops_feature_out_of_range_total", "amount"): 1.0,
        ("mlops_feature_unseen_category_total", "merchant_category"): 1.0,
        ("mlops_feature_null_total", "channel"): 1.0,
    }
    deadline = time.monotonic() + 10.0  # counted right after the answer is sent
    while True:
        text = client.get("/metrics").text
        seen = {key: _metric(text, key[0], model=name, feature=key[1]) for key in wanted}
        if seen == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert seen == wanted, text[-3000:]
    assert _metric(text, "mlops_feature_rows_total", model=name) == 4.0
    assert _metric(text, "mlops_feature_out_of_range_total", model=name, feature="hour_of_day") == 0
    assert f'mlops_feature_null_total{{feature="hour_of_day",model="{name}"}} 0.0' in text
