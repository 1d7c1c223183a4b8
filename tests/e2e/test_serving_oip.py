"""The Open Inference Protocol (V2 REST) of the service, spoken by a real client.

The service of tests/e2e/test_serving_api.py (`running_service`: a champion v1 and a
challenger v2, an API key), reached with tritonclient's HTTP client: what it answers
for some rows must be what `/v1/predict` answers for the same rows, in both input forms
(one input per feature, or the numeric features as one tensor); refusals are checked
over plain HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from mlops.rollout.state import RolloutStatus
from mlops.settings import Settings
from serving.prediction_log import read_predictions
from tests.serving_support import (  # noqa: F401  (fixtures)
    API_KEY,
    SPEC,
    ServerThread,
    Service,
    SmallModels,
    running_service,
    serving_models,
    serving_store,
    unique_name,
    with_serving,
)

KEY = {"X-API-Key": API_KEY}
TENSOR = "numeric_features"


@pytest.fixture(scope="module")
def service(serving_store: Settings, serving_models: SmallModels) -> Iterator[Service]:  # noqa: F811
    with running_service(serving_store, serving_models, "oip") as running:
        yield running


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[triton.InferenceServerClient]:
    connection = triton.InferenceServerClient(service.url.removeprefix("http://"))
    yield connection
    connection.close()


def tensor(name: str, values: np.ndarray[Any, Any], datatype: str) -> triton.InferInput:
    found = triton.InferInput(name, list(values.shape), datatype)
    found.set_data_from_numpy(values, binary_data=False)
    return found


def columnar(service: Service, rows: list[dict[str, Any]]) -> list[triton.InferInput]:
    """One input per feature: numbers as FP64 `[rows, 1]`, categories as BYTES `[rows]`."""
    schema = service.models.schema
    inputs = [
        tensor(name, np.array([[row[name]] for row in rows], dtype=np.float64), "FP64")
        for name in schema.numeric
    ]
    return inputs + categories(service, rows)


def categories(service: Service, rows: list[dict[str, Any]]) -> list[triton.InferInput]:
    return [
        tensor(name, np.array([row[name] for row in rows], dtype=np.object_), "BYTES")
        for name in service.models.schema.categorical
    ]


def numeric_tensor(service: Service, rows: list[dict[str, Any]]) -> list[triton.InferInput]:
    """The numeric features as one FP32 `[rows, n]` tensor, in the metadata's order."""
    numeric = service.models.schema.numeric
    values = np.array([[row[name] for name in numeric] for row in rows], dtype=np.float32)
    return [tensor(TENSOR, values, "FP32"), *categories(service, rows)]


def v1_probabilities(service: Service, rows: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
    answer = service.predict({"instances": rows})
    assert answer.status_code == 200, answer.text
    return np.array(
        [[p["probabilities"][c] for c in ("0", "1")] for p in answer.json()["predictions"]],
        dtype=np.float32,
    )


def infer_http(service: Service, body: bytes, path: str | None = None) -> httpx.Response:
    return service.client.post(
        path or f"/v2/models/{service.name}/infer",
        content=body,
        headers={"Content-Type": "application/json"},
    )


def test_health_and_metadata_through_the_client(
    service: Service, client: triton.InferenceServerClient
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(service.name, headers=KEY)
    assert client.is_model_ready(service.name, "2", headers=KEY)
    assert not client.is_model_ready(service.name, "9", headers=KEY)
    assert not client.is_model_ready("another_model", headers=KEY)
    server = client.get_server_metadata()
    assert server["name"] == "mlops-serving" and server["extensions"] == []

    metadata = client.get_model_metadata(service.name, headers=KEY)
    schema = service.models.schema
    assert metadata["name"] == service.name and metadata["versions"] == ["1", "2"]
    assert metadata["inputs"] == [
        *({"name": n, "datatype": "FP32", "shape": [-1]} for n in schema.numeric),
        *({"name": n, "datatype": "BYTES", "shape": [-1]} for n in schema.categorical),
    ]
    outputs = {o["name"]: o for o in metadata["outputs"]}
    assert outputs["probabilities"]["shape"] == [-1, 2]
    assert orjson.loads(outputs["probabilities"]["parameters"]["classes"]) == [0, 1]
    assert outputs["prediction"]["datatype"] == "INT64"
    assert client.get_model_metadata(service.name, "2", headers=KEY)["inputs"] == metadata["inputs"]
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata(service.name, "9", headers=KEY)
    assert missing.value.status() == "404" and "'9'" in missing.value.message()


@pytest.mark.parametrize("form", [columnar, numeric_tensor], ids=["columnar", "tensor"])
def test_inference_answers_what_v1_answers(
    service: Service, client: triton.InferenceServerClient, form: Any
) -> None:
    rows = service.models.rows(5, offset=20)
    result = client.infer(service.name, form(service, rows), request_id="oip-1", headers=KEY)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (5, 2)
    np.testing.assert_array_equal(probabilities, v1_probabilities(service, rows))
    assert result.as_numpy("prediction").tolist() == probabilities.argmax(axis=1).tolist()
    assert result.as_numpy("model_version").tolist() == ["1"] * 5  # JSON BYTES: text
    response = result.get_response()
    assert (response["model_name"], response["model_version"]) == (service.name, "1")
    assert response["id"] == "oip-1" and response["parameters"]["request_id"]


def test_a_version_in_the_path_answers_every_row(
    service: Service, client: triton.InferenceServerClient
) -> None:
    """And its rows are logged `pinned` (not rollout or drift evidence: the client chose
    the model, not the router), counted in the metrics as any other."""
    labels = {"model": service.name, "version": "2", "variant": "challenger"}
    rows_scored = service.metric("mlops_serving_predictions_total", shadow="false", **labels)
    rows = service.models.rows(4)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=False)]
    result = client.infer(
        service.name, columnar(service, rows), model_version="2", outputs=outputs, headers=KEY
    )
    assert result.get_response()["model_version"] == "2"
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    expected = service.models.models[1].predict_proba_records(rows)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
    assert (
        service.metric("mlops_serving_predictions_total", shadow="false", **labels)
        == rows_scored + 4
    )

    routed = client.infer(service.name, columnar(service, rows[:1]), headers=KEY)
    pinned_id = result.get_response()["parameters"]["request_id"]
    routed_id = routed.get_response()["parameters"]["request_id"]
    log = service.app.service.recorder.log
    assert log is not None
    log.flush(timeout=30)
    logged = read_predictions(service.settings, model_name=service.name)
    mine = logged[logged["request_id"].isin([pinned_id, routed_id])]
    found = zip(mine["request_id"], mine["model_version"], mine["pinned"].tolist(), strict=True)
    assert sorted(found) == sorted([(pinned_id, "2", True)] * 4 + [(routed_id, "1", False)])


