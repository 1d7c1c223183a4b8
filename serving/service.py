"""`PredictionService`: everything behind the endpoints, and the lean predict path.

The hot path. `POST /v1/predict` is answered by `PredictionService.predict_asgi`, a
plain ASGI handler (`serving.asgi`) that `serving.app.ServingApp` hands the request to
before FastAPI's routing. It reads the body, parses it with orjson, validates it by
hand (`serving.validation`), reads entity keys' features if it was sent keys
(`serving.entity_lookup`), routes each row (`serving.routing`), and awaits the rows'
share of a micro-batch (`serving.batching`) on the model picked by the snapshot read
at the start (`serving.loader`): a hot swap never touches a request in flight. The
answer is sent before the prediction log, the metrics and any shadow scoring are fed
(`serving.recording`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from mlops.quality.bounds import load_served_profile
from mlops.rollout.lock import RolloutLock
from mlops.rollout.state import (
    RolloutError,
    RolloutState,
    Variant,
    pause_rollout,
    resume_rollout,
)
from mlops.settings import Settings
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
from serving.entity_lookup import EntityLookup
from serving.errors import RequestError, error_body
from serving.loader import LoadedModel, ModelManager, ServingSnapshot
from serving.metrics import ServingMetrics
from serving.openapi_models import ServedShape
from serving.prediction_log import FeedbackRecord, PredictionLog, open_prediction_log
from serving.recording import PredictionRecorder
from serving.routing import route
from serving.validation import (
    PredictInput,
    parse_json,
    split_predict,
    validate_feedback,
    validate_instances,
)

logger = logging.getLogger(__name__)

PREDICT_PATH = "/v1/predict"
READY_FEATURES_WAIT_S = 60.0
"""Start-up waits this long at most for the online store before declaring readiness."""
SHADOW_DRAIN_S = 5.0
"""Shutdown waits this long at most for shadow scoring under way."""


def freeze_startup_objects() -> None:
    """Move everything alive after start-up out of the garbage collector's sight.

    torch, MLflow, Feast and FastAPI leave ~400k long-lived objects; every full
    collection walks them all, which measured 220 ms here: a stall of every request in
    flight, and the service's p99. Frozen objects are never collected (they live as
    long as the process anyway); what requests allocate is collected as usual.
    """
    gc.collect()
    gc.freeze()


class PredictionService:
    """Everything behind the endpoints: models, features, batching, log, metrics."""

    def __init__(
        self,
        settings: Settings,
        *,
        offload: bool = True,
        prediction_log: PredictionLog | None = None,
        multiprocess_metrics: bool = False,
    ) -> None:
        """
        Args:
            offload: run forward passes on a thread per model (else on the event loop).
            prediction_log: the log to feed (default: `open_prediction_log(settings)`).
            multiprocess_metrics: `/metrics` aggregates the values of all workers.
        """
        self.settings = settings
        self.serving = settings.serving
        self.metrics = ServingMetrics(multiprocess=multiprocess_metrics)
        self._arriving = 0
        self.manager = ModelManager(
            settings, self.metrics, expecting=self._more_expected, offload=offload
        )
        self.recorder = PredictionRecorder(self.serving.model_name, self.metrics, prediction_log)
        self._own_log = prediction_log is None
        self.entities = EntityLookup(settings, self.metrics)
        self.max_body_bytes = self.serving.max_body_bytes
        self.started_at: datetime | None = None
        self._opening_features: asyncio.Future[None] | None = None

    def _more_expected(self) -> bool:
        return self._arriving > 0

    # --- life cycle -------------------------------------------------------------------

    async def startup(self) -> None:
        """Start the prediction log, load the models, then poll the registry."""
        self.started_at = datetime.now(UTC)
        recorder = self.recorder
        if recorder.log is None:
            recorder.log = open_prediction_log(self.settings)
        recorder.log.start()
        self.metrics.add_stats("mlops_prediction_log", recorder.log.stats)
        profile = await asyncio.to_thread(
            load_served_profile, self.settings, self.serving.model_name
        )
        recorder.set_contract(profile, self.settings.validation)
        # Feast's import and store take seconds: open it while the models load.
        self._opening_features = asyncio.ensure_future(
            self.entities.open_quietly(f"{self.serving.model_name}_v1")
        )
        await self.manager.start(profile)
        champion = self.manager.snapshot.champion
        if champion is not None and champion.schema.entity is not None:
            await asyncio.wait([self._opening_features], timeout=READY_FEATURES_WAIT_S)
            if not self.entities.serves(champion.feature_service):
                await self.entities.open_quietly(champion.feature_service)
        freeze_startup_objects()

    @property
    def ready(self) -> bool:
        """A champion is loaded (and the online store was tried when it has an entity)."""
        champion = self.manager.snapshot.champion
        opening = self._opening_features
        return champion is not None and (
            champion.schema.entity is None or opening is None or opening.done()
        )

    async def shutdown(self) -> None:
        """Stop polling, let shadow scoring finish, flush the prediction log."""
        await self.manager.stop()
        await self.recorder.drain(SHADOW_DRAIN_S)
        self.entities.close()
        if self.recorder.log is not None and self._own_log:
            await asyncio.to_thread(self.recorder.log.close)
        gc.unfreeze()  # let exit-time clean-ups (DuckDB's, Feast's) collect what they own

    def not_ready_reason(self) -> str:
        """Why predictions are refused with 503 (for `/readyz` and the error document)."""
        manager = self.manager
        if manager.snapshot.champion is not None:
            return "opening the online feature store"
        if manager.last_error:
            return f"no model loaded: {manager.last_error}"
        return f"no model loaded yet: registered model {self.serving.model_name!r} has no champion"

    # --- the hot path -----------------------------------------------------------------

    async def predict_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /v1/predict` as a plain ASGI handler (see the module docstring)."""
        started = time.perf_counter()
        api_key = content_type = given_id = length = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                given_id = value.decode("latin-1")
            elif name == b"content-length":
                length = value.decode("latin-1")
        request_id = new_request_id(given_id)
        self._arriving += 1
        counted = [True]
        try:
            try:
                answer = await self.predict(
                    lambda: read_body(receive, self.max_body_bytes, length),
                    api_key,
                    content_type,
                    request_id,
                    started,
                    counted,
                )
            except RequestError as exc:
                answer = Answer.refused(exc, request_id)
            except Exception:
                logger.exception("predict %s failed", request_id)
                answer = Answer(
                    500,
                    error_body(500, "internal_error", "the prediction failed", request_id),
                    {"x-request-id": request_id},
                )
        finally:
            if counted[0]:
                self._arriving -= 1
        await send_answer(send, answer)
        self.metrics.http_response(PREDICT_PATH, answer.status)
        if answer.after is not None:
            answer.after()

    async def predict(
        self,
        read: Callable[[], Awaitable[bytes]],
        api_key: str | None,
        content_type: str | None,
        request_id: str,
        started: float,
        counted: list[bool] | None = None,
    ) -> Answer:
        """Validate, route, score; the answer carries the logging to do once sent.

        Args:
            read: reads the body (`serving.asgi.read_body`) once the headers pass: a
                request refused for its credentials or content type, or while no model
                is loaded, is answered without reading it.
            counted: `[True]` while this request counts as arriving (for the batchers'
                wait); cleared once its rows are ready to score.

        Raises:
            RequestError: a refused request (4xx) or no model loaded (503).
        """
        check_api_key(self.settings, api_key)
        require_json(content_type)
        snapshot = self.manager.snapshot
        champion = snapshot.champion
        if champion is None:
            raise RequestError(503, "not_ready", self.not_ready_reason())
        document = parse_json(await read())
        mode, items = split_predict(document, self.serving.max_rows_per_request)
        if mode == "instances":
            request = validate_instances(items, champion.schema, self.serving.impute_nulls)
            rows = request.rows
        else:
            request, rows = await self.entities.rows(items, champion)
        if counted is not None and counted[0]:
            counted[0] = False
            self._arriving -= 1
        return await self._score(snapshot, champion, request, rows, request_id, started)

    async def _score(
        self,
        snapshot: ServingSnapshot,
        champion: LoadedModel,
        request: PredictInput,
        rows: list[dict[str, Any]],
        request_id: str,
        started: float,
    ) -> Answer:
        n = len(rows)
        keys = request.entities
        challenger = snapshot.challenger
        answered_by: list[LoadedModel] = [champion] * n
        mirrored: list[int] = []
        if challenger is not None and snapshot.routable_challenger:
            rollout = snapshot.rollout
            for i in range(n):
                key = keys[i]
                decision = route(request_id if key is None else str(key), rollout, True)
                if decision.answer is Variant.CHALLENGER:
                    answered_by[i] = challenger
                if decision.mirror_to_challenger:
                    mirrored.append(i)
        challenger_rows = (
            [i for i in range(n) if answered_by[i] is not champion] if challenger else []
        )
        failures: dict[int, str] = {}
        probabilities: list[list[float]] = [[] for _ in range(n)]
        if not challenger_rows:
            try:
                probabilities = await champion.batcher.submit(rows)
            except Exception as exc:
                return self._failed(champion, request_id, exc, n)
        else:
            assert challenger is not None
            champion_rows = [i for i in range(n) if answered_by[i] is champion]
            outcome = await asyncio.gather(
                champion.batcher.submit([rows[i] for i in champion_rows]),
                challenger.batcher.submit([rows[i] for i in challenger_rows]),
                return_exceptions=True,
            )
            if isinstance(outcome[0], BaseException):
                return self._failed(champion, request_id, outcome[0], n)
            for i, p in zip(champion_rows, outcome[0], strict=True):
                probabilities[i] = p
            if isinstance(outcome[1], BaseException):
                # The challenger failed: the champion answers instead, the error is logged.
                logger.warning("challenger v%s failed: %s", challenger.version, outcome[1])
                for i in challenger_rows:
                    failures[i] = f"{type(outcome[1]).__name__}: {outcome[1]}"
                    answered_by[i] = champion
                try:
                    fallback = await champion.batcher.submit([rows[i] for i in challenger_rows])
                except Exception as exc:
                    return self._failed(champion, request_id, exc, n)
                for i, p in zip(challenger_rows, fallback, strict=True):
                    probabilities[i] = p
            else:
                for i, p in zip(challenger_rows, outcome[1], strict=True):
                    probabilities[i] = p

        name = self.serving.model_name
        imputed = request.imputed
        predictions: list[dict[str, Any]] = []
        labels: list[int | str] = []
        for i in range(n):
            model = answered_by[i]
            p = probabilities[i]
            label = model.classes[p.index(max(p))]
            labels.append(label)
            predictions.append(
                {
                    "prediction_id": f"{request_id}-{i}",
                    "prediction": label,
                    "probabilities": dict(zip(model.class_keys, p, strict=True)),
                    "model_version": model.version,
                    "variant": "champion" if model is champion else "challenger",
                    "entity": keys[i],
                    "imputed": imputed.get(i, ()),
                }
            )
        body = orjson.dumps(
            {"request_id": request_id, "model_name": name, "predictions": predictions}
        )
        latency = time.perf_counter() - started
        recorder = self.recorder

        def after() -> None:
            recorder.record_answer(
                champion,
                challenger,
                rows,
                keys,
                answered_by,
                probabilities,
                labels,
                failures,
                request_id,
                latency,
            )
            if mirrored and challenger is not None:
                recorder.score_shadow(challenger, rows, keys, mirrored, request_id)

        return Answer(200, body, {"x-request-id": request_id}, after)

    def _failed(
        self, champion: LoadedModel, request_id: str, exc: BaseException, rows: int
    ) -> Answer:
        self.recorder.record_failure(champion, request_id, exc, rows)
        return Answer(
            500,
            error_body(500, "prediction_failed", f"the model failed: {exc}", request_id),
            {"x-request-id": request_id},
        )

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
        """What request bodies look like for the served champion (for the OpenAPI document)."""
        champion = self.manager.snapshot.champion
        if champion is None:
            return None
        reader = self.entities.reader
        entity_type = (
            reader.entity_type
            if reader is not None and reader.feature_service == champion.feature_service
            else None
        )
        return ServedShape(
            champion.schema, self.serving.impute_nulls, entity_type, self.label_classes()
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
