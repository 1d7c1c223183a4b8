"""The prediction service's FastAPI app: endpoints, error handlers, OpenAPI document.

Endpoints (see `/docs` for the OpenAPI document):

- `POST /v1/predict`: feature rows (`{"instances": [...]}`) or entity keys
  (`{"entities": [{"card_id": ...}]}`, features read from Feast's online store).
  Answers one prediction per row (class, probabilities, `prediction_id`, model version
  and variant) and the request id. Needs `X-API-Key` when `serving.api_key` is set.
- `POST /v1/feedback`: late labels `{"labels": [{"prediction_id", "label"}]}` for the
  prediction log (monitoring and the canary decision).
- `GET /v1/models`: loaded models, input schema, traffic split and rollout stage.
- `POST /v1/admin/reload`, `POST /v1/admin/rollout/pause`, `.../resume`: bearer token.
- `GET /healthz` (alive), `GET /readyz` (a champion is loaded), `GET /metrics`.
- `/v2/...`: the Open Inference Protocol (V2 REST) of KServe, MLServer and Triton:
  server and model metadata, health, `POST /v2/models/{name}/infer` (see
  `serving.oip_routes`).

`POST /v1/predict` and `POST /v2/models/{name}[/versions/{version}]/infer` skip
FastAPI: `ServingApp` hands them to the service's plain ASGI handlers before routing
(~10k trivial requests/s against ~3k through a FastAPI route; see `serving.service`).
The FastAPI routes of the same paths exist for the OpenAPI document and call the same
code.

Errors are JSON documents `{"error": {...}, "request_id": ...}` (see
`serving.errors`), under `/v2` the protocol's `{"error": "..."}`; a bad request is
always a 4xx naming the field (under `/v2`: the input and the row), never a 500. The
OpenAPI document (`/openapi.json`) describes the request bodies of the model being
served, `/v1` and `/v2` alike (its features, which may be null, its entity key, its
classes, its name and loaded versions) and every status code each operation answers,
with its body; tests/e2e/test_serving_fuzz.py holds the running service to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops.rollout.state import RolloutState
from mlops.settings import Settings
from serving.asgi import JSON, Answer, Receive, Scope, Send, new_request_id, read_body, require_json
from serving.auth import admin_dependency, admin_scheme, api_key_dependency, api_key_scheme
from serving.errors import FieldIssue, RequestError
from serving.json_values import parse_json
from serving.oip import INFER_ROUTE, OIP_PREFIX, VERSION_INFER_ROUTE, infer_target, refused
from serving.oip_models import infer_schemas, served_path_parameters
from serving.oip_routes import oip_router
from serving.openapi_models import (
    FeedbackResponse,
    HealthResponse,
    ModelsResponse,
    NotReadyResponse,
    PredictResponse,
    ReadyResponse,
    ReloadResponse,
    ServedShape,
    error_responses,
    request_schemas,
)
from serving.service import PREDICT_PATH, Incoming, PredictionService
from serving.validation import validate_pause

logger = logging.getLogger(__name__)


def _as_response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type=JSON)


class ServingApp(FastAPI):
    """FastAPI, except that predictions and inferences go straight to the lean handlers."""

    service: PredictionService

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            if path == PREDICT_PATH:
                await self.service.predict_asgi(scope, receive, send)
                return
            target = infer_target(path)
            if target is not None:
                await self.service.infer_asgi(scope, receive, send, target)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, offload: bool = True, multiprocess_metrics: bool = False
) -> ServingApp:
    """The prediction service for these settings (nothing starts until its lifespan runs).

    Args:
        offload: forward passes on a thread per model; False runs them on the event loop.
        multiprocess_metrics: one of several uvicorn workers (see `serving.server`).
    """
    service = PredictionService(
        settings, offload=offload, multiprocess_metrics=multiprocess_metrics
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.startup()
        try:
            yield
        finally:
            await service.shutdown()

    app = ServingApp(
        title="mlops prediction service",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )
    app.service = service
    # the document shows the API key only where one is asked for
    keyed = settings.serving.api_key is not None
    key_scheme = [Security(api_key_scheme)] if keyed else []
    key_errors = (401, 403) if keyed else ()
    require_key = [Depends(api_key_dependency(settings)), *key_scheme]
    require_admin = [Depends(admin_dependency(settings)), Security(admin_scheme)]

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> Response:
        request_id = new_request_id(request.headers.get("x-request-id"))
        route = _route_of(request)
        service.metrics.http_response(route, exc.status)
        oip = route.startswith(OIP_PREFIX) or request.url.path.startswith(OIP_PREFIX)
        return _as_response((refused if oip else Answer.refused)(exc, request_id))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        issues = [
            FieldIssue(
                ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body",
                str(error.get("type", "invalid")),
                str(error.get("msg", "invalid value")),
            )
            for error in exc.errors()
        ] or [FieldIssue("body", "invalid", "invalid request")]
        return await _refused(request, RequestError.from_issues(422, issues[:20]))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        error = RequestError(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=exc.headers,  # a 405's `Allow`
        )
        return await _refused(request, error)

    @app.exception_handler(Exception)
    async def _crashed(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s", request.url.path)
        error = RequestError(500, "internal_error", "internal error")
        return await _refused(request, error)

    @app.post(
        PREDICT_PATH,
        summary="Predict from feature rows or entity keys",
        response_model=PredictResponse,
        responses=error_responses(400, *key_errors, 404, 413, 415, 422, 500, 503),
        dependencies=key_scheme,
        tags=["predict"],
    )
    async def predict(request: Request) -> Response:
        """Reached through FastAPI only when the app is mounted under a prefix: the
        service normally answers this path in `PredictionService.predict_asgi`."""
        started = time.perf_counter()
        read = partial(body_of, request, service.max_body_bytes)
        answer = await service.predict(Incoming.of(request.headers, read, started))
        if answer.after is not None:
            answer.after()
        return _as_response(answer)

    @app.post(
        "/v1/feedback",
        summary="Labels that arrived after the prediction",
        status_code=202,
        response_model=FeedbackResponse,
        responses=error_responses(400, *key_errors, 413, 415, 422, 500, 503),
        dependencies=require_key,
        tags=["predict"],
    )
    async def feedback(request: Request) -> Response:
        request_id = new_request_id(request.headers.get("x-request-id"))
        require_json(request.headers.get("content-type"))
        body = await body_of(request, service.max_body_bytes)
        answer = service.feedback(body, request_id)
        service.metrics.http_response("/v1/feedback", answer.status)
        return _as_response(answer)

    @app.get(
        "/v1/models",
        summary="Loaded models, input schema, traffic split, rollout stage",
        response_model=ModelsResponse,
        responses=error_responses(*key_errors, 500),
        dependencies=require_key,
        tags=["models"],
    )
    async def models() -> Response:
        return Response(orjson.dumps(service.models()), media_type=JSON)

    @app.get(
        "/healthz", summary="The process is alive", response_model=HealthResponse, tags=["health"]
    )
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get(
        "/readyz",
        summary="A champion model is loaded",
        response_model=ReadyResponse,
        responses={503: {"model": NotReadyResponse, "description": "Not ready yet."}},
        tags=["health"],
    )
    async def readyz() -> Response:
        champion = service.manager.snapshot.champion
        if champion is None or not service.ready:
            body = {"status": "not_ready", "reason": service.not_ready_reason()}
            return Response(orjson.dumps(body), status_code=503, media_type=JSON)
        body = {
            "status": "ready",
            "model": settings.serving.model_name,
            "version": champion.version,
        }
        return Response(orjson.dumps(body), media_type=JSON)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        tags=["health"],
    )
    async def metrics() -> Response:
        data, content_type = service.metrics.exposition()
        return Response(data, media_type=content_type)

    @app.post(
        "/v1/admin/reload",
        summary="Re-read the registry now (force: retry refused versions)",
        response_model=ReloadResponse,
        responses=error_responses(401, 403, 422, 500),
        dependencies=require_admin,
        tags=["admin"],
    )
    async def reload(force: bool = False) -> Response:
        report = await service.manager.refresh(force=force)
        body = {"report": report.as_dict(), **service.models()}
        return Response(orjson.dumps(body), media_type=JSON)

    @app.post(
        "/v1/admin/rollout/pause",
        summary="Pause the canary rollout (the challenger gets no traffic)",
        response_model=RolloutState,
        responses=error_responses(400, 401, 403, 409, 413, 415, 422, 500),
        dependencies=require_admin,
        tags=["admin"],
    )
    async def pause(request: Request) -> Response:
        reason = await _reason(request, service.max_body_bytes)
        state = await service.change_rollout("pause", reason)
        return Response(state.model_dump_json().encode(), media_type=JSON)

    @app.post(
        "/v1/admin/rollout/resume",
        summary="Resume a paused canary rollout",
        response_model=RolloutState,
        responses=error_responses(401, 403, 409, 500),
        dependencies=require_admin,
        tags=["admin"],
    )
    async def resume() -> Response:
        state = await service.change_rollout("resume", "")
        return Response(state.model_dump_json().encode(), media_type=JSON)

    app.include_router(oip_router(service, require_key, key_errors))
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


async def body_of(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 beyond `max_bytes` (before reading, if declared)."""
    return await read_body(request.receive, max_bytes, request.headers.get("content-length"))


