"""Served features against the data contract learned at ingestion: a null where the contract
allows none is refused (or, with `serving.impute_nulls`, imputed and flagged), and `/metrics`
counts null, out-of-range and unseen values per feature."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mlops.settings import Settings
from tests.serving_support import (  # noqa: F401  (fixtures)
    ServerThread,
    SmallModels,
    register_model,
    serving_models,
    serving_store,
    unique_name,
    wait_ready,
    with_contract,
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


Served = tuple[httpx.Client, str, SmallModels]


@contextlib.contextmanager
def _serve_with_contract(
    store: Settings, models: SmallModels, impute_nulls: bool
) -> Iterator[Served]:
    """A service whose model's data contract (learned from the batch) has no null anywhere."""
    name = unique_name("quality")
    settings = with_serving(store, model_name=name, poll_interval_s=60.0, impute_nulls=impute_nulls)
    settings = with_contract(settings, models)
    register_model(settings, name, models, 0)
    with ServerThread(settings) as server:
        wait_ready(server.url)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client, name, models


@pytest.fixture(scope="module")
def service(serving_store: Settings, serving_models: SmallModels) -> Iterator[Served]:  # noqa: F811
    """Nulls the contract forbids are imputed (`serving.impute_nulls`), and flagged."""
    with _serve_with_contract(serving_store, serving_models, impute_nulls=True) as served:
        yield served


@pytest.fixture(scope="module")
def strict_service(serving_store: Settings, serving_models: SmallModels) -> Iterator[Served]:  # noqa: F811
    """The default: a null the contract forbids is refused."""
    with _serve_with_contract(serving_store, serving_models, impute_nulls=False) as served:
        yield served


def test_a_null_the_contract_forbids_is_refused_naming_the_field(strict_service: Served) -> None:
    client, name, models = strict_service
    rows = models.rows(3)
    rows[2]["amount"] = None
    answer = client.post("/v1/predict", json={"instances": rows})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("null_not_allowed", "instances[2].amount")
    features = client.get("/v1/models").json()["input_schema"]["features"]
    assert {f["name"]: f["nullable"] for f in features}["amount"] is False
    assert client.post("/v1/predict", json={"instances": rows[:2]}).status_code == 200


def test_imputed_nulls_are_flagged_and_counted_with_out_of_range_values_per_feature(
    service: Served,
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
    imputed = [p["imputed"] for p in answer.json()["predictions"]]
    assert imputed == [["amount"], ["amount"], [], ["channel"]]

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


def _infer(
    client: httpx.Client, name: str, rows: list[dict[str, Any]], models: SmallModels
) -> httpx.Response:
    """`POST /v2/models/{name}/infer` of the rows, one input per feature."""
    schema = models.schema
    inputs = [
        {"name": n, "datatype": "FP64", "shape": [len(rows)], "data": [r[n] for r in rows]}
        for n in schema.numeric
    ] + [
        {"name": n, "datatype": "BYTES", "shape": [len(rows)], "data": [r[n] for r in rows]}
        for n in schema.categorical
    ]
    return client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})


def test_v2_refuses_a_null_the_contract_forbids_at_its_value(strict_service: Served) -> None:
    client, name, models = strict_service
    rows = models.rows(3)
    rows[2]["amount"] = None
    answer = _infer(client, name, rows, models)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]
    column = models.schema.numeric.index("amount")
    assert message.startswith(
        f"inputs[{column}].data[2]: input 'amount', row 2: null is not allowed"
    )
    assert _infer(client, name, rows[:2], models).status_code == 200


def test_v2_imputes_and_flags_nulls_with_impute_nulls(service: Served) -> None:
    client, name, models = service
    rows = models.rows(3)
    rows[0]["amount"] = None
    rows[2]["channel"] = None
    answer = _infer(client, name, rows, models)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["imputed"]["data"] == ["amount", "", "channel"]
