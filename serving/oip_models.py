"""The documented JSON shapes of the Open Inference Protocol (`/v2`, OpenAPI).

Documentation only, as `serving.openapi_models` is for `/v1`: the inference request is
checked by hand (`serving.oip_validation`) against the served model, so its schema is
written for that model too (`infer_schemas`): the inputs it takes by name (one per
feature, or the numeric features' tensor beside the categorical ones, and the entity
key), each feature's datatypes and the values each datatype holds (a null only where the
data contract allows one, numbers a 32-bit float holds, integers of the type's range),
their shapes and the row limit, and each output at most once. The path names the served
model and a loaded version (`served_path_parameters`). What JSON Schema cannot say is
in the descriptions: every input holds the same number of rows, its data holds as many
values as its shape says, and in the flat numeric tensor a null is allowed only in the
column of a feature that may be null (nested rows document it per column). A request
that breaks one of these is a 400 naming the input. Responses and errors are pydantic
models: the fuzz test (tests/e2e/test_serving_fuzz.py) checks every answer against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from serving.json_values import LARGEST_NUMBER
from serving.oip_tensors import BINARY, DATATYPES, FLOATS, INTEGER_RANGES, Datatype
from serving.oip_validation import OUTPUTS, TENSOR_INPUT, OutputName
from serving.openapi_models import ServedShape

JsonSchema = dict[str, Any]

_REF = "#/components/schemas/"
_NULL: JsonSchema = {"type": "null"}
_NUMBER: JsonSchema = {"type": "number", "minimum": -LARGEST_NUMBER, "maximum": LARGEST_NUMBER}
_PARAMETERS: JsonSchema = {
    "type": "object",
    "description": "Ignored.",
    "additionalProperties": {
        "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
    },
}
_ENTITY_LIMIT = 2**63 - 1
"""An integer entity key is a 64-bit signed integer, whatever its datatype."""


# --- the inference request, for the served model ------------------------------------------


def _nullable(value: JsonSchema, nullable: bool) -> JsonSchema:
    return {"anyOf": [value, _NULL]} if nullable else value


def _value_options(role: str) -> list[tuple[list[str], JsonSchema]]:
    """The datatypes a role's input may have, each with the values it holds."""
    if role == "categorical":
        return [(["BYTES"], {"type": "string"})]
    integers = [
        ([name], {"type": "integer", "minimum": low, "maximum": high})
        for name, (low, high) in INTEGER_RANGES.items()
    ]
    if role == "entity":
        key = [(n, {**v, "maximum": min(v["maximum"], _ENTITY_LIMIT)}) for n, v in integers]
        return [(["BYTES"], {"type": "string", "minLength": 1, "maxLength": 256}), *key]
    return [(list(FLOATS), _NUMBER), (["BOOL"], {"type": "boolean"}), *integers]


def _column(names: list[str], role: str, nullable: bool, max_rows: int) -> JsonSchema:
    """One input per feature (or the entity key): shape `[rows]` with flat data, or
    `[rows, 1]` with flat or nested data."""
    rows: JsonSchema = {"type": "integer", "minimum": 1, "maximum": max_rows}
    options: list[JsonSchema] = []
    for datatypes, value in _value_options(role):
        item = _nullable(value, nullable)
        flat: JsonSchema = {"type": "array", "minItems": 1, "maxItems": max_rows, "items": item}
        nested = {**flat, "items": {"type": "array", "minItems": 1, "maxItems": 1, "items": item}}
        for shape, data in (
            ({"prefixItems": [rows], "minItems": 1, "maxItems": 1}, flat),
            ({"prefixItems": [rows, {"const": 1}], "minItems": 2, "maxItems": 2}, None),
        ):
            options.append(
                {
                    "properties": {
                        "datatype": {"enum": datatypes},
                        "shape": {"type": "array", **shape},
                        "data": data or {"anyOf": [flat, nested]},
                    }
                }
            )
    return _tensor_object(names, options)


