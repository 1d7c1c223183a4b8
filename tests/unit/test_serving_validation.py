"""Request validation of the prediction service: every refusal names its field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from serving.auth import check_admin, check_api_key
from serving.errors import RequestError
from serving.json_values import parse_json
from serving.validation import (
    InputSchema,
    PredictInput,
    split_predict,
    validate_entities,
    validate_feedback,
    validate_instances,
)
from tests.serving_support import registry_settings

SCHEMA = InputSchema(numeric=("amount", "hour"), categorical=("channel",), entity="card_id")


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"amount": 12.5, "hour": 3, "channel": "pos"}
    base.update(overrides)
    return base


def check_instances(document: Any, max_rows: int = 10) -> PredictInput:
    """What `PredictionService.predict` does with a feature-rows document."""
    mode, items = split_predict(document, max_rows)
    assert mode == "instances"
    return validate_instances(items, SCHEMA)


def refused(body: bytes | Any, max_rows: int = 10) -> RequestError:
    document = parse_json(body) if isinstance(body, bytes) else body
    with pytest.raises(RequestError) as caught:
        check_instances(document, max_rows)
    return caught.value


def test_valid_rows_pass_with_nulls_ints_and_the_entity() -> None:
    rows = [row(), row(amount=None, channel=None), row(card_id="card_1"), row(card_id=7)]
    checked = check_instances({"instances": rows})
    assert checked.mode == "instances"
    assert checked.rows is rows
    assert checked.entities == [None, None, "card_1", 7]


@pytest.mark.parametrize(
    ("rows", "status", "code", "field"),
    [
        ([row(), row(colour="red")], 422, "unknown_feature", "instances[1].colour"),
        ([{"hour": 1, "channel": "pos"}], 422, "missing_feature", "instances[0].amount"),
        ([row(amount="12.5")], 422, "wrong_type", "instances[0].amount"),
        ([row(amount=True)], 422, "wrong_type", "instances[0].amount"),
        ([row(amount=[1.0])], 422, "wrong_type", "instances[0].amount"),
        ([row(channel=3)], 422, "wrong_type", "instances[0].channel"),
        ([row(amount=10**60)], 422, "out_of_range", "instances[0].amount"),
        ([row(card_id={"id": 1})], 422, "wrong_type", "instances[0].card_id"),
        ([row(), "not a row"], 422, "wrong_type", "instances[1]"),
        ([], 422, "empty_batch", "instances"),
        ([row()] * 11, 413, "too_many_rows", "instances"),
    ],
)
def test_bad_rows_are_refused_naming_the_field(
    rows: list[Any], status: int, code: str, field: str
) -> None:
    error = refused({"instances": rows})
    assert (error.status, error.code, error.field) == (status, code, field)
    assert error.message.startswith(field)
    body = orjson.loads(error.body("req-1"))
    assert body["error"]["field"] == field and body["request_id"] == "req-1"


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_numbers_are_refused_at_their_field(token: bytes) -> None:
    body = b'{"instances": [{"amount": 1.0, "hour": 2, "channel": "pos"}, {"amount": %s, '
    body = body % token + b'"hour": 1, "channel": "web"}]}'
    error = refused(body)
    assert (error.status, error.code, error.field) == (422, "not_finite", "instances[1].amount")


def test_malformed_json_is_a_400() -> None:
    for body in (b'{"instances": [', b"", b"\xff\xfe", b'{"instances": [1,]}'):
        with pytest.raises(RequestError) as caught:
            parse_json(body)
        assert (caught.value.status, caught.value.code) == (400, "malformed_json")


@pytest.mark.parametrize(
    ("document", "code", "field"),
    [
        ({}, "invalid_body", "instances"),
        ({"instances": [row()], "entities": [{"card_id": "a"}]}, "invalid_body", "entities"),
        ({"instances": [row()], "extra": 1}, "unknown_field", "extra"),
        ({"instances": {"amount": 1}}, "wrong_type", "instances"),
        ([row()], "invalid_body", "body"),
    ],
)
def test_the_document_shape_is_checked(document: Any, code: str, field: str) -> None:
    error = refused(document)
    assert (error.status, error.code, error.field) == (422, code, field)


def test_every_issue_is_listed_up_to_a_bound() -> None:
    error = refused({"instances": [row(amount="x"), row(hour="y", colour=1)]})
    fields = [issue.field for issue in error.issues]
    assert fields == ["instances[0].amount", "instances[1].colour", "instances[1].hour"]
    assert "(and 2 more)" in error.message


def test_entity_rows_are_checked_against_the_key_type() -> None:
    ok = validate_entities([{"card_id": "a"}, {"card_id": "b"}], "card_id", "string")
    assert ok.entities == ["a", "b"] and ok.rows == []
    cases = [
        ([{"card_id": 5}], "string", "wrong_type", "entities[0].card_id"),
        ([{"card_id": "5"}], "int64", "wrong_type", "entities[0].card_id"),
        ([{"card": "a"}], "string", "unknown_key", "entities[0].card"),
        ([{}], "string", "missing_key", "entities[0].card_id"),
        ([{"card_id": ""}], "string", "wrong_type", "entities[0].card_id"),
    ]
    for items, kind, code, field in cases:
        with pytest.raises(RequestError) as caught:
            validate_entities(items, "card_id", kind)  # type: ignore[arg-type]
        assert (caught.value.code, caught.value.field) == (code, field)


def test_feedback_is_validated() -> None:
    labels = validate_feedback(
        {"labels": [{"prediction_id": "r-0", "label": 1}, {"prediction_id": "r-1", "label": "0"}]},
        10,
        frozenset({"0", "1"}),
    )
    assert [(x.prediction_id, x.label) for x in labels] == [("r-0", "1"), ("r-1", "0")]
    cases = [
        ({"labels": []}, "empty_batch", "labels"),
        ({"labels": [{"prediction_id": "r-0", "label": 2}]}, "unknown_class", "labels[0].label"),
        ({"labels": [{"label": 1}]}, "missing_key", "labels[0].prediction_id"),
        ({"labels": [{"prediction_id": "r", "label": 1.5}]}, "wrong_type", "labels[0].label"),
        ({"labels": [{"prediction_id": "r", "label": 1, "x": 1}]}, "unknown_field", "labels[0].x"),
        ({"label": []}, "unknown_field", "label"),
    ]
    for document, code, field in cases:
        with pytest.raises(RequestError) as caught:
            validate_feedback(document, 10, frozenset({"0", "1"}))
        assert (caught.value.status, caught.value.code, caught.value.field) == (422, code, field)


def test_credentials_answer_401_when_missing_and_403_when_wrong(tmp_path: Any) -> None:
    settings = registry_settings(tmp_path, api_key="k3y")
    check_api_key(settings, "k3y")
    for given, status in ((None, 401), ("", 401), ("nope", 403)):
        with pytest.raises(RequestError) as caught:
            check_api_key(settings, given)
        assert caught.value.status == status
    check_api_key(registry_settings(tmp_path), None)  # no key configured: open

    token = settings.admin_token.get_secret_value()
    check_admin(settings, f"Bearer {token}")
    for header, status in ((None, 401), ("Basic abc", 401), ("Bearer wrong", 403)):
        with pytest.raises(RequestError) as caught:
            check_admin(settings, header)
        assert caught.value.status == status
    with pytest.raises(RequestError) as caught:
        check_admin(settings, None)
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


HUGE_INTEGER = b"1" + b"0" * 400
"""An integer literal of 401 digits: no float holds it (the reported 500)."""


@pytest.mark.parametrize("digits", [HUGE_INTEGER, b"1" + b"0" * 5000])
def test_an_integer_too_large_for_a_float_is_refused_at_its_field(digits: bytes) -> None:
    body = b'{"instances": [{"amount": 1.5, "hour": 2.5, "channel": "pos"}, {"amount": %s, '
    body = body % digits + b'"hour": 1.5, "channel": "web"}]}'
    error = refused(body)
    assert (error.status, error.code, error.field) == (422, "out_of_range", "instances[1].amount")
    assert "digits" in error.message and len(error.message) < 200


CONTRACT = InputSchema(
    numeric=("amount", "hour"),
    categorical=("channel",),
    entity="card_id",
    never_null=frozenset({"amount", "channel"}),
)
"""The data contract says `amount` and `channel` are never null; `hour` may be."""


def test_a_null_the_contract_forbids_is_refused_naming_the_field() -> None:
    rows = [row(hour=None), row(amount=None), row(channel=None)]
    with pytest.raises(RequestError) as caught:
        validate_instances(rows, CONTRACT)
    error = caught.value
    assert (error.status, error.code) == (422, "null_not_allowed")
    fields = [issue.field for issue in error.issues]
    assert fields == [error.field, "instances[2].channel"] == ["instances[1].amount", fields[1]]
    assert validate_instances([row(hour=None)], CONTRACT).imputed == {}


def test_imputing_nulls_the_contract_forbids_flags_each_row() -> None:
    rows = [row(), row(amount=None, hour=None), row(channel=None, amount=None)]
    checked = validate_instances(rows, CONTRACT, impute_nulls=True)
    assert checked.imputed == {1: ["amount"], 2: ["amount", "channel"]}
