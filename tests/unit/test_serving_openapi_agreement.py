"""The hand validators (`serving.validation`) and the documented models
(`serving.openapi_models`) agree.

The OpenAPI document is all a client sees, but requests are checked by hand: the two
could drift apart silently. Walking a valid request alongside its model's JSON schema,
every field is given a value of each JSON type: one the model does not document must be
refused with a 4xx naming that field (and the pydantic model refuses it too); each type
it documents must be accepted at some field it documents (the validator narrows a
feature value to the served model's numeric or categorical features). Required fields,
nullable ones and closed objects are checked the same way, and every refusal's body has
the documented error shape. The Open Inference Protocol's inference request
(`serving.oip_validation`, documented by `InferRequest`) is walked the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from serving.errors import RequestError
from serving.oip import refused
from serving.oip_validation import parse_infer
from serving.openapi_models import (
    ERROR_RESPONSES,
    INFER_ERRORS,
    ErrorResponse,
    FeedbackRequest,
    InferRequest,
    OipErrorResponse,
    PredictRequest,
)
from serving.validation import (
    InputSchema,
    split_predict,
    validate_entities,
    validate_feedback,
    validate_instances,
)

SCHEMA = InputSchema(numeric=("amount", "hour"), categorical=("channel",), entity="card_id")
MAX_ROWS = 10
SAMPLES: dict[str, Any] = {
    "integer": 7,
    "number": 1.5,
    "string": "card_1",
    "null": None,
    "boolean": True,
    "array": [1.0],
    "object": {"k": 1},
}
"""One JSON value of each type (an "integer" is a "number" too)."""

Path = tuple[str | int, ...]


def predict(document: Any) -> object:
    """The service's predict path: the document's shape, then rows or entity keys."""
    mode, items = split_predict(document, MAX_ROWS)
    if mode == "instances":
        return validate_instances(items, SCHEMA)
    return validate_entities(items, "card_id", None)


def feedback(document: Any) -> object:
    return validate_feedback(document, MAX_ROWS, None)


def infer(document: Any) -> object:
    return parse_infer(document, SCHEMA, MAX_ROWS)


def documented_v1(error: RequestError) -> None:
    assert error.status in ERROR_RESPONSES
    ErrorResponse.model_validate_json(error.body("req-1"), strict=True)


def documented_oip(error: RequestError) -> None:
    assert error.status in INFER_ERRORS
    OipErrorResponse.model_validate_json(refused(error, "req-1").body, strict=True)


@dataclass(frozen=True)
class Case:
    model: type[BaseModel]
    validate: Callable[[Any], object]
    document: dict[str, Any]
    """A valid request, holding every field the model documents (one predict mode each)."""
    documented: Callable[[RequestError], None] = documented_v1
    """Asserts that a refusal is documented: its status and its body."""


CASES = {
    "predict-instances": Case(
        PredictRequest,
        predict,
        {"instances": [{"amount": 1.5, "hour": 7, "channel": "pos", "card_id": "card_1"}]},
    ),
    "predict-entities": Case(PredictRequest, predict, {"entities": [{"card_id": "card_1"}]}),
    "feedback": Case(FeedbackRequest, feedback, {"labels": [{"prediction_id": "r-0", "label": 1}]}),
}
OIP_CASES = {
    "infer-columnar": Case(
        InferRequest,
        infer,
        {
            "id": "req-1",
            "parameters": {"content_type": "np"},
            "inputs": [
                {
                    "name": "amount",
                    "shape": [1, 1],
                    "datatype": "FP64",
                    "data": [[1.5]],
                    "parameters": {"content_type": "np"},
                },
                {"name": "hour", "shape": [1], "datatype": "INT64", "data": [7]},
                {"name": "channel", "shape": [1], "datatype": "BYTES", "data": ["pos"]},
                {"name": "card_id", "shape": [1], "datatype": "BYTES", "data": ["card_1"]},
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": False}}],
        },
        documented_oip,
    ),
    "infer-tensor": Case(
        InferRequest,
        infer,
        {
            "inputs": [
                {
                    "name": "numeric_features",
                    "shape": [1, 2],
                    "datatype": "FP32",
                    "data": [[1.5, 7]],
                },
                {"name": "channel", "shape": [1], "datatype": "BYTES", "data": ["pos"]},
            ]
        },
        documented_oip,
    ),
}
ALL_CASES = {**CASES, **OIP_CASES}


# --- the JSON schema, walked along a document -------------------------------------------


def json_schema(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's JSON schema as the OpenAPI document shows it, and its definitions."""
    schema = model.model_json_schema()
    return schema, schema.get("$defs", {})


def resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return defs[ref.rsplit("/", 1)[-1]] if ref else node


def members(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a node (itself when it is not an `anyOf`)."""
    node = resolve(node, defs)
    return [resolve(m, defs) for m in node.get("anyOf", [node])]


def documented_types(node: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    types = {m["type"] for m in members(node, defs)}
    return types | {"integer"} if "number" in types else types


def join(pattern: str, key: str) -> str:
    return f"{pattern}.{key}" if pattern else key


def field_name(path: Path) -> str:
    """The field as the validator names it: `instances[0].amount`, `body` for the root."""
    name = ""
    for part in path:
        name = f"{name}[{part}]" if isinstance(part, int) else join(name, part)
    return name or "body"


@dataclass(frozen=True)
class Position:
    """A field of a document: where it is, and what the model documents there."""

    path: Path
    node: dict[str, Any]
    pattern: str
    """The documented field: `instances[].*` for any feature of any row."""


def positions(
    value: Any, node: dict[str, Any], defs: dict[str, Any], path: Path = (), pattern: str = ""
) -> Iterator[Position]:
    yield Position(path, node, pattern or "body")
    for member in members(node, defs):
        if isinstance(value, dict) and member["type"] == "object":
            documented = member.get("properties", {})
            for key, item in value.items():
                sub = documented.get(key, member.get("additionalProperties"))
                where = key if key in documented else "*"
                yield from positions(item, sub, defs, (*path, key), join(pattern, where))
        elif isinstance(value, list) and member["type"] == "array":
            for i, item in enumerate(value):
                yield from positions(item, member["items"], defs, (*path, i), pattern + "[]")


def documented_fields(node: dict[str, Any], defs: dict[str, Any], pattern: str = "") -> set[str]:
    """Every field pattern the schema documents."""
    found = {pattern or "body"}
    for member in members(node, defs):
        for key, sub in member.get("properties", {}).items():
            found |= documented_fields(sub, defs, join(pattern, key))
        extra = member.get("additionalProperties")
        if isinstance(extra, dict):
            found |= documented_fields(extra, defs, join(pattern, "*"))
        if "items" in member:
            found |= documented_fields(member["items"], defs, pattern + "[]")
    return found


def at(document: Any, path: Path) -> Any:
    for part in path:
        document = document[part]
    return document


def replaced(document: Any, path: Path, value: Any) -> Any:
    """A copy of the document with the value at `path` replaced (the root when empty)."""
    if not path:
        return value
    out = copy.deepcopy(document)
    at(out, path[:-1])[path[-1]] = value
    return out


def without(document: Any, path: Path, key: str) -> Any:
    out = copy.deepcopy(document)
    del at(out, path)[key]
    return out


# --- checks -------------------------------------------------------------------------------


def reaches(loc: tuple[str | int, ...], path: Path) -> bool:
    """A pydantic error's location is at `path` (or below it); the labels pydantic puts in
    for the members of a union (`data[0].list[...][1].bool`) are skipped."""
    rest = iter(loc)
    return all(any(part == step for part in rest) for step in path)


def assert_refused(case: Case, document: Any, path: Path) -> None:
    """The validator answers a 4xx naming the field; the documented model refuses it too."""
    with pytest.raises(RequestError) as caught:
        case.validate(document)
    error = caught.value
    assert 400 <= error.status < 500
    assert error.field == field_name(path), (document, error.message)
    case.documented(error)
    with pytest.raises(ValidationError) as invalid:
        case.model.model_validate(document, strict=True)
    assert any(reaches(e["loc"], path) for e in invalid.value.errors())


def accepts(case: Case, document: Any) -> bool:
    try:
        case.validate(document)
    except RequestError:
        return False
    return True


@pytest.mark.parametrize("case", ALL_CASES.values(), ids=ALL_CASES.keys())
def test_the_valid_request_is_documented_and_accepted(case: Case) -> None:
    case.model.model_validate(case.document, strict=True)
    case.validate(case.document)


@pytest.mark.parametrize("case", ALL_CASES.values(), ids=ALL_CASES.keys())
def test_an_undocumented_type_is_refused_naming_the_field(case: Case) -> None:
    schema, defs = json_schema(case.model)
    checked = 0
    for position in positions(case.document, schema, defs):
        for kind in SAMPLES.keys() - documented_types(position.node, defs):
            document = replaced(case.document, position.path, SAMPLES[kind])
            assert_refused(case, document, position.path)
            checked += 1
    assert checked > 0


def test_every_documented_type_is_accepted_at_some_field_it_documents() -> None:
    """What the validator accepts at a field is documented there (the test above), and no
    documented type is refused everywhere: e.g. a feature value is a number or a string,
    numbers for numeric features, strings for categorical ones. Not for the inference
    request: its strings and integers must name the model's inputs and fit their data
    (an input's name, a dimension), which no sample value does."""
    accepted: dict[tuple[str, str], set[str]] = {}
    wanted: dict[tuple[str, str], set[str]] = {}
    for case in CASES.values():
        schema, defs = json_schema(case.model)
        for position in positions(case.document, schema, defs):
            types = documented_types(position.node, defs)
            if types & {"array", "object"}:
                continue  # a container: its fields are checked one by one
            key = (case.model.__name__, position.pattern)
            wanted[key] = types
            accepted.setdefault(key, set()).update(
                kind
                for kind in types
                if accepts(case, replaced(case.document, position.path, SAMPLES[kind]))
            )
    assert accepted == wanted


@pytest.mark.parametrize("case", ALL_CASES.values(), ids=ALL_CASES.keys())
def test_required_and_nullable_fields_agree(case: Case) -> None:
    """A required field may not be left out; an optional one may be null (its default)."""
    schema, defs = json_schema(case.model)
    for position in positions(case.document, schema, defs):
        value = at(case.document, position.path)
        for member in members(position.node, defs):
            if member["type"] != "object" or not isinstance(value, dict):
                continue
            required = set(member.get("required", []))
            for key in member.get("properties", {}):
                if key in required:
                    document = without(case.document, position.path, key)
                    assert_refused(case, document, (*position.path, key))
                elif key not in value:
                    document = replaced(case.document, (*position.path, key), None)
                    case.model.model_validate(document, strict=True)
                    case.validate(document)


@pytest.mark.parametrize("case", ALL_CASES.values(), ids=ALL_CASES.keys())
def test_a_closed_object_refuses_an_unknown_field(case: Case) -> None:
    schema, defs = json_schema(case.model)
    closed = 0
    for position in positions(case.document, schema, defs):
        for member in members(position.node, defs):
            if member["type"] == "object" and member.get("additionalProperties") is False:
                extra = (*position.path, "extra")
                assert_refused(case, replaced(case.document, extra, 1), extra)
                closed += 1
    assert closed > 0


def test_every_documented_field_is_checked() -> None:
    """A field added to a documented model fails here until a valid request holds it."""
    for model in {case.model for case in ALL_CASES.values()}:
        schema, defs = json_schema(model)
        covered = {
            position.pattern
            for case in ALL_CASES.values()
            if case.model is model
            for position in positions(case.document, schema, defs)
        }
        assert covered == documented_fields(schema, defs), model.__name__


def test_a_predict_request_holds_exactly_one_mode() -> None:
    """The one rule the schema leaves to its description ("Either feature rows or entity
    keys"): both modes are optional there, the validator wants exactly one."""
    schema, _ = json_schema(PredictRequest)
    assert "required" not in schema and schema["description"].startswith("Either")
    for document, field in (
        ({}, "instances"),
        ({"instances": None, "entities": None}, "instances"),
        ({**CASES["predict-instances"].document, **CASES["predict-entities"].document}, "entities"),
    ):
        with pytest.raises(RequestError) as caught:
            predict(document)
        assert (caught.value.status, caught.value.field) == (422, field)


def test_the_documented_example_is_a_valid_request() -> None:
    (example,) = PredictRequest.model_json_schema()["properties"]["instances"]["examples"]
    numeric = tuple(k for row in example for k, v in row.items() if isinstance(v, float | int))
    categorical = tuple(k for row in example for k, v in row.items() if isinstance(v, str))
    mode, items = split_predict({"instances": example}, MAX_ROWS)
    validate_instances(items, InputSchema(numeric=numeric, categorical=categorical, entity=None))
    PredictRequest.model_validate({"instances": example}, strict=True)
