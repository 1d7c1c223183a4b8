"""`PredictionService`: the answers behind the endpoints, and the lean predict path.

The hot path. `POST /v1/predict` is answered by `PredictionService.predict_asgi`, a
plain ASGI handler (`serving.asgi`) that `serving.app.ServingApp` hands the request to
before FastAPI's routing. It reads the body, parses it with orjson, validates it by
hand (`serving.validation`), reads entity keys' features if it was sent keys
(`serving.entity_lookup`), and scores the rows (`serving.scoring`: routed per row by
`serving.routing`, each model's share awaited in a micro-batch) on the models of the
snapshot read at the start (`serving.loader`): a hot swap never touches a request in
flight. The answer is sent before the prediction log, the metrics and any shadow
scoring are fed (`serving.recording`).

`POST /v2/models/{name}[/versions/{version}]/infer` (the Open Inference Protocol) takes
the same path: `infer_asgi` reads it the same way, `serving.oip_validation` turns its
tensors into feature rows, and from the feature check on (`validate_instances`, the
data contract's nulls and the 32-bit float range included) they are `/v1` rows:
routed, scored, logged and counted by the same `score_rows`. Only the answer is
written in the protocol's words (`serving.oip`).

Both read the body only once the request's headers pass (API key, media type) and a
champion is loaded, and never more than `serving.max_body_bytes` of it (413, refused
from its `Content-Length` before reading when it declares one).

What the service holds (models, features, log, metrics) and its start and stop are
`serving.runtime.ServingRuntime`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import orjson

from mlops.rollout.lock import RolloutLock
from mlops.rollout.state import RolloutError, RolloutState, Variant, pause_rollout, resume_rollout
from serving.asgi import (
    Answer,
    Receive,
    Scope,
    Send,
    new_request_id,
    read_body,
    require_json,
    send_answer,
)
from serving.auth import check_api_key
from serving.errors import RequestError
from serving.json_values import parse_json
from serving.loader import ServingSnapshot
from serving.oip import INFERENCE_HEADER, InferTarget, infer_body, refused
from serving.oip_validation import parse_infer
from serving.openapi_models import ServedShape
from serving.prediction_log import FeedbackRecord
from serving.runtime import ServingRuntime
from serving.scoring import score_rows
from serving.validation import split_predict, validate_feedback, validate_instances

logger = logging.getLogger(__name__)

PREDICT_PATH = "/v1/predict"

ReadBody = Callable[[], Awaitable[bytes]]
"""Reads a request's body (`serving.asgi.read_body`, bounded by `serving.max_body_bytes`)."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the predict and infer handlers read of a request, besides its path."""

    read: ReadBody
    """Reads the body, once the headers pass: a request refused for its credentials or
    media type, or while no model is loaded, is answered without reading it."""
    api_key: str | None
    content_type: str | None
    request_id: str
    started: float
    """`time.perf_counter()` when the request arrived (its latency starts there)."""
    inference_header: str | None = None
    """`Inference-Header-Content-Length`: the body holds binary tensor data."""

    @classmethod
    def of(cls, headers: Mapping[str, str], read: ReadBody, started: float) -> Incoming:
        """From a routed request's headers (a FastAPI route; case-insensitive `headers`)."""
        return cls(
            read,
            headers.get("x-api-key"),
            headers.get("content-type"),
            new_request_id(headers.get("x-request-id")),
            started,
            headers.get(INFERENCE_HEADER.decode()),
        )


