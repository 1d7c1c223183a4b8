"""The Open Inference Protocol (V2 REST) endpoints, beside `/v1` (see `serving.oip`).

- `GET /v2`: server metadata; `GET /v2/health/live`, `/v2/health/ready`: open, as
  `/healthz` and `/readyz` are;
- `GET /v2/models/{name}[/versions/{version}]`: model metadata;
  `.../ready`: whether it answers; `POST .../infer`: an inference. These need
  `X-API-Key` when `serving.api_key` is set, as `/v1/predict` does. Without a version,
  the champion (and the canary's share of the challenger) answers; with one, that
  version answers every row if it is loaded here (champion or challenger), else 404,
  and the rows are logged `pinned` (no rollout or drift evidence: see `mlops.traffic`).

`POST .../infer` is answered by `PredictionService.infer_asgi` before FastAPI's routing
(see `serving.app.ServingApp`); its routes here exist for the OpenAPI document, and
call the same code. A refusal under `/v2` is the protocol's `{"error": "..."}`
(`serving.app` renders them so).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving.asgi import JSON, read_body
from serving.oip import (
    INFER_ROUTE,
    OIP_PREFIX,
    VERSION_INFER_ROUTE,
    InferTarget,
    model_metadata,
    server_metadata,
)
from serving.oip_models import InferResponse, ModelMetadata, ServerMetadata, oip_errors
from serving.service import Incoming, PredictionService

_READY: dict[int | str, dict[str, Any]] = {200: {"description": "True (empty body)."}}
_NOT_READY: dict[int | str, dict[str, Any]] = {400: {"description": "False (empty body)."}}


def oip_router(
    service: PredictionService, require_key: list[Any], key_errors: tuple[int, ...]
) -> APIRouter:
    """The `/v2` routes of `service`; `require_key` guards the model endpoints, which then
    answer `key_errors` (401 and 403, when an API key is asked for)."""
    router = APIRouter(tags=["open inference protocol (v2)"])

    @router.get(OIP_PREFIX, summary="Server metadata", response_model=ServerMetadata)
    async def server() -> Response:
        return Response(orjson.dumps(server_metadata()), media_type=JSON)

    @router.get(
        f"{OIP_PREFIX}/health/live",
        summary="The server is alive",
        response_class=Response,
        responses=_READY,
    )
    async def live() -> Response:
        return Response(status_code=200)

    @router.get(
        f"{OIP_PREFIX}/health/ready",
        summary="A champion is loaded (as /readyz)",
        response_class=Response,
        responses={**_READY, **_NOT_READY},
    )
    async def ready() -> Response:
        return Response(status_code=200 if service.ready else 400)

    def metadata(model: str, version: str | None) -> Response:
        snapshot = service.manager.snapshot
        _, found = service.served(snapshot, model, version)
        versions = [m.version for m in snapshot.loaded]
        return Response(orjson.dumps(model_metadata(model, found, versions)), media_type=JSON)

    def model_ready(model: str, version: str | None) -> Response:
        service.check_model(model)
        snapshot = service.manager.snapshot
        if snapshot.champion is None:
            return Response(status_code=400)
        service.served(snapshot, model, version)  # 404 for a version not loaded here
        return Response(status_code=200 if service.ready else 400)

    metadata_doc: dict[str, Any] = {
        "response_model": ModelMetadata,
        "responses": oip_errors(*key_errors, 404, 503),
        "dependencies": require_key,
    }
    ready_doc: dict[str, Any] = {
        "response_class": Response,
        "responses": {**_READY, **_NOT_READY, **oip_errors(*key_errors, 404)},
        "dependencies": require_key,
    }
    infer_doc: dict[str, Any] = {
        "response_model": InferResponse,
        "responses": oip_errors(400, *key_errors, 404, 413, 415, 500, 503),
        "dependencies": require_key,
    }

    @router.get(
        f"{OIP_PREFIX}/models/{{name}}", summary="Model metadata (the champion)", **metadata_doc
    )
    async def model(name: str) -> Response:
        return metadata(name, None)

    @router.get(
        f"{OIP_PREFIX}/models/{{name}}/versions/{{version}}",
        summary="Model metadata of a loaded version",
        **metadata_doc,
    )
    async def model_version(name: str, version: str) -> Response:
        return metadata(name, version)

    @router.get(f"{OIP_PREFIX}/models/{{name}}/ready", summary="The model answers", **ready_doc)
    async def ready_model(name: str) -> Response:
        return model_ready(name, None)

    @router.get(
        f"{OIP_PREFIX}/models/{{name}}/versions/{{version}}/ready",
        summary="The version is loaded and answers",
        **ready_doc,
    )
    async def ready_version(name: str, version: str) -> Response:
        return model_ready(name, version)

    async def infer(target: InferTarget, request: Request) -> Response:
        """Reached through FastAPI only when the app is mounted under a prefix: the
        service normally answers these paths in `PredictionService.infer_asgi`."""
        started = time.perf_counter()
        length = request.headers.get("content-length")
        read = partial(read_body, request.receive, service.max_body_bytes, length)
        incoming = Incoming.of(request.headers, read, started)
        answer = await service.infer(target, incoming)
        if answer.after is not None:
            answer.after()
        return Response(
            answer.body, status_code=answer.status, headers=answer.headers, media_type=JSON
        )

    @router.post(INFER_ROUTE, summary="Inference (champion and canary routing)", **infer_doc)
    async def infer_model(name: str, request: Request) -> Response:
        return await infer(InferTarget(name, None), request)

    @router.post(VERSION_INFER_ROUTE, summary="Inference on a loaded version", **infer_doc)
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await infer(InferTarget(name, version), request)

    return router
