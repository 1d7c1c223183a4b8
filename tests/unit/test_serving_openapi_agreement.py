"""The hand validators (`serving.validation`, and `serving.oip_validation` for `/v2`)
accept exactly what the OpenAPI document describes (`serving.openapi_models.request_schemas`,
`serving.oip_models.infer_schemas`), for the model being served.

The OpenAPI document is all a client sees, but requests are checked by hand: the two
could drift apart silently. Starting from a valid request of each body, every field is
replaced by a value of each JSON type (and by edge values: numbers just past the range,
empty and overlong strings), every key is left out in turn, an unknown one is added to
each object and each array is emptied and overfilled: the JSON schema (checked with
jsonschema-rs, as the fuzz test's Schemathesis does) and the validator must agree on
every one of them. A refusal is a documented 4xx that names the mutated field (or a
field inside it), with the documented error body. The valid requests hold every field
the schemas document, so a field added to a schema fails here until it is covered.

The inference request has one rule JSON Schema cannot state (its description does):
every input holds the same number of rows, and its data as many values as its shape
says. A mutation that breaks only that is valid to the schema and refused by the
validator as a `shape_mismatch`; that is the one disagreement allowed.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import pytest

from mlops.settings import Settings
from serving.app import create_app
from serving.errors import RequestError
from serving.json_values import parse_json
from serving.oip import refused
from serving.oip_models import OipErrorResponse, infer_schemas
from serving.oip_validation import parse_infer
from serving.openapi_models import ErrorResponse, ServedShape, request_schemas
from serving.validation import (
    InputSchema,
    split_predict,
    validate_entities,
    validate_feedback,
    validate_instances,
    validate_pause,
)

MAX_ROWS = 3
SCHEMA = InputSchema(
    numeric=("amount", "hour"),
    categorical=("channel", "kind"),
    entity="card_id",
    never_null=frozenset({"amount", "channel"}),
)
"""Nullable and never-null features of both kinds, and an entity key."""
SHAPES = {
    "contract": ServedShape(SCHEMA, impute_nulls=False, entity_type="string", classes=("0", "1")),
    "imputing": ServedShape(SCHEMA, impute_nulls=True, entity_type="int64", classes=("a", "b")),
    "store-not-open": ServedShape(SCHEMA, impute_nulls=False, entity_type=None, classes=("1",)),
    "no-entity": ServedShape(
        InputSchema(numeric=("amount",), categorical=("channel",), entity=None),
        impute_nulls=False,
        entity_type=None,
        classes=("-1", "01", "x"),
    ),
}
SAMPLES: list[Any] = [7, 7.0, -1.0, -2.5, 10**39, "card_1", "", None, True, [1.0], {"k": 1}]
"""A value of each JSON type (the schemas' own bounds are added: `edge_samples`)."""
PREDICT_STATUSES = {400, 404, 413, 415, 422, 500, 503}
FEEDBACK_STATUSES = {400, 413, 415, 422, 500, 503}
PAUSE_STATUSES = {400, 401, 403, 409, 413, 415, 422, 500}
INFER_STATUSES = {400, 413}
CROSS_TENSOR = "shape_mismatch"
"""What a valid-looking inference request is refused for when its inputs' rows, shapes
and data disagree (beyond JSON Schema)."""

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    body: str
    """The component schema of the request body."""
    validate: Callable[[Any], object]
    document: dict[str, Any]
    """A valid request, holding every field the schema documents (with the other cases of
    the same body)."""
    statuses: set[int]


def cases(name: str, shape: ServedShape) -> Iterator[tuple[str, Case]]:
    schema = shape.schema

    def predict(document: Any) -> object:
        """The service's predict path (`PredictionService.predict`, `EntityLookup.rows`)."""
        mode, items = split_predict(document, MAX_ROWS)
        if mode == "instances":
            return validate_instances(items, schema, shape.impute_nulls)
        if schema.entity is None:
            raise RequestError(422, "entities_unsupported", "no entity", "entities")
        return validate_entities(items, schema.entity, shape.entity_type)

    row: dict[str, Any] = {"amount": 1.5, "hour": None, "channel": "pos", "kind": None}
    row = {k: v for k, v in row.items() if k in schema.features}
    key: str | int = 7 if shape.entity_type == "int64" else "card_1"
    if schema.entity is not None:
        row[schema.entity] = key
        entities = {"entities": [{schema.entity: key}], "instances": None}
        yield f"{name}-entities", Case("PredictRequest", predict, entities, PREDICT_STATUSES)
    instances = {"instances": [row, dict(row)], "entities": None}
    yield f"{name}-instances", Case("PredictRequest", predict, instances, PREDICT_STATUSES)
    classes = frozenset(shape.classes)
    labels = {"labels": [{"prediction_id": "r-0", "label": shape.classes[0]}]}
    yield (
        f"{name}-feedback",
        Case(
            "FeedbackRequest",
            lambda d: validate_feedback(d, MAX_ROWS, classes),
            labels,
            FEEDBACK_STATUSES,
        ),
    )
    yield f"{name}-pause", Case("PauseRequest", validate_pause, {"reason": "x"}, PAUSE_STATUSES)
    yield from infer_cases(name, shape)


def infer_cases(name: str, shape: ServedShape) -> Iterator[tuple[str, Case]]:
    """Both forms of the inference request: one input per feature (flat and nested data,
    several datatypes, the entity key), and the numeric features' tensor (nested: each
    column's nulls are documented)."""
    schema = shape.schema

    def infer(document: Any) -> object:
        return parse_infer(document, schema, MAX_ROWS, shape.impute_nulls)

    values: dict[str, tuple[str, list[Any]]] = {
        "amount": ("FP64", [1.5, 7]),
        "hour": ("INT64", [3, None]),
        "channel": ("BYTES", ["pos", "web"]),
        "kind": ("BYTES", [None, "x"]),
    }
    inputs: list[dict[str, Any]] = []
    for k, feature in enumerate(f for f in values if f in schema.features):
        datatype, data = values[feature]
        nested = k % 2 == 1
        inputs.append(
            {
                "name": feature,
                "shape": [2, 1] if nested else [2],
                "datatype": datatype,
                "data": [[v] for v in data] if nested else data,
                **({"parameters": {}} if k == 0 else {}),
            }
        )
    if schema.entity is not None:
        keys = ["card_1", None] if shape.entity_type != "int64" else [7, None]
        datatype = "INT64" if shape.entity_type == "int64" else "BYTES"
        inputs.append({"name": schema.entity, "shape": [2], "datatype": datatype, "data": keys})
    columnar = {
        "id": "req-1",
        "parameters": {},
        "inputs": inputs,
        "outputs": [{"name": "probabilities", "parameters": {}}, {"name": "imputed"}],
    }
    yield f"{name}-infer_columnar", Case("InferRequest", infer, columnar, INFER_STATUSES)
    numeric = [[1.5, 3][: len(schema.numeric)], [7, None][: len(schema.numeric)]]
    tensor = {
        "name": "numeric_features",
        "shape": [2, len(schema.numeric)],
        "datatype": "FP32",
        "data": numeric,
    }
    categories = [i for i in inputs if i["name"] in schema.categorical]
    document = {"inputs": [tensor, *categories], "id": None, "outputs": None}
    yield f"{name}-infer_tensor", Case("InferRequest", infer, document, INFER_STATUSES)


CASES = dict(item for name, shape in SHAPES.items() for item in cases(name, shape))
SHAPE_OF = {case: SHAPES[case.rsplit("-", 1)[0]] for case in CASES}


# --- the JSON schema ----------------------------------------------------------------------


def components(shape: ServedShape | None) -> dict[str, Any]:
    """The request schemas, with references made local (`#/$defs/...`)."""
    text = json.dumps({**request_schemas(shape, MAX_ROWS), **infer_schemas(shape, MAX_ROWS)})
    return dict(json.loads(text.replace("#/components/schemas/", "#/$defs/")))


def validator(shape: ServedShape | None, body: str) -> Any:
    return jsonschema_rs.validator_for({"$ref": f"#/$defs/{body}", "$defs": components(shape)})


def edge_samples(node: Any) -> set[Any]:
    """Values at and just past every bound the schemas document (lengths and ranges)."""
    found: set[Any] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("minLength", "maxLength"):
                found |= {"x" * n for n in (value - 1, value, value + 1) if n >= 0}
            elif key in ("minimum", "maximum") and isinstance(value, int):
                found |= {value - 1, value, value + 1}
            elif key in ("minimum", "maximum"):
                found |= {value, math.nextafter(value, math.copysign(math.inf, value))}
            else:
                found |= edge_samples(value)
    elif isinstance(node, list):
        for item in node:
            found |= edge_samples(item)
    return found


def documented_fields(node: Any, defs: dict[str, Any], pattern: str = "") -> set[str]:
    """Every field the schema documents, as `instances[].amount`."""
    if not isinstance(node, dict):
        return set()
    if "$ref" in node:
        return documented_fields(defs[node["$ref"].rsplit("/", 1)[-1]], defs, pattern)
    found = {pattern or "body"}
    for member in node.get("anyOf", []):
        found |= documented_fields(member, defs, pattern)
    for key, sub in node.get("properties", {}).items():
        found |= documented_fields(sub, defs, f"{pattern}.{key}" if pattern else key)
    if "items" in node:
        found |= documented_fields(node["items"], defs, pattern + "[]")
    for item in node.get("prefixItems", []):
        found |= documented_fields(item, defs, pattern + "[]")
    return found


# --- the document, mutated ------------------------------------------------------------------


def field_name(path: Path) -> str:
    """The field as the validator names it: `instances[0].amount`, `` for the root."""
    name = ""
    for part in path:
        name = f"{name}[{part}]" if isinstance(part, int) else (f"{name}.{part}" if name else part)
    return name


def positions(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from positions(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from positions(item, (*path, i))


def at(document: Any, path: Path) -> Any:
    for part in path:
        document = document[part]
    return document


def changed(document: Any, path: Path, change: Callable[[Any], Any]) -> Any:
    """A copy of the document with the value at `path` replaced by `change(value)`."""
    if not path:
        return change(copy.deepcopy(document))
    out = copy.deepcopy(document)
    parent = at(out, path[:-1])
    parent[path[-1]] = change(parent[path[-1]])
    return out


def without(document: Any, path: Path) -> Any:
    out = copy.deepcopy(document)
    del at(out, path[:-1])[path[-1]]
    return out


def mutations(document: Any, samples: list[Any]) -> Iterator[tuple[str, Path, Any]]:
    """(what, where, mutated document) for every mutation of the valid document."""
    for path, value in positions(document):
        for sample in samples:
            yield f"{sample!r:.40} at", path, changed(document, path, lambda _, s=sample: s)
        if isinstance(value, dict):
            for key in value:
                yield "left out", (*path, key), without(document, (*path, key))
            extra = (*path, "extra")
            yield "unknown key", extra, changed(document, path, lambda v: {**v, "extra": 1})
        if isinstance(value, list):
            yield "emptied", path, changed(document, path, lambda v: [])
            yield "overfilled", path, changed(document, path, lambda v: v * (MAX_ROWS + 1))


def verdict(case: Case, document: Any) -> RequestError | None:
    """The validator's refusal of the document as the service parses it, if any."""
    try:
        case.validate(parse_json(json.dumps(document).encode()))
    except RequestError as exc:
        return exc
    return None


@pytest.mark.parametrize("name", CASES)
def test_the_valid_request_is_documented_and_accepted(name: str) -> None:
    case = CASES[name]
    assert validator(SHAPE_OF[name], case.body).is_valid(case.document)
    assert verdict(case, case.document) is None


@pytest.mark.parametrize("name", CASES)
def test_the_validator_accepts_exactly_what_the_schema_describes(name: str) -> None:
    case = CASES[name]
    documented = validator(SHAPE_OF[name], case.body)
    samples = SAMPLES + sorted(edge_samples(components(SHAPE_OF[name])), key=repr)
    checked = 0
    oip = case.body == "InferRequest"
    for what, path, document in mutations(case.document, samples):
        error = verdict(case, document)
        valid = documented.is_valid(document)
        checked += 1
        if oip and valid and error is not None and error.code == CROSS_TENSOR:
            assert "rows" in error.message or "values" in error.message or "items" in error.message
            continue  # rows, shapes and data that disagree: beyond JSON Schema
        assert (error is None) == valid, (what, path, document, error and error.message)
        if error is None:
            continue
        assert error.status in case.statuses, (what, path, error.message)
        named = field_name(path)
        inside = (error.field or "").startswith((named + ".", named + "["))
        if error.code == "invalid_body" and named in ("instances", "entities"):
            named = error.field or ""  # both modes given: either one is at fault
        if oip and error.field == "inputs" and named.startswith("inputs"):
            named = "inputs"  # an input left out, renamed or cleared: the inputs lack it
        if oip and error.code == CROSS_TENSOR:
            named = error.field or ""  # a shape no longer fits another input's rows
        if oip and ".data[" in named and "flat data" in error.message:
            named = error.field or ""  # flat and nested values mixed: either one is odd
        assert not named or error.field == named or inside, (what, path, error.field)
        if oip:
            OipErrorResponse.model_validate_json(refused(error, "req-1").body, strict=True)
        else:
            ErrorResponse.model_validate_json(error.body("req-1"), strict=True)
    assert checked > 2 * len(SAMPLES)


def pattern(path: Path) -> str:
    """The documented field a position is: `instances[].amount` for any row's amount."""
    name = ""
    for part in path:
        name = name + "[]" if isinstance(part, int) else (f"{name}.{part}" if name else part)
    return name or "body"


def test_the_valid_requests_hold_every_documented_field() -> None:
    for shape_name, shape in SHAPES.items():
        defs = components(shape)
        for body in ("PredictRequest", "FeedbackRequest", "PauseRequest", "InferRequest"):
            covered = {
                pattern(path)
                for name, case in CASES.items()
                if case.body == body and SHAPE_OF[name] is shape
                for path, _ in positions(case.document)
            }
            wanted = documented_fields({"$ref": f"#/$defs/{body}"}, defs)
            assert covered == wanted, (shape_name, body)


def test_without_a_model_the_document_is_generic_and_feedback_takes_any_label() -> None:
    """Predictions wait for a model (503), feedback does not: any class is taken."""
    documented = validator(None, "FeedbackRequest")
    for label in ("fraud", 3, 1.5, None, True):
        document = {"labels": [{"prediction_id": "r-0", "label": label}]}
        accepted = verdict(
            Case("FeedbackRequest", lambda d: validate_feedback(d, 3, None), {}, set()), document
        )
        assert documented.is_valid(document) is (accepted is None), label
    rows = validator(None, "PredictRequest")
    assert rows.is_valid({"instances": [{"any": 1.5, "other": "x", "third": None}]})
    assert not rows.is_valid({"instances": [{"any": [1]}]})


def test_every_error_answer_is_documented_with_the_error_body(tmp_path: Any) -> None:
    """Every operation's 4xx/5xx is the error document (but `/readyz`' 503), the
    protocol's under `/v2` (but a readiness' 400, "false" with an empty body), and the
    hand-parsed bodies point at the schemas above."""
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    for keyed in (False, True):
        if keyed:
            settings = settings.model_copy(
                update={"serving": settings.serving.model_copy(update={"api_key": "k"})}
            )
        document = create_app(settings).openapi()
        operations = [
            (path, operation)
            for path, methods in document["paths"].items()
            for operation in methods.values()
        ]
        assert len(operations) >= 18
        for path, operation in operations:
            for status, answer in operation["responses"].items():
                if int(status) < 400:
                    continue
                if path.startswith("/v2") and path.endswith("/ready") and status == "400":
                    assert "content" not in answer, path
                    continue
                (content,) = answer["content"].values()
                wanted = "NotReadyResponse" if path == "/readyz" else "ErrorResponse"
                wanted = "OipErrorResponse" if path.startswith("/v2") else wanted
                assert content["schema"] == {"$ref": f"#/components/schemas/{wanted}"}, (
                    path,
                    status,
                )
            secured = "security" in operation
            if path.startswith("/v1/admin"):
                assert secured and {"401", "403"} <= operation["responses"].keys()
            elif path in ("/v1/predict", "/v1/feedback", "/v1/models") or "{name}" in path:
                assert secured is keyed
                assert ({"401", "403"} <= operation["responses"].keys()) is keyed
        for path, body in (
            ("/v1/predict", "PredictRequest"),
            ("/v1/feedback", "FeedbackRequest"),
            ("/v2/models/{name}/infer", "InferRequest"),
            ("/v2/models/{name}/versions/{version}/infer", "InferRequest"),
        ):
            content = document["paths"][path]["post"]["requestBody"]["content"]
            assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{body}"}
        assert document["paths"]["/metrics"]["get"]["responses"]["200"]["content"].keys() == {
            "text/plain"
        }