class PredictionService(ServingRuntime):
    """Everything behind the endpoints, on the models, features, log and metrics that
    `ServingRuntime` holds and starts."""

    @property
    def max_body_bytes(self) -> int:
        """The largest request body read (413 beyond): `serving.max_body_bytes`."""
        return self.serving.max_body_bytes

    # --- the hot path -----------------------------------------------------------------

    async def predict_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /v1/predict` as a plain ASGI handler (see the module docstring)."""
        await self._serve(scope, receive, send, PREDICT_PATH, self.predict, Answer.refused)

    async def infer_asgi(
        self, scope: Scope, receive: Receive, send: Send, target: InferTarget
    ) -> None:
        """`POST /v2/models/{name}[/versions/{version}]/infer`, the same way."""
        await self._serve(scope, receive, send, target.route, partial(self.infer, target), refused)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: str,
        handle: Callable[[Incoming, list[bool]], Awaitable[Answer]],
        refuse: Callable[[RequestError, str], Answer],
    ) -> None:
        """Read the request, let `handle` answer it (`refuse` renders a refusal), send it,
        then do the answer's logging."""
        started = time.perf_counter()
        api_key = content_type = given_id = inference_header = length = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                given_id = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
            elif name == INFERENCE_HEADER:
                inference_header = value.decode("latin-1")
        request_id = new_request_id(given_id)
        self._arriving += 1
        counted = [True]
        try:
            try:
                request = Incoming(
                    partial(read_body, receive, self.max_body_bytes, length),
                    api_key,
                    content_type,
                    request_id,
                    started,
                    inference_header,
                )
                answer = await handle(request, counted)
            except RequestError as exc:
                answer = refuse(exc, request_id)
            except Exception:
                logger.exception("%s %s failed", route, request_id)
                answer = refuse(
                    RequestError(500, "internal_error", "the prediction failed"), request_id
                )
        finally:
            if counted[0]:
                self._arriving -= 1
        await send_answer(send, answer)
        self.metrics.http_response(route, answer.status)
        if answer.after is not None:
            answer.after()

    async def predict(self, request: Incoming, counted: list[bool] | None = None) -> Answer:
        """`POST /v1/predict`: validate, route, score; the answer carries the logging to do
        once sent.

        Args:
            counted: `[True]` while this request counts as arriving (for the batchers'
                wait); cleared once its rows are ready to score.

        Raises:
            RequestError: a refused request (4xx), no model loaded (503), the model failed
                (500).
        """
        snapshot = self._admit(request)
        champion, _ = self.served(snapshot, self.serving.model_name, None)
        document = parse_json(await request.read())
        mode, items = split_predict(document, self.serving.max_rows_per_request)
        if mode == "instances":
            checked = validate_instances(items, champion.schema, self.serving.impute_nulls)
            rows = checked.rows
        else:
            checked, rows = await self.entities.rows(items, champion)
        self._arrived(counted)
        request_id = request.request_id
        scored = await score_rows(
            self.recorder, snapshot, champion, rows, checked.entities, request_id, request.started
        )
        imputed = checked.imputed
        predictions = [
            {
                "prediction_id": f"{request_id}-{i}",
                "prediction": label,
                "probabilities": dict(zip(model.class_keys, p, strict=True)),
                "model_version": model.version,
                "variant": "champion" if model is champion else "challenger",
                "entity": key,
                "imputed": imputed.get(i, ()),
            }
            for i, (model, p, label, key) in enumerate(
                zip(
                    scored.answered_by,
                    scored.probabilities,
                    scored.labels,
                    checked.entities,
                    strict=True,
                )
            )
        ]
        body = orjson.dumps(
            {
                "request_id": request_id,
                "model_name": self.serving.model_name,
                "predictions": predictions,
            }
        )
        return Answer(200, body, {"x-request-id": request_id}, scored.after)

    async def infer(
        self, target: InferTarget, request: Incoming, counted: list[bool] | None = None
    ) -> Answer:
        """`POST /v2/models/{name}[/versions/{version}]/infer`: the tensors become feature
        rows (`serving.oip_validation`), which take the path of `/v1/predict` rows; a
        version in the path answers every row (no routing; logged `pinned`), as long as
        it is loaded.

        Raises:
            RequestError: as `predict`, and 404 for a model or version not served here.
        """
        snapshot = self._admit(request)
        champion, model = self.served(snapshot, target.name, target.version)
        if request.inference_header is not None:
            raise RequestError(
                400,
                "unsupported",
                "binary tensor data (header Inference-Header-Content-Length) is not "
                "supported: send the tensors as JSON",
            )
        parsed = parse_infer(
            parse_json(await request.read()),
            model.schema,
            self.serving.max_rows_per_request,
            self.serving.impute_nulls,
        )
        self._arrived(counted)
        request_id = request.request_id
        pinned = None if target.version is None else model
        rows = parsed.rows
        scored = await score_rows(
            self.recorder,
            snapshot,
            champion,
            rows.rows,
            rows.entities,
            request_id,
            request.started,
            pinned,
        )
        body = infer_body(
            target.name,
            parsed.id or request_id,
            request_id,
            parsed.outputs,
            [m.version for m in scored.answered_by],
            scored.probabilities,
            scored.labels,
            rows.imputed,
        )
        return Answer(200, body, {"x-request-id": request_id}, scored.after)

    def _admit(self, request: Incoming) -> ServingSnapshot:
        """The snapshot to serve a request from, once its key and media type pass.

        Raises:
            RequestError: 401 / 403 for the API key, 415 for a body that is not JSON.
        """
        check_api_key(self.settings, request.api_key)
        require_json(request.content_type)
        return self.manager.snapshot

    def _arrived(self, counted: list[bool] | None) -> None:
        """The request's rows are ready to score: it no longer counts as arriving."""
        if counted is not None and counted[0]:
            counted[0] = False
            self._arriving -= 1

    # --- the other endpoints ----------------------------------------------------------

    def feedback(self, body: bytes, request_id: str) -> Answer:
        """Queue late labels for the prediction log.

        Raises:
            RequestError: a refused document.
        """
        classes = self.label_classes()
        labels = validate_feedback(
            parse_json(body), self.serving.max_rows_per_request, frozenset(classes) or None
        )
        now = datetime.now(UTC)
        log = self.recorder.log
        if log is None:
            raise RequestError(503, "not_ready", "the prediction log is not started")
        log.submit_feedback([FeedbackRecord(x.prediction_id, x.label, now) for x in labels])
        body_out = orjson.dumps({"accepted": len(labels), "request_id": request_id})
        return Answer(202, body_out, {"x-request-id": request_id})

    def label_classes(self) -> tuple[str, ...]:
        """The class keys a feedback label may name: the champion's and the challenger's."""
        snapshot = self.manager.snapshot
        keys = [
            key
            for model in (snapshot.champion, snapshot.challenger)
            if model is not None
            for key in model.class_keys
        ]
        return tuple(dict.fromkeys(keys))

    def request_shape(self) -> ServedShape | None:
        """What request bodies look like for the served champion (for the OpenAPI document):
        its input schema, the online store's key type, the classes, the loaded versions."""
        snapshot = self.manager.snapshot
        champion = snapshot.champion
        if champion is None:
            return None
        reader = self.entities.reader
        entity_type = (
            reader.entity_type
            if reader is not None and reader.feature_service == champion.feature_service
            else None
        )
        return ServedShape(
            champion.schema,
            self.serving.impute_nulls,
            entity_type,
            self.label_classes(),
            tuple(m.version for m in snapshot.loaded),
        )

    def models(self) -> dict[str, object]:
        """`GET /v1/models`: what is loaded and how traffic is split."""
        manager = self.manager
        snapshot = manager.snapshot
        loaded = []
        if snapshot.champion is not None:
            loaded.append(snapshot.champion.describe(Variant.CHAMPION.value))
        if snapshot.challenger is not None:
            loaded.append(snapshot.challenger.describe(Variant.CHALLENGER.value))
        rollout = snapshot.rollout
        return {
            "model_name": self.serving.model_name,
            "ready": snapshot.champion is not None,
            "models": loaded,
            "input_schema": None
            if snapshot.champion is None
            else {**snapshot.champion.schema.describe(), "impute_nulls": self.serving.impute_nulls},
            "traffic": snapshot.traffic(),
            "rollout": rollout.model_dump(mode="json"),
            "generation": snapshot.generation,
            "refreshed_at": None
            if snapshot.refreshed_at is None
            else snapshot.refreshed_at.isoformat(),
            "poll_interval_s": self.serving.poll_interval_s,
            "last_error": manager.last_error,
            "refused": [r.as_dict() for r in manager.refused.values()],
            "online_features": self.entities.describe(),
        }

    async def change_rollout(self, action: str, reason: str) -> RolloutState:
        """Pause or resume the rollout in the registry, and apply it here at once.

        Raises:
            RequestError: 409 when there is no rollout in a state to pause or resume.
        """
        client = self.manager.client
        name = self.serving.model_name
        lock = RolloutLock.for_settings(self.settings)
        try:
            if action == "pause":
                state = await asyncio.to_thread(pause_rollout, client, name, reason, lock=lock)
            else:
                state = await asyncio.to_thread(resume_rollout, client, name, lock=lock)
        except RolloutError as exc:
            raise RequestError(409, "rollout_conflict", str(exc)) from exc
        self.manager.set_rollout(state)
        return state