def _numeric_tensor(shape: ServedShape, max_rows: int) -> JsonSchema:
    """`numeric_features`: FP32 / FP64 `[rows, n]`, the numeric features in their order."""
    schema = shape.schema
    n = len(schema.numeric)
    nullable = [shape.impute_nulls or f not in schema.never_null for f in schema.numeric]
    flat: JsonSchema = {
        "type": "array",
        "minItems": n,
        "maxItems": n * max_rows,
        "items": _nullable(_NUMBER, any(nullable)),
    }
    row: JsonSchema = {
        "type": "array",
        "minItems": n,
        "maxItems": n,
        "prefixItems": [_nullable(_NUMBER, null) for null in nullable],
    }
    rows: JsonSchema = {"type": "integer", "minimum": 1, "maximum": max_rows}
    option: JsonSchema = {
        "properties": {
            "datatype": {"enum": list(FLOATS)},
            "shape": {
                "type": "array",
                "prefixItems": [rows, {"const": n}],
                "minItems": 2,
                "maxItems": 2,
            },
            "data": {
                "anyOf": [
                    flat,
                    {"type": "array", "minItems": 1, "maxItems": max_rows, "items": row},
                ]
            },
        }
    }
    return _tensor_object([TENSOR_INPUT], [option])


def _tensor_object(names: list[str], options: list[JsonSchema]) -> JsonSchema:
    return {
        "type": "object",
        "properties": {
            "name": {"enum": names},
            "shape": {"type": "array"},
            "datatype": {
                "enum": sorted({d for o in options for d in o["properties"]["datatype"]["enum"]})
            },
            "data": {"type": "array"},
            "parameters": {
                "anyOf": [{**_PARAMETERS, "properties": {BINARY: False}}, _NULL],
                "description": "Ignored, but `binary_data_size` (binary data) is refused.",
            },
        },
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
        "anyOf": options,
    }


def _named(name: str) -> JsonSchema:
    return {"type": "object", "properties": {"name": {"const": name}}, "required": ["name"]}


def _times(name: str, low: int, high: int) -> JsonSchema:
    """An array holding an item named `name` between `low` and `high` times."""
    return {"contains": _named(name), "minContains": low, "maxContains": high}


def infer_schemas(shape: ServedShape | None, max_rows: int) -> dict[str, JsonSchema]:
    """The component schemas of the inference request (`InferRequest` and its parts), for
    the served model; generic tensors while no model is loaded (every inference is then a
    503)."""
    outputs: JsonSchema = {
        "type": "array",
        "description": "The outputs to answer, in order (none, or null: all of them).",
        "items": {"$ref": _REF + "InferOutputRequest"},
        "allOf": [_times(name, 0, 1) for name in OUTPUTS],
    }
    schemas: dict[str, JsonSchema] = {
        "InferRequest": {
            "type": "object",
            "description": "An Open Inference Protocol inference request: one input per "
            f"feature, or the numeric features as one tensor ({TENSOR_INPUT!r}) beside one "
            "input per categorical feature, and optionally the entity key. Every input "
            "holds the same number of rows (its shape's first dimension), and its data as "
            "many values as its shape says (else a 400 naming the input).",
            "properties": {
                "id": {"anyOf": [{"type": "string"}, _NULL], "description": "Echoed as `id`."},
                "parameters": {"anyOf": [_PARAMETERS, _NULL]},
                "inputs": {"$ref": _REF + "InferInputs"},
                "outputs": {"anyOf": [outputs, _NULL]},
            },
            "required": ["inputs"],
            "additionalProperties": False,
        },
        "InferOutputRequest": {
            "type": "object",
            "description": "An output to answer (always as JSON).",
            "properties": {
                "name": {"enum": list(OUTPUTS)},
                "parameters": {"anyOf": [_PARAMETERS, _NULL]},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    }
    if shape is None:
        schemas["InferInputs"] = {
            "type": "array",
            "minItems": 1,
            "description": "The inputs of `GET /v2/models/{name}` (no model is loaded yet).",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"enum": list(DATATYPES)},
                    "data": {"type": "array"},
                    "parameters": {"anyOf": [_PARAMETERS, _NULL]},
                },
                "required": ["name", "shape", "datatype", "data"],
                "additionalProperties": False,
            },
        }
        return schemas
    schema = shape.schema
    groups: list[tuple[str, str, list[str], bool]] = []
    for role, names in (("numeric", schema.numeric), ("categorical", schema.categorical)):
        for nullable, prefix in ((False, ""), (True, "Nullable")):
            found = [
                n for n in names if (shape.impute_nulls or n not in schema.never_null) is nullable
            ]
            if found:
                groups.append((f"{prefix}{role.title()}Input", role, found, nullable))
    if schema.entity is not None:
        groups.append(("EntityInput", "entity", [schema.entity], True))
    for component, role, found, nullable in groups:
        what = "the entity key (routing sticky per entity)" if role == "entity" else role
        schemas[component] = {
            **_column(found, role, nullable, max_rows),
            "description": f"An input of {what}: "
            + ("null is a missing value" if nullable else "never null (the data contract)"),
        }
    features = [*schema.numeric, *schema.categorical]
    entity = [_times(schema.entity, 0, 1)] if schema.entity is not None else []
    forms: list[JsonSchema] = [
        {"allOf": [*(_times(f, 1, 1) for f in features), *entity, _times(TENSOR_INPUT, 0, 0)]}
    ]
    if TENSOR_INPUT not in schema.features and schema.numeric:
        schemas["NumericFeaturesInput"] = {
            **_numeric_tensor(shape, max_rows),
            "description": "The numeric features, in the order of the model metadata's inputs: "
            "data flat (row-major) or one array per row. Flat, a null may only be in the "
            "column of a feature that may be null.",
        }
        groups.append(("NumericFeaturesInput", "", [], False))
        forms.append(
            {
                "allOf": [
                    _times(TENSOR_INPUT, 1, 1),
                    *(_times(f, 1, 1) for f in schema.categorical),
                    *(_times(f, 0, 0) for f in schema.numeric),
                    *entity,
                ]
            }
        )
    schemas["InferInputs"] = {
        "type": "array",
        "minItems": 1,
        "description": "Every feature once (or the numeric tensor and every categorical "
        "feature), the entity key at most once.",
        "items": {"anyOf": [{"$ref": _REF + component} for component, *_ in groups]},
        "anyOf": forms,
    }
    return schemas