def test_metrics_and_the_log_count_inferences_as_predictions(
    service: Service, client: triton.InferenceServerClient
) -> None:
    labels = {"model": service.name, "version": "1", "variant": "champion"}
    requests = service.metric("mlops_serving_requests_total", status="ok", **labels)
    rows_scored = service.metric("mlops_serving_predictions_total", shadow="false", **labels)
    logged = service.metric("mlops_prediction_log_submitted")
    client.infer(service.name, columnar(service, service.models.rows(3)), headers=KEY)
    assert service.metric("mlops_serving_requests_total", status="ok", **labels) == requests + 1
    assert (
        service.metric("mlops_serving_predictions_total", shadow="false", **labels)
        == rows_scored + 3
    )
    assert service.metric("mlops_prediction_log_submitted") == logged + 3
    route = "/v2/models/{name}/infer"
    assert service.metric("mlops_serving_http_responses_total", route=route, code="200") >= 1


def test_the_canary_routes_an_entity_as_v1_does(
    service: Service, client: triton.InferenceServerClient
) -> None:
    service.set_rollout(challenger_version="2", status=RolloutStatus.RUNNING, stage=3, share=0.5)
    try:
        ids = service.models.entity_ids(30)
        rows = service.models.rows(30)
        versions = set()
        for entity, row in zip(ids, rows, strict=True):
            v1 = service.predict({"instances": [{**row, SPEC.entity: entity}]})
            key = tensor(SPEC.entity, np.array([entity], dtype=np.object_), "BYTES")
            result = client.infer(service.name, [*columnar(service, [row]), key], headers=KEY)
            version = result.get_response()["model_version"]
            assert version == v1.json()["predictions"][0]["model_version"], entity
            versions.add(version)
        assert versions == {"1", "2"}
    finally:
        service.set_rollout()


def good_document(service: Service, rows: int = 2) -> dict[str, Any]:
    inputs = []
    for name in service.models.schema.numeric:
        inputs.append({"name": name, "shape": [rows], "datatype": "FP64", "data": [1.5] * rows})
    for name in service.models.schema.categorical:
        inputs.append({"name": name, "shape": [rows], "datatype": "BYTES", "data": ["x"] * rows})
    return {"inputs": inputs}


