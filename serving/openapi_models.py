"""The documented JSON shapes of the service (OpenAPI): request, response and error bodies.

Documentation only: request bodies are checked by hand (`serving.validation`), which is
stricter where the served model is known (which features, numeric or categorical);
tests/unit/test_serving_openapi_agreement.py checks that the two agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.oip_validation import Datatype, OutputName

FeatureValue = float | str | None


class PredictRequest(BaseModel):
    """Either feature rows or entity keys (features then come from the online store)."""

    model_config = ConfigDict(extra="forbid")

    instances: list[dict[str, FeatureValue]] | None = Field(
        default=None,
        description="Feature rows: every feature of `GET /v1/models`' input schema, numbers "
        "or null for numeric features, strings or null for categorical ones; the entity "
        "key may be added (it makes routing sticky per entity).",
        examples=[[{"amount": 42.5, "channel": "pos"}]],
    )
    entities: list[dict[str, str | int]] | None = Field(
        default=None,
        description='Entity keys, e.g. `[{"card_id": "card_000123"}]`.',
    )


class RowPrediction(BaseModel):
    """One row's answer."""

    prediction_id: str = Field(description="`<request_id>-<row>`: what feedback refers to.")
    prediction: int | str = Field(description="The most probable class.")
    probabilities: dict[str, float] = Field(description="Probability per class.")
    model_version: str
    variant: Literal["champion", "challenger"]
    entity: str | int | None = None


class PredictResponse(BaseModel):
    """The answer to `POST /v1/predict`."""

    request_id: str
    model_name: str
    predictions: list[RowPrediction]


class FeedbackItem(BaseModel):
    """A label that arrived after the prediction."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str
    label: str | int


class FeedbackRequest(BaseModel):
    """Labels for earlier predictions."""

    model_config = ConfigDict(extra="forbid")

    labels: list[FeedbackItem]


class FeedbackResponse(BaseModel):
    """How many labels were queued for the prediction log."""

    accepted: int
    request_id: str


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
    """Every 4xx/5xx answer of the service."""

    error: ErrorDetail
    request_id: str | None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": description}
    for code, description in (
        (400, "Malformed JSON."),
        (401, "Missing credentials."),
        (403, "Wrong credentials."),
        (404, "Unknown entity in the online store."),
        (413, "Too many rows or too large a body."),
        (415, "Not a JSON body."),
        (422, "A field is missing, unknown, of the wrong type or not finite."),
        (503, "No model loaded yet, or the online store is unavailable."),
    )
}


# --- Open Inference Protocol (V2 REST): serving.oip, serving.oip_validation --------------

Parameter = str | float | bool
TensorValue = bool | float | str | None


class InferInputTensor(BaseModel):
    """One input: a feature (columnar), or the numeric features' tensor."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="A feature of the model metadata's inputs, the entity key (sticky "
        "routing), or `numeric_features`: FP32/FP64 `[rows, n_numeric]`, the numeric "
        "features in the metadata's order (then each categorical feature is its own input)."
    )
    shape: list[Annotated[int, Field(ge=0)]] = Field(
        description="`[rows]` or `[rows, 1]` for a feature, `[rows, n_numeric]` for the tensor."
    )
    datatype: Datatype = Field(
        description="BYTES for a categorical feature; FP32, FP64, an integer type or BOOL for "
        "a numeric one; BYTES or an integer type for the entity key (FP16 is refused)."
    )
    parameters: dict[str, Parameter] | None = Field(
        default=None, description="Ignored, except `binary_data_size`: refused (JSON only)."
    )
    data: list[TensorValue | list[TensorValue]] = Field(
        description="Row-major, flat or nested as the shape; null is a missing value.",
        examples=[[42.5, 3.0]],
    )


class InferOutputRequest(BaseModel):
    """An output to answer."""

    model_config = ConfigDict(extra="forbid")

    name: OutputName
    parameters: dict[str, Parameter] | None = Field(
        default=None, description="Ignored: outputs are always JSON."
    )


class InferRequest(BaseModel):
    """An Open Inference Protocol inference request: one tensor per feature, or one tensor of
    the numeric features."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, description="Echoed in the response's `id`.")
    parameters: dict[str, Parameter] | None = Field(default=None, description="Ignored.")
    inputs: list[InferInputTensor] = Field(min_length=1)
    outputs: list[InferOutputRequest] | None = Field(
        default=None, description="The outputs to answer, in order (default: all)."
    )


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
    outputs: list[InferOutputTensor]


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
    "not fit the data, a wrong datatype, a value of another type or not finite (the message "
    "names the input and the row).",
    401: "Missing X-API-Key.",
    403: "Wrong X-API-Key.",
    404: "Another model name, or a version not loaded here.",
    413: "Too many rows or too large a body.",
    415: "Not a JSON body.",
    500: "The model failed.",
    503: "No model loaded yet.",
}

INFER_ERRORS = oip_errors(400, 401, 403, 404, 413, 415, 500, 503)
"""The documented refusals of `POST /v2/models/{name}[/versions/{version}]/infer`."""