def served_path_parameters(model_name: str, shape: ServedShape | None) -> dict[str, JsonSchema]:
    """The schemas of the `/v2` path parameters: the served model's name, and a loaded
    version (any other is a 404)."""
    found: dict[str, JsonSchema] = {
        "name": {"type": "string", "enum": [model_name], "description": "The served model."}
    }
    if shape is not None and shape.versions:
        found["version"] = {
            "type": "string",
            "enum": list(shape.versions),
            "description": "A loaded version (champion or challenger).",
        }
    return found


# --- responses and errors --------------------------------------------------------------------


class InferOutputTensor(BaseModel):
    """One output tensor of a response."""

    name: OutputName
    datatype: Literal["FP32", "INT64", "BYTES"]
    shape: list[int]
    data: list[float | int | str]


class InferResponse(BaseModel):
    """The answer to an inference request."""

    model_name: str
    model_version: str = Field(
        description="The version that answered (comma-separated when a canary split the "
        "rows of one request: see the `model_version` output)."
    )
    id: str = Field(description="The request's `id`, else the request id.")
    parameters: dict[str, str] = Field(
        description="`request_id`: what each row's `prediction_id` (`<request_id>-<row>`, "
        "for `POST /v1/feedback`) is made of."
    )
    outputs: list[InferOutputTensor] = Field(
        description="`probabilities`, `prediction`, `model_version` and `imputed` (the "
        "features imputed per row, comma-separated: only with `serving.impute_nulls`), or "
        "those requested."
    )


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 for the rows.")
    parameters: dict[str, str] | None = Field(
        default=None,
        description="`classes` (probabilities): the classes of the columns, a JSON array.",
    )


class ModelMetadata(BaseModel):
    """A loaded model's inputs (one per feature) and outputs."""

    name: str
    versions: list[str] = Field(description="The versions loaded here (champion, challenger).")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class OipErrorResponse(BaseModel):
    """Every 4xx/5xx answer under `/v2`, as the protocol writes it."""

    error: str


def oip_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented refusals of a `/v2` operation."""
    return {code: {"model": OipErrorResponse, "description": _OIP_ERRORS[code]} for code in codes}


_OIP_ERRORS: dict[int, str] = {
    400: "A malformed request: an input unknown, missing or given twice, a shape that does "
    "not fit the data or the other inputs' rows, a wrong datatype, a value of another type, "
    "not finite or beyond a 32-bit float, or a null the model's data contract forbids (the "
    "message names the input and the row).",
    401: "Missing X-API-Key.",
    403: "Wrong X-API-Key.",
    404: "Another model name, or a version not loaded here.",
    413: "Too many rows, or too large a body (`serving.max_body_bytes`).",
    415: "Not a JSON body.",
    500: "The model failed.",
    503: "No model loaded yet.",
}