def test_bad_requests_get_a_400_naming_the_input_and_the_row(service: Service) -> None:
    good = good_document(service)
    assert infer_http(service, orjson.dumps(good)).status_code == 200
    numeric = service.models.schema.numeric[0]

    def refused(document: dict[str, Any] | bytes, *named: str) -> None:
        body = document if isinstance(document, bytes) else orjson.dumps(document)
        answer = infer_http(service, body)
        assert answer.status_code == 400, answer.text
        error = answer.json()
        assert set(error) == {"error"} and isinstance(error["error"], str)
        for word in named:
            assert word in error["error"], (word, error)

    unknown = {"inputs": [*good["inputs"], {**good["inputs"][0], "name": "colour"}]}
    refused(unknown, "'colour'")
    first = good["inputs"][0]
    refused({"inputs": [{**first, "shape": [3]}, *good["inputs"][1:]]}, repr(numeric), "3")
    refused({"inputs": [{**first, "datatype": "BYTES"}, *good["inputs"][1:]]}, repr(numeric))
    refused({"inputs": [{**first, "data": [1.5, "2"]}, *good["inputs"][1:]]}, "row 1")
    refused({"inputs": good["inputs"][1:]}, repr(numeric))
    nan = orjson.dumps(good).replace(b"1.5", b"NaN", 1)
    refused(nan, repr(numeric), "row 0", "NaN")
    refused(b'{"inputs": [', "not valid JSON")


def test_unknown_models_versions_keys_and_sizes(
    service: Service, client: triton.InferenceServerClient
) -> None:
    body = orjson.dumps(good_document(service))
    for path, status in (
        ("/v2/models/another_model/infer", 404),
        (f"/v2/models/{service.name}/versions/9/infer", 404),
    ):
        answer = infer_http(service, body, path)
        assert answer.status_code == status and set(answer.json()) == {"error"}, answer.text
    bare = httpx.post(f"{service.url}/v2/models/{service.name}/infer", content=body)
    assert bare.status_code == 401 and set(bare.json()) == {"error"}
    assert httpx.get(f"{service.url}/v2/models/{service.name}").status_code == 401
    too_many = orjson.dumps(good_document(service, rows=51))
    assert infer_http(service, too_many).status_code == 413
    assert httpx.get(f"{service.url}/v2/nothing").json().keys() == {"error"}

    binary = service.models.rows(1)
    inputs = columnar(service, binary)
    inputs[0].set_data_from_numpy(np.array([[binary[0][inputs[0].name()]]]), binary_data=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer(service.name, inputs, headers=KEY)
    assert caught.value.status() == "400" and "binary" in caught.value.message()


def test_a_failing_model_is_a_500_in_the_protocols_words(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = service.app.service.manager.snapshot.champion
    assert champion is not None

    def broken(*_: object) -> None:
        raise RuntimeError("weights on fire")

    monkeypatch.setattr(champion.model, "predict_proba_arrays", broken)
    answer = infer_http(service, orjson.dumps(good_document(service)))
    assert answer.status_code == 500
    assert answer.json() == {"error": "the model failed: weights on fire"}


def test_no_bad_inference_request_is_ever_a_500(service: Service) -> None:
    bodies = [
        b"null",
        b"[]",
        b"{}",
        b'{"inputs": []}',
        b'{"inputs": [null]}',
        b'{"inputs": [{"name": 1}]}',
        b'{"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": []}]}',
        b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP99", "data": [1]}]}',
        b'{"inputs": [{"name": "' + TENSOR.encode() + b'", "shape": [1, 1], '
        b'"datatype": "FP32", "data": [[[1]]]}]}',
        b'{"inputs": [], "outputs": [{"name": "logits"}]}',
        b'{"id": 7, "inputs": []}',
        b"\x00\x01",
        b'{"inputs": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    ]
    for body in bodies:
        answer = infer_http(service, body)
        assert 400 <= answer.status_code < 500, (body[:60], answer.status_code, answer.text)
        assert isinstance(answer.json()["error"], str)


def test_a_service_without_a_champion_is_alive_not_ready(serving_store: Settings) -> None:  # noqa: F811
    name = unique_name("oip_empty")
    with ServerThread(with_serving(serving_store, model_name=name)) as server:
        url = f"{server.url}/v2"
        assert httpx.get(f"{url}/health/live").status_code == 200
        assert httpx.get(f"{url}/health/ready").status_code == 400
        ready = httpx.get(f"{url}/models/{name}/ready")
        assert (ready.status_code, ready.content) == (400, b"")
        assert httpx.get(f"{url}/models/another/ready").status_code == 404
        for answer in (
            httpx.get(f"{url}/models/{name}"),
            httpx.post(f"{url}/models/{name}/infer", json={"inputs": []}),
        ):
            assert answer.status_code == 503 and "no champion" in answer.json()["error"]


def test_openapi_documents_the_v2_operations(service: Service) -> None:
    paths = service.client.get("/openapi.json").json()["paths"]
    infer = paths["/v2/models/{name}/infer"]["post"]
    body = infer["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/InferRequest"}
    assert {"200", "400", "404", "413", "503"} <= set(infer["responses"])
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}/ready"):
        assert "get" in paths[path], path
    assert set(paths["/v2/models/{name}/versions/{version}"]["get"]["responses"]) == {
        "200",
        "401",
        "403",
        "404",
        "503",
    }
