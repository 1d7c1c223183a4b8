"""The documented JSON shapes of `/v1` (OpenAPI): request, response and error bodies.

Documentation only: nothing here validates a request. Request bodies are checked by hand
(`serving.validation`) against the served model, so their documented schemas are written
for that model too (`request_schemas`): its features by name, which may be null under its
data contract, its entity key, its classes, the row limit. The document is rebuilt when
another model (or online store) is served. tests/unit/test_serving_openapi_agreement.py
checks that the validators accept exactly what these schemas describe. Responses and
errors are pydantic models: the handlers send bytes they build themselves, the
fuzz test (tests/e2e/test_serving_fuzz.py) checks every answer against these. The
Open Inference Protocol's (`/v2`) are `serving.oip_models`', written the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from mlops.rollout.state import RolloutState
from serving.json_values import LARGEST_NUMBER
from serving.validation import EntityType, InputSchema

JsonSchema = dict[str, Any]

# --- request bodies, for the served model ------------------------------------------------


@dataclass(frozen=True)
class ServedShape:
    """What the request bodies look like for the model being served."""

    schema: InputSchema
    impute_nulls: bool
    entity_type: EntityType | None
    """The online store's key type, once it is open (None: a string or an integer)."""
    classes: tuple[str, ...]
    """The class keys feedback labels may name (champion's and challenger's)."""
    versions: tuple[str, ...] = ()
    """The versions loaded (champion, challenger): what a `/v2` path may name."""


_NUMBER: JsonSchema = {"type": "number", "minimum": -LARGEST_NUMBER, "maximum": LARGEST_NUMBER}
_TEXT: JsonSchema = {"type": "string"}
_NULL: JsonSchema = {"type": "null"}
_STRING_KEY: JsonSchema = {"type": "string", "minLength": 1, "maxLength": 256}
_INTEGER_KEY: JsonSchema = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
_REF = "#/components/schemas/"


def request_schemas(shape: ServedShape | None, max_rows: int) -> dict[str, JsonSchema]:
    """The component schemas of the hand-parsed request bodies (`PredictRequest`,
    `FeedbackRequest`, `PauseRequest` and their parts), for the served model; generic
    feature rows and labels while no model is loaded."""
    rows: JsonSchema = {"type": "array", "minItems": 1, "maxItems": max_rows}
    entity_key = None if shape is None else shape.schema.entity
    schemas: dict[str, JsonSchema] = {
        "FeatureRow": _feature_row(shape),
        "InstancesRequest": {
            "type": "object",
            "description": "Feature rows (`entities` may be given as null).",
            "properties": {
                "instances": {**rows, "items": {"$ref": _REF + "FeatureRow"}},
                "entities": _NULL,
            },
            "required": ["instances"],
            "additionalProperties": False,
        },
    }
    options = [{"$ref": _REF + "InstancesRequest"}]
    if shape is None or entity_key is not None:
        key = _entity_key(None if shape is None else shape.entity_type)
        schemas["EntityRow"] = (
            {"type": "object", "additionalProperties": key}
            if entity_key is None
            else {
                "type": "object",
                "properties": {entity_key: key},
                "required": [entity_key],
                "additionalProperties": False,
            }
        )
        schemas["EntitiesRequest"] = {
            "type": "object",
            "description": "Entity keys: features come from the online store.",
            "properties": {
                "entities": {**rows, "items": {"$ref": _REF + "EntityRow"}},
                "instances": _NULL,
            },
            "required": ["entities"],
            "additionalProperties": False,
        }
        options.append({"$ref": _REF + "EntitiesRequest"})
    schemas["PredictRequest"] = {
        "description": "Either feature rows or entity keys (features then come from the "
        "online store): exactly one of `instances` and `entities`.",
        "anyOf": options,
    }
    schemas["FeedbackItem"] = {
        "type": "object",
        "description": "A label that arrived after the prediction.",
        "properties": {
            "prediction_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "The `prediction_id` of an answer.",
            },
            "label": _label(None if shape is None else shape.classes),
        },
        "required": ["prediction_id", "label"],
        "additionalProperties": False,
    }
    schemas["FeedbackRequest"] = {
        "type": "object",
        "description": "Labels for earlier predictions.",
        "properties": {"labels": {**rows, "items": {"$ref": _REF + "FeedbackItem"}}},
        "required": ["labels"],
        "additionalProperties": False,
    }
    schemas["PauseRequest"] = {
        "type": "object",
        "description": "Why the rollout is paused (the body may be left out).",
        "properties": {"reason": {"anyOf": [_TEXT, _NULL]}},
        "additionalProperties": False,
    }
    return schemas