async def _reason(request: Request, max_bytes: int) -> str:
    """The optional `{"reason": "..."}` of a pause request (the body may be left out)."""
    require_json(request.headers.get("content-type"))
    body = await body_of(request, max_bytes)
    reason = validate_pause(parse_json(body)) if body.strip() else None
    return reason or "paused by an operator (serving admin API)"


def _route_of(request: Request) -> str:
    found = request.scope.get("route")
    path = getattr(found, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _openapi(app: ServingApp) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with the request bodies the handlers parse by hand written for
    the model being served (`serving.openapi_models.request_schemas`,
    `serving.oip_models.infer_schemas`) and the `/v2` paths' model name and versions:
    rebuilt when the champion's input, the online store's key type or the loaded
    versions change."""
    built: list[ServedShape | None] = [None]
    max_rows = app.service.serving.max_rows_per_request

    def build() -> dict[str, Any]:
        shape = app.service.request_shape()
        if app.openapi_schema and shape == built[0]:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(request_schemas(shape, max_rows))
        schemas.update(infer_schemas(shape, max_rows))
        for path, name, required in (
            (PREDICT_PATH, "PredictRequest", True),
            ("/v1/feedback", "FeedbackRequest", True),
            ("/v1/admin/rollout/pause", "PauseRequest", False),
            (INFER_ROUTE, "InferRequest", True),
            (VERSION_INFER_ROUTE, "InferRequest", True),
        ):
            document["paths"][path]["post"]["requestBody"] = {
                "required": required,
                "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{name}"}}},
            }
        parameters = served_path_parameters(app.service.serving.model_name, shape)
        for path, operations in document["paths"].items():
            if path.startswith(OIP_PREFIX):
                for operation in operations.values():
                    # its path parameters name the served model and a loaded version (any
                    # other is a 404, not a 422)
                    operation["responses"].pop("422", None)
                    for parameter in operation.get("parameters", []):
                        if parameter["name"] in parameters:
                            parameter["schema"] = parameters[parameter["name"]]
        app.openapi_schema = document
        built[0] = shape
        return document

    return build
