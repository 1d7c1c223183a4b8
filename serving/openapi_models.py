"""The documented JSON shapes of the service (OpenAPI): request, response and error bodies.

Documentation only: request bodies are checked by hand (`serving.validation`), which is
stricter where the served model is known (which features, numeric or categorical);
tests/unit/test_serving_openapi_agreement.py checks that the two agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