def _feature_row(shape: ServedShape | None) -> JsonSchema:
    if shape is None:
        return {
            "type": "object",
            "description": "Every feature of `GET /v1/models`' input schema (no model is "
            "loaded yet).",
            "additionalProperties": {"anyOf": [_NUMBER, _TEXT, _NULL]},
        }
    schema = shape.schema
    refused = frozenset() if shape.impute_nulls else schema.never_null
    properties: dict[str, JsonSchema] = {}
    for names, kind in ((schema.numeric, _NUMBER), (schema.categorical, _TEXT)):
        for name in names:
            properties[name] = kind if name in refused else {"anyOf": [kind, _NULL]}
    if schema.entity is not None:
        properties[schema.entity] = {
            **_entity_key(None),
            "description": "Optional: makes champion/challenger routing sticky per entity.",
        }
    imputed = (
        " A null where the model's data contract allows none is imputed and listed in the "
        "answer's `imputed`."
        if shape.impute_nulls and schema.never_null
        else ""
    )
    return {
        "type": "object",
        "description": "Every feature of the served model: a number for a numeric one, a "
        "string for a categorical one, null where it may be unknown." + imputed,
        "properties": properties,
        "required": [*schema.numeric, *schema.categorical],
        "additionalProperties": False,
    }


def _entity_key(entity_type: EntityType | None) -> JsonSchema:
    if entity_type == "string":
        return _STRING_KEY
    if entity_type == "int64":
        return _INTEGER_KEY
    return {"anyOf": [_STRING_KEY, _INTEGER_KEY]}


def _label(classes: tuple[str, ...] | None) -> JsonSchema:
    """A class by its key, or by its integer where the key is an integer's text."""
    if not classes:
        return {"anyOf": [_TEXT, {"type": "integer"}], "description": "A class of the model."}
    numbers = [int(key) for key in classes if key.lstrip("-").isdigit() and str(int(key)) == key]
    return {"enum": [*classes, *numbers], "description": "A class of the model."}


# --- responses ----------------------------------------------------------------------------


class RowPrediction(BaseModel):
    """One row's answer."""

    prediction_id: str = Field(description="`<request_id>-<row>`: what feedback refers to.")
    prediction: int | str = Field(description="The most probable class.")
    probabilities: dict[str, float] = Field(description="Probability per class.")
    model_version: str
    variant: Literal["champion", "challenger"]
    entity: str | int | None
    imputed: list[str] = Field(
        description="Features the data contract says are never null that were null in "
        "this row and were imputed (only with `serving.impute_nulls`)."
    )


class PredictResponse(BaseModel):
    """The answer to `POST /v1/predict`."""

    request_id: str
    model_name: str
    predictions: list[RowPrediction]


class FeedbackResponse(BaseModel):
    """How many labels were queued for the prediction log."""

    accepted: int
    request_id: str


class FeatureInfo(BaseModel):
    name: str
    type: Literal["number", "string"]
    nullable: bool = Field(description="The data contract allows a null here.")


class InputSchemaInfo(BaseModel):
    features: list[FeatureInfo]
    entity: str | None
    impute_nulls: bool = Field(description="A null the contract forbids is imputed, not refused.")


class LoadedModelInfo(BaseModel):
    variant: Literal["champion", "challenger"]
    name: str
    version: str
    scheme: str
    artifact_sha256: str
    run_id: str
    feature_service: str
    classes: list[int | str]
    loaded_at: str
    load_seconds: float
    smoke_test_rows: int
    batches: int
    rows_scored: int


class TrafficInfo(BaseModel):
    champion: float
    challenger: float
    shadow: bool


class RefusalInfo(BaseModel):
    version: str
    artifact_sha256: str
    reason: str
    at: str


class OnlineFeaturesInfo(BaseModel):
    feature_service: str
    entity: str
    entity_type: EntityType


class ModelsResponse(BaseModel):
    """`GET /v1/models`: what is loaded and how traffic is split."""

    model_name: str
    ready: bool
    models: list[LoadedModelInfo]
    input_schema: InputSchemaInfo | None
    traffic: TrafficInfo
    rollout: RolloutState
    generation: int
    refreshed_at: str | None
    poll_interval_s: float
    last_error: str | None
    refused: list[RefusalInfo]
    online_features: OnlineFeaturesInfo | None


class RefreshInfo(BaseModel):
    loaded: list[str]
    refused: list[str]
    swapped: bool
    error: str | None


class ReloadResponse(ModelsResponse):
    """What a reload did, and what is served now."""

    report: RefreshInfo


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model: str
    version: str


class NotReadyResponse(BaseModel):
    status: Literal["not_ready"]
    reason: str


# --- errors -------------------------------------------------------------------------------


class IssueModel(BaseModel):
    field: str
    code: str
    message: str


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str
    field: str | None
    issues: list[IssueModel]


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the service (but `/readyz`'s 503)."""

    error: ErrorDetail
    request_id: str | None


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed JSON (or the client went away).",
    401: "Missing credentials.",
    403: "Wrong credentials.",
    404: "An entity key the online store does not know.",
    409: "No rollout in a state to pause or resume.",
    413: "Too many rows, or too large a body (`serving.max_body_bytes`).",
    415: "Not a JSON body.",
    422: "A field is missing, unknown, of the wrong type, a number out of range or not "
    "finite, or null where the model's data contract allows none.",
    500: "The model or the registry failed.",
    503: "No model loaded yet, or the online store or the prediction log is unavailable.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an operation (FastAPI's `responses=`)."""
    return {
        code: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[code]} for code in codes
    }
