"""The prediction service over real HTTP: answers, refusals, auth, metrics, routing.

One service (uvicorn on a free port, in a thread of this process) serves a registered
model with a champion and a challenger, an API key and an admin token; the Feast
online store of the session holds the batch's features for entity-key requests.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from mlops.rollout.state import RolloutStatus
from mlops.settings import Settings
from tests.serving_support import (  # noqa: F401  (fixtures)
    SPEC,
    Service,
    SmallModels,
    running_service,
    serving_models,
    serving_store,
)


@pytest.fixture(scope="module")
def service(serving_store: Settings, serving_models: SmallModels) -> Iterator[Service]:  # noqa: F811
    with running_service(serving_store, serving_models, "api") as running:
        yield running


def test_feature_rows_get_probabilities_version_variant_and_ids(service: Service) -> None:
    rows = service.models.rows(3)
    answer = service.predict({"instances": rows}, **{"X-Request-ID": "req-abc"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["request_id"] == "req-abc" == answer.headers["x-request-id"]
    assert body["model_name"] == service.name
    predictions = body["predictions"]
    assert [p["prediction_id"] for p in predictions] == ["req-abc-0", "req-abc-1", "req-abc-2"]
    for p, row in zip(predictions, rows, strict=True):
        assert (p["model_version"], p["variant"]) == ("1", "champion")
        assert set(p["probabilities"]) == {"0", "1"}
        assert math.isclose(sum(p["probabilities"].values()), 1.0, abs_tol=1e-5)
        expected = service.models.models[0].predict_proba_records([row])[0]
        assert p["probabilities"]["1"] == pytest.approx(expected[1], abs=1e-5)
        assert p["prediction"] == int(expected.argmax())


def test_entity_keys_read_features_from_the_online_store(service: Service) -> None:
    ids = service.models.entity_ids(4)
    answer = service.predict({"entities": [{SPEC.entity: i} for i in ids]})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["entity"] for p in predictions] == ids
    assert all(p["variant"] == "champion" for p in predictions)


BAD_REQUESTS: list[tuple[str, bytes, int, str, str | None]] = [
    ("malformed JSON", b'{"instances": [{"amount": 1', 400, "malformed_json", None),
    ("empty body", b"", 400, "malformed_json", None),
    ("neither mode", b"{}", 422, "invalid_body", "instances"),
    ("both modes", b'{"instances": [], "entities": []}', 422, "invalid_body", "entities"),
    ("empty batch", b'{"instances": []}', 422, "empty_batch", "instances"),
    ("not an array", b'{"instances": {"a": 1}}', 422, "wrong_type", "instances"),
    ("unknown top field", b'{"instances": [], "x": 1}', 422, "unknown_field", "x"),
]


@pytest.mark.parametrize(("case", "body", "status", "code", "field"), BAD_REQUESTS)
def test_bad_documents_get_a_specific_4xx(
    service: Service, case: str, body: bytes, status: int, code: str, field: str | None
) -> None:
    answer = service.raw(body)
    assert answer.status_code == status, (case, answer.text)
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field)


def test_bad_rows_are_refused_naming_the_field(service: Service) -> None:
    good = service.models.rows(4)
    numeric = service.models.schema.numeric[0]
    categorical = service.models.schema.categorical[0]

    def refused(rows: list[dict[str, Any]]) -> dict[str, Any]:
        answer = service.predict({"instances": rows})
        assert 400 <= answer.status_code < 500, answer.text
        error: dict[str, Any] = answer.json()["error"]
        return error

    unknown = [*good[:3], {**good[3], "colour": "red"}]
    assert refused(unknown)["field"] == "instances[3].colour"
    missing = [good[0], {k: v for k, v in good[1].items() if k != numeric}]
    assert (refused(missing)["code"], refused(missing)["field"]) == (
        "missing_feature",
        f"instances[1].{numeric}",
    )
    wrong = [good[0], good[1], {**good[2], numeric: "12.5"}]
    assert refused(wrong)["field"] == f"instances[2].{numeric}"
    assert refused([{**good[0], categorical: 7}])["field"] == f"instances[0].{categorical}"

    for token in (b"NaN", b"Infinity", b"-Infinity"):
        text = orjson.dumps({"instances": [good[0], {**good[1], numeric: 1.5}]})
        text = text.replace(b"1.5", token, 1)
        answer = service.raw(text)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("not_finite", f"instances[1].{numeric}")

    oversized = service.predict({"instances": good[:1] * 51})
    assert oversized.status_code == 413
    assert oversized.json()["error"]["field"] == "instances"


def test_unknown_entities_and_bad_keys_are_named(service: Service) -> None:
    known = service.models.entity_ids(1)[0]
    answer = service.predict({"entities": [{SPEC.entity: known}, {SPEC.entity: "card_none"}]})
    assert answer.status_code == 404, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_entity", f"entities[1].{SPEC.entity}")
    assert "card_none" in error["message"]
    answer = service.predict({"entities": [{SPEC.entity: 123}]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == f"entities[0].{SPEC.entity}"
    answer = service.predict({"entities": [{"customer": known}]})
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "entities[0].customer"


def test_no_bad_request_is_ever_a_500(service: Service) -> None:
    bodies = [
        b"null",
        b"[]",
        b'"text"',
        b"1e999",
        b'{"instances": [null]}',
        b'{"instances": [[1, 2]]}',
        b'{"entities": [null]}',
        b'{"entities": "card"}',
        b'{"instances": [{"amount": {"nested": [1, {"deep": NaN}]}}]}',
        b"\x00\x01\x02",
        b'{"instances": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    ]
    for body in bodies:
        answer = service.raw(body)
        assert 400 <= answer.status_code < 500, (body[:40], answer.status_code, answer.text)
        assert answer.json()["error"]["code"]
    wrong_type = service.client.post(
        "/v1/predict", content=b"{}", headers={"Content-Type": "text/csv"}
    )
    assert wrong_type.status_code == 415


def test_a_number_too_large_for_a_float_is_a_422_naming_the_field(service: Service) -> None:
    rows = service.models.rows(2)
    numeric = service.models.schema.numeric
    rows[1][numeric[0]] = 123456.789
    rows[1][numeric[1]] = 0.5  # a float beside the huge integer: the reported 500
    body = orjson.dumps({"instances": rows}).replace(b"123456.789", b"1" + b"0" * 400, 1)
    answer = service.raw(body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("out_of_range", f"instances[1].{numeric[0]}")


def test_a_body_over_the_limit_is_a_413_before_it_is_parsed(service: Service) -> None:
    limit = service.settings.serving.max_body_bytes
    big = b'{"instances": [' + b" " * limit + b"]}"

    def chunked() -> Iterator[bytes]:  # no Content-Length: refused as it grows past the limit
        yield big[:1000]
        yield big[1000:]

    json_type = {"Content-Type": "application/json"}
    for path in ("/v1/predict", "/v1/feedback"):
        for content in (big, chunked()):
            answer = service.client.post(path, content=content, headers=json_type)
            assert answer.status_code == 413, (path, answer.text)
            assert (answer.json()["error"]["code"], answer.json()["error"]["field"]) == (
                "body_too_large",
                "body",
            )
    for path in (f"/v2/models/{service.name}/infer", f"/v2/models/{service.name}/versions/2/infer"):
        for content in (big, chunked()):  # the protocol's error document
            answer = service.client.post(path, content=content, headers=json_type)
            assert answer.status_code == 413, (path, answer.text)
            assert "serving.max_body_bytes" in answer.json()["error"]
    paused = service.client.post(
        "/v1/admin/rollout/pause", content=big, headers={**json_type, **service.admin}
    )
    assert paused.status_code == 413


def test_api_key_is_enforced_on_prediction_endpoints(service: Service) -> None:
    row = service.models.rows(1)
    bare = httpx.Client(base_url=service.url, timeout=30)
    missing = bare.post("/v1/predict", json={"instances": row})
    assert missing.status_code == 401
    assert missing.json()["error"]["field"] == "X-API-Key"
    wrong = bare.post("/v1/predict", json={"instances": row}, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 403
    feedback = {"labels": [{"prediction_id": "x-0", "label": 1}]}
    assert bare.post("/v1/feedback", json=feedback).status_code == 401
    assert bare.get("/v1/models").status_code == 401
    for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert bare.get(open_path).status_code == 200, open_path


def test_admin_endpoints_need_the_bearer_token(service: Service) -> None:
    bare = httpx.Client(base_url=service.url, timeout=30)  # the API key is not enough
    for path in ("/v1/admin/reload", "/v1/admin/rollout/pause", "/v1/admin/rollout/resume"):
        missing = service.client.post(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = bare.post(path, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 403, path
    ok = bare.post("/v1/admin/reload", headers=service.admin)
    assert ok.status_code == 200
    assert ok.json()["report"]["error"] is None
    conflict = bare.post("/v1/admin/rollout/resume", headers=service.admin)
    assert conflict.status_code == 409  # no paused rollout
    assert conflict.json()["error"]["code"] == "rollout_conflict"


def test_models_shows_what_is_loaded_the_schema_and_the_split(service: Service) -> None:
    body = service.client.get("/v1/models").json()
    assert body["ready"] is True
    assert [(m["variant"], m["version"]) for m in body["models"]] == [
        ("champion", "1"),
        ("challenger", "2"),
    ]
    assert all(m["scheme"] == "fp32" and len(m["artifact_sha256"]) == 64 for m in body["models"])
    features = {f["name"]: f["type"] for f in body["input_schema"]["features"]}
    schema = service.models.schema
    assert features == {
        **dict.fromkeys(schema.numeric, "number"),
        **dict.fromkeys(schema.categorical, "string"),
    }
    assert body["input_schema"]["entity"] == SPEC.entity
    assert body["traffic"] == {"champion": 1.0, "challenger": 0.0, "shadow": False}
    assert body["rollout"]["status"] == "idle"


def test_sticky_routing_at_half_share_and_pause_resume(service: Service) -> None:
    service.set_rollout(challenger_version="2", status=RolloutStatus.RUNNING, stage=3, share=0.5)
    try:
        traffic = service.client.get("/v1/models").json()["traffic"]
        assert traffic == {"champion": 0.5, "challenger": 0.5, "shadow": False}
        ids = service.models.entity_ids(40)
        seen: dict[str, set[str]] = {}
        for _ in range(3):
            answer = service.predict({"entities": [{SPEC.entity: i} for i in ids]})
            assert answer.status_code == 200, answer.text
            for p in answer.json()["predictions"]:
                seen.setdefault(p["entity"], set()).add(f"{p['variant']} v{p['model_version']}")
        # one request per entity, with the entity in the feature row
        rows = service.models.rows(40)
        for i, entity in enumerate(ids):
            answer = service.predict({"instances": [{**rows[i], SPEC.entity: entity}]})
            p = answer.json()["predictions"][0]
            seen[entity].add(f"{p['variant']} v{p['model_version']}")
        assert all(len(variants) == 1 for variants in seen.values()), seen
        counts = {
            v: sum(1 for s in seen.values() if v in s) for v in ("champion v1", "challenger v2")
        }
        assert counts["champion v1"] > 5 and counts["challenger v2"] > 5, counts

        paused = service.client.post(
            "/v1/admin/rollout/pause", json={"reason": "checking"}, headers=service.admin
        )
        assert paused.status_code == 200 and paused.json()["status"] == "paused"
        answer = service.predict({"entities": [{SPEC.entity: i} for i in ids]})
        assert {p["variant"] for p in answer.json()["predictions"]} == {"champion"}
        resumed = service.client.post("/v1/admin/rollout/resume", headers=service.admin)
        assert resumed.status_code == 200 and resumed.json()["status"] == "running"
        answer = service.predict({"entities": [{SPEC.entity: i} for i in ids]})
        again = {
            p["entity"]: f"{p['variant']} v{p['model_version']}"
            for p in answer.json()["predictions"]
        }
        assert all(seen[e] == {v} for e, v in again.items())
    finally:
        service.set_rollout()


def test_shadow_scores_the_challenger_without_answering_with_it(service: Service) -> None:
    before = service.metric("mlops_serving_predictions_total", variant="challenger", shadow="true")
    service.set_rollout(challenger_version="2", status=RolloutStatus.RUNNING, shadow=True)
    try:
        rows = service.models.rows(20)
        for start in range(0, 20, 5):
            answer = service.predict({"instances": rows[start : start + 5]})
            assert {p["variant"] for p in answer.json()["predictions"]} == {"champion"}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = service.metric(
                "mlops_serving_predictions_total", variant="challenger", shadow="true"
            )
            if after - before >= 20:
                break
            time.sleep(0.05)
        assert after - before == 20
    finally:
        service.set_rollout()


def test_feedback_is_accepted_for_known_classes(service: Service) -> None:
    answer = service.predict({"instances": service.models.rows(2)})
    ids = [p["prediction_id"] for p in answer.json()["predictions"]]
    labels = {
        "labels": [{"prediction_id": ids[0], "label": 1}, {"prediction_id": ids[1], "label": "0"}]
    }
    accepted = service.client.post("/v1/feedback", json=labels)
    assert accepted.status_code == 202 and accepted.json()["accepted"] == 2
    wrong = service.client.post(
        "/v1/feedback", json={"labels": [{"prediction_id": ids[0], "label": 7}]}
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["field"] == "labels[0].label"


def test_metrics_count_requests_and_latency_per_version_and_variant(service: Service) -> None:
    labels = {"version": "1", "variant": "champion", "model": service.name}
    before = service.metric("mlops_serving_requests_total", status="ok", **labels)
    for _ in range(3):
        assert service.predict({"instances": service.models.rows(1)}).status_code == 200
    assert service.metric("mlops_serving_requests_total", status="ok", **labels) == before + 3
    text = service.client.get("/metrics").text
    bucket = re.compile(
        r'^mlops_serving_request_latency_seconds_bucket\{le="0\.01",model="[^"]+",'
        r'variant="champion",version="1"\} (\d+\.\d+)$',
        re.MULTILINE,
    )
    assert bucket.search(text), text[:2000]
    assert service.metric("mlops_serving_request_latency_seconds_count", **labels) >= before + 3
    assert service.metric("mlops_serving_http_responses_total", code="422") >= 1
    assert 'mlops_serving_model_info{model="' in text
    assert "mlops_prediction_log_submitted" in text


def test_openapi_documents_the_endpoints(service: Service) -> None:
    document = service.client.get("/openapi.json").json()
    paths = document["paths"]
    for path in ("/v1/predict", "/v1/feedback", "/v1/models", "/v1/admin/reload", "/healthz"):
        assert path in paths
    body = paths["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PredictRequest"}
    assert "PredictResponse" in document["components"]["schemas"]
    assert service.client.get("/docs").status_code == 200
