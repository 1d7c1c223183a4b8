"""The prediction service: FastAPI app, with a lean hand-written path for `POST /v1/predict`.

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

The hot path. `POST /v1/predict` is answered by `PredictionService.predict_asgi`, a
plain ASGI handler that `ServingApp.__call__` hands the request to before FastAPI's
routing (measured here: ~10k trivial requests/s through a raw ASGI handler against
~3k through a FastAPI route). It reads the body, parses it with orjson, validates it
by hand (`serving.schemas`), routes each row (`serving.routing`), and awaits the
rows' share of a micro-batch (`serving.batching`) on the model picked by the
snapshot read at the start (`serving.loader`): a hot swap never touches a request in
flight. The answer is sent before the prediction log, the metrics and any shadow
scoring are fed. The FastAPI route of the same path exists for the OpenAPI document
and calls the same code.

Errors are JSON documents `{"error": {...}, "request_id": ...}` (see
`serving.schemas`); a bad request is always a 4xx naming the field, never a 500.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops.errors import FeatureStoreError
from mlops.rollout.state import (
    RolloutError,
    RolloutState,
    Variant,
    pause_rollout,
    resume_rollout,
)
from mlops.settings import Settings
from serving.auth import (
    admin_dependency,
    admin_scheme,
    api_key_dependency,
    api_key_scheme,
    check_api_key,
)
from serving.batching import MicroBatcher
from serving.loader import LoadedModel, ModelManager, ServingSnapshot
from serving.metrics import ServingMetrics
from serving.online_features import OnlineFeatureReader
from serving.prediction_log import (
    FeedbackRecord,
    PredictionLog,
    PredictionRecord,
    open_prediction_log,
)
from serving.routing import route
from serving.schemas import (
    ERROR_RESPONSES,
    FeedbackRequest,
    FeedbackResponse,
    FieldIssue,
    PredictInput,
    PredictRequest,
    PredictResponse,
    RequestError,
    error_body,
    parse_json,
    split_predict,
    validate_entities,
    validate_feedback,
    validate_instances,
)

logger = logging.getLogger(__name__)

PREDICT_PATH = "/v1/predict"
JSON = "application/json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_BODY_OVERHEAD_BYTES = 64 * 1024
_BYTES_PER_ROW = 4 * 1024
"""The largest body accepted: `max_rows_per_request` rows of this size, plus overhead."""
FEATURE_RETRY_S = 5.0
"""How long entity mode waits before trying to open an unavailable online store again."""
READY_FEATURES_WAIT_S = 60.0
"""Start-up waits this long at most for the online store before declaring readiness."""
"""How long entity mode waits before trying to open an unavailable online store again."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(slots=True)
class Answer:
    """An HTTP answer of the service, plus work to do once it is sent."""

    status: int
    body: bytes
    headers: dict[str, str]
    after: Callable[[], None] | None = None


def freeze_startup_objects() -> None:
    """Move everything alive after start-up out of the garbage collector's sight.

    torch, MLflow, Feast and FastAPI leave ~400k long-lived objects; every full
    collection walks them all, which measured 220 ms here: a stall of every request in
    flight, and the service's p99. Frozen objects are never collected (they live as
    long as the process anyway); what requests allocate is collected as usual.
    """
    gc.collect()
    gc.freeze()


def new_request_id(given: str | None) -> str:
    """The caller's `X-Request-ID` when it is a sane token, else a fresh random one."""
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


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
        self.log = prediction_log
        self._own_log = prediction_log is None
        self._reader: OnlineFeatureReader | None = None
        self._reader_error: str | None = None
        self._reader_failed_at = 0.0
        self._reader_failed_for: str | None = None
        self._reader_lock = asyncio.Lock()
        self._lookups: MicroBatcher[str | int, dict[str, Any] | None] | None = None
        self._lookups_executor: ThreadPoolExecutor | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.max_body_bytes = self.serving.max_rows_per_request * _BYTES_PER_ROW + (
            _BODY_OVERHEAD_BYTES
        )
        self.started_at: datetime | None = None
        self._reader_task: asyncio.Future[None] | None = None

    def _more_expected(self) -> bool:
        return self._arriving > 0

    # --- life cycle -------------------------------------------------------------------

    async def startup(self) -> None:
        """Start the prediction log, load the models, then poll the registry."""
        self.started_at = datetime.now(UTC)
        if self.log is None:
            self.log = open_prediction_log(self.settings)
        self.log.start()
        self.metrics.add_stats("mlops_prediction_log", self.log.stats)
        # Feast's import and store take seconds: open it while the models load.
        self._reader_task = asyncio.ensure_future(
            self._open_reader_quietly(f"{self.serving.model_name}_v1")
        )
        await self.manager.start()
        champion = self.manager.snapshot.champion
        if champion is not None and champion.schema.entity is not None:
            await asyncio.wait([self._reader_task], timeout=READY_FEATURES_WAIT_S)
            if self._reader is None or self._reader.feature_service != champion.feature_service:
                await self._open_reader_quietly(champion.feature_service)
        freeze_startup_objects()

    @property
    def ready(self) -> bool:
        """A champion is loaded (and the online store was tried when it has an entity)."""
        champion = self.manager.snapshot.champion
        return champion is not None and (
            champion.schema.entity is None or self._reader_task is None or self._reader_task.done()
        )

    async def shutdown(self) -> None:
        """Stop polling, let shadow scoring finish, flush the prediction log."""
        await self.manager.stop()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5.0)
        if self._lookups_executor is not None:
            self._lookups_executor.shutdown(wait=False)
        if self.log is not None and self._own_log:
            await asyncio.to_thread(self.log.close)
        gc.unfreeze()  # let exit-time clean-ups (DuckDB's, Feast's) collect what they own

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the hot path -----------------------------------------------------------------

    async def predict_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /v1/predict` as a plain ASGI handler (see the module docstring)."""
        started = time.perf_counter()
        api_key = content_type = given_id = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                given_id = value.decode("latin-1")
        request_id = new_request_id(given_id)
        self._arriving += 1
        counted = [True]
        try:
            try:
                body = await self._read_body(receive)
                answer = await self.predict(
                    body, api_key, content_type, request_id, started, counted
                )
            except RequestError as exc:
                answer = self._refusal(exc, request_id)
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
        await _send(send, answer)
        self.metrics.http_response(PREDICT_PATH, answer.status)
        if answer.after is not None:
            answer.after()

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestError(400, "disconnected", "the client went away")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise RequestError(
                        413,
                        "body_too_large",
                        f"the body exceeds {self.max_body_bytes} bytes",
                        "body",
                    )
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    def _refusal(exc: RequestError, request_id: str) -> Answer:
        return Answer(exc.status, exc.body(request_id), {"x-request-id": request_id, **exc.headers})

    async def predict(
        self,
        body: bytes,
        api_key: str | None,
        content_type: str | None,
        request_id: str,
        started: float,
        counted: list[bool] | None = None,
    ) -> Answer:
        """Validate, route, score; the answer carries the logging to do once sent.

        Raises:
            RequestError: a refused request (4xx) or no model loaded (503).
        """
        check_api_key(self.settings, api_key)
        if content_type is not None and "json" not in content_type.lower():
            raise RequestError(
                415, "unsupported_media_type", f"send application/json, not {content_type}"
            )
        snapshot = self.manager.snapshot
        champion = snapshot.champion
        if champion is None:
            raise RequestError(503, "not_ready", self._not_ready_reason())
        mode, items = split_predict(parse_json(body), self.serving.max_rows_per_request)
        if mode == "instances":
            request = validate_instances(items, champion.schema)
            rows = request.rows
        else:
            request, rows = await self._entity_rows(items, champion)
        if counted is not None and counted[0]:
            counted[0] = False
            self._arriving -= 1
        return await self._score(snapshot, champion, request, rows, request_id, started)

    async def _entity_rows(
        self, items: list[Any], champion: LoadedModel
    ) -> tuple[PredictInput, list[dict[str, Any]]]:
        if champion.schema.entity is None:
            raise RequestError(
                422,
                "entities_unsupported",
                "the served model names no entity: send feature rows in `instances`",
                "entities",
            )
        reader = await self._reader_for(champion.feature_service)
        request = validate_entities(items, reader.entity, reader.entity_type)
        keys = [key for key in request.entities if key is not None]
        lookups = self._lookups
        assert lookups is not None
        try:
            found = await lookups.submit(keys)
        except FeatureStoreError as exc:
            raise RequestError(503, "features_unavailable", str(exc)) from exc
        except Exception as exc:
            logger.exception("online feature read failed")
            raise RequestError(
                503, "features_unavailable", f"the online store failed: {exc}"
            ) from exc
        missing = [
            FieldIssue(
                f"entities[{i}].{reader.entity}",
                "unknown_entity",
                f"no features for {key!r} in the online store",
            )
            for i, (key, row) in enumerate(zip(keys, found, strict=True))
            if row is None
        ]
        if missing:
            raise RequestError.from_issues(404, missing[:20], max(0, len(missing) - 20))
        rows: list[dict[str, Any]] = [row for row in found if row is not None]
        return request, rows

    async def _reader_for(self, feature_service: str) -> OnlineFeatureReader:
        reader = self._reader
        if reader is not None and reader.feature_service == feature_service:
            return reader
        async with self._reader_lock:
            reader = self._reader
            if reader is not None and reader.feature_service == feature_service:
                return reader
            if (
                self._reader_error is not None
                and self._reader_failed_for == feature_service
                and time.monotonic() - self._reader_failed_at < FEATURE_RETRY_S
            ):
                raise RequestError(503, "features_unavailable", self._reader_error)
            try:
                reader = await asyncio.to_thread(
                    OnlineFeatureReader, self.settings, feature_service
                )
            except Exception as exc:
                self._reader_error = f"the online store is unavailable: {exc}"
                self._reader_failed_at = time.monotonic()
                self._reader_failed_for = feature_service
                logger.warning("%s", self._reader_error)
                raise RequestError(503, "features_unavailable", self._reader_error) from exc
            self._reader_error = None
            metrics = self.metrics
            # Concurrent requests' keys share one read. A local SQLite read takes a
            # third of a millisecond: on the event loop (no thread hand-offs). Redis and
            # PostgreSQL reads wait on the network: on a thread of their own.
            if self.settings.feast.online_store != "sqlite" and self._lookups_executor is None:
                self._lookups_executor = ThreadPoolExecutor(1, thread_name_prefix="online-features")
            self._lookups = MicroBatcher(
                reader.read,
                max_rows=self.serving.batch_max_rows,
                executor=self._lookups_executor,
                name="online-features",
                observe=lambda rows, seconds: metrics.feature_lookup_seconds.observe(seconds),
            )
            self._reader = reader
            return reader

    async def _open_reader_quietly(self, feature_service: str) -> None:
        try:
            await self._reader_for(feature_service)
        except RequestError:
            pass  # logged; entity requests answer 503 until the store is there

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
                return self._failed(champion, snapshot, request_id, exc, n)
        else:
            assert challenger is not None
            champion_rows = [i for i in range(n) if answered_by[i] is champion]
            outcome = await asyncio.gather(
                champion.batcher.submit([rows[i] for i in champion_rows]),
                challenger.batcher.submit([rows[i] for i in challenger_rows]),
                return_exceptions=True,
            )
            if isinstance(outcome[0], BaseException):
                return self._failed(champion, snapshot, request_id, outcome[0], n)
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
                    return self._failed(champion, snapshot, request_id, exc, n)
                for i, p in zip(challenger_rows, fallback, strict=True):
                    probabilities[i] = p
            else:
                for i, p in zip(challenger_rows, outcome[1], strict=True):
                    probabilities[i] = p

        name = self.serving.model_name
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
                }
            )
        body = orjson.dumps(
            {"request_id": request_id, "model_name": name, "predictions": predictions}
        )
        latency = time.perf_counter() - started

        def after() -> None:
            self._record(
                snapshot,
                champion,
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
                self._spawn(self._shadow(challenger, rows, keys, mirrored, request_id))

        return Answer(200, body, {"x-request-id": request_id}, after)

    def _failed(
        self,
        champion: LoadedModel,
        snapshot: ServingSnapshot,
        request_id: str,
        exc: BaseException,
        rows: int,
    ) -> Answer:
        logger.error("champion v%s failed on request %s: %r", champion.version, request_id, exc)
        metrics = self.metrics.for_model(self.serving.model_name, champion.version, "champion")
        metrics.failed.inc()
        metrics.error("model_error", rows)
        return Answer(
            500,
            error_body(500, "prediction_failed", f"the model failed: {exc}", request_id),
            {"x-request-id": request_id},
        )

    def _record(
        self,
        snapshot: ServingSnapshot,
        champion: LoadedModel,
        rows: list[dict[str, Any]],
        keys: list[str | int | None],
        answered_by: list[LoadedModel],
        probabilities: list[list[float]],
        labels: list[int | str],
        failures: dict[int, str],
        request_id: str,
        latency: float,
    ) -> None:
        """Metrics and prediction-log records of an answered request (after sending it)."""
        name = self.serving.model_name
        latency_ms = latency * 1000.0
        now = datetime.now(UTC)
        by_challenger = sum(1 for model in answered_by if model is not champion)
        for model, count in (
            (champion, len(rows) - by_challenger),
            (snapshot.challenger, by_challenger),
        ):
            if model is None or not count:
                continue
            variant = "champion" if model is champion else "challenger"
            metrics = self.metrics.for_model(name, model.version, variant)
            metrics.ok.inc()
            metrics.latency.observe(latency)
            metrics.rows.inc(count)
        challenger = snapshot.challenger
        if failures and challenger is not None:
            metrics = self.metrics.for_model(name, challenger.version, "challenger")
            metrics.failed.inc()
            metrics.error("model_error", len(failures))
        log = self.log
        if log is None:
            return
        records: list[PredictionRecord] = []
        for i, row in enumerate(rows):
            model = answered_by[i]
            key = keys[i]
            entity = None if key is None else str(key)
            if i in failures and challenger is not None:
                records.append(
                    PredictionRecord(
                        prediction_id=f"{request_id}-{i}-failed",
                        request_id=request_id,
                        model_name=name,
                        model_version=challenger.version,
                        variant="challenger",
                        shadow=False,
                        entity=entity,
                        features=row,
                        probabilities=(),
                        prediction="",
                        latency_ms=latency_ms,
                        status="error",
                        error=failures[i],
                        ts=now,
                    )
                )
            records.append(
                PredictionRecord(
                    prediction_id=f"{request_id}-{i}",
                    request_id=request_id,
                    model_name=name,
                    model_version=model.version,
                    variant="champion" if model is champion else "challenger",
                    shadow=False,
                    entity=entity,
                    features=row,
                    probabilities=tuple(probabilities[i]),
                    prediction=str(labels[i]),
                    latency_ms=latency_ms,
                    status="ok",
                    error=None,
                    ts=now,
                )
            )
        try:
            log.submit(records)
        except Exception:
            logger.exception("prediction log refused %d records", len(records))

    async def _shadow(
        self,
        challenger: LoadedModel,
        rows: list[dict[str, Any]],
        keys: list[str | int | None],
        mirrored: list[int],
        request_id: str,
    ) -> None:
        """Score mirrored rows on the challenger and log them (never answered)."""
        name = self.serving.model_name
        metrics = self.metrics.for_model(name, challenger.version, "challenger")
        started = time.perf_counter()
        status, error = "ok", None
        try:
            scored = await challenger.batcher.submit([rows[i] for i in mirrored])
        except Exception as exc:
            status, error = "error", f"{type(exc).__name__}: {exc}"
            scored = [[] for _ in mirrored]
            metrics.error("shadow_error", len(mirrored))
        latency_ms = (time.perf_counter() - started) * 1000.0
        metrics.shadow_rows.inc(len(mirrored))
        now = datetime.now(UTC)
        records = []
        for i, p in zip(mirrored, scored, strict=True):
            key = keys[i]
            best = max(range(len(p)), key=p.__getitem__) if p else None
            records.append(
                PredictionRecord(
                    prediction_id=f"{request_id}-{i}-shadow",
                    request_id=request_id,
                    model_name=name,
                    model_version=challenger.version,
                    variant="challenger",
                    shadow=True,
                    entity=None if key is None else str(key),
                    features=rows[i],
                    probabilities=tuple(p),
                    prediction="" if best is None else str(challenger.classes[best]),
                    latency_ms=latency_ms,
                    status=status,
                    error=error,
                    ts=now,
                )
            )
        if self.log is not None:
            try:
                self.log.submit(records)
            except Exception:
                logger.exception("prediction log refused %d shadow records", len(records))

    def _not_ready_reason(self) -> str:
        manager = self.manager
        if manager.snapshot.champion is not None:
            return "opening the online feature store"
        if manager.last_error:
            return f"no model loaded: {manager.last_error}"
        return f"no model loaded yet: registered model {self.serving.model_name!r} has no champion"

    # --- the other endpoints ----------------------------------------------------------

    def feedback(self, body: bytes, request_id: str) -> Answer:
        """Queue late labels for the prediction log.

        Raises:
            RequestError: a refused document.
        """
        snapshot = self.manager.snapshot
        classes = {
            key
            for model in (snapshot.champion, snapshot.challenger)
            if model is not None
            for key in model.class_keys
        }
        labels = validate_feedback(
            parse_json(body), self.serving.max_rows_per_request, frozenset(classes) or None
        )
        now = datetime.now(UTC)
        if self.log is None:
            raise RequestError(503, "not_ready", "the prediction log is not started")
        self.log.submit_feedback([FeedbackRecord(x.prediction_id, x.label, now) for x in labels])
        body_out = orjson.dumps({"accepted": len(labels), "request_id": request_id})
        return Answer(202, body_out, {"x-request-id": request_id})

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
            else snapshot.champion.schema.describe(),
            "traffic": snapshot.traffic(),
            "rollout": rollout.model_dump(mode="json"),
            "generation": snapshot.generation,
            "refreshed_at": None
            if snapshot.refreshed_at is None
            else snapshot.refreshed_at.isoformat(),
            "poll_interval_s": self.serving.poll_interval_s,
            "last_error": manager.last_error,
            "refused": [r.as_dict() for r in manager.refused.values()],
            "online_features": None
            if self._reader is None
            else {
                "feature_service": self._reader.feature_service,
                "entity": self._reader.entity,
                "entity_type": self._reader.entity_type,
            },
        }

    async def change_rollout(self, action: str, reason: str) -> RolloutState:
        """Pause or resume the rollout in the registry, and apply it here at once.

        Raises:
            RequestError: 409 when there is no rollout in a state to pause or resume.
        """
        client = self.manager.client
        name = self.serving.model_name
        try:
            if action == "pause":
                state = await asyncio.to_thread(pause_rollout, client, name, reason)
            else:
                state = await asyncio.to_thread(resume_rollout, client, name)
        except RolloutError as exc:
            raise RequestError(409, "rollout_conflict", str(exc)) from exc
        self.manager.set_rollout(state)
        return state


async def _send(send: Send, answer: Answer) -> None:
    headers = [
        (b"content-type", JSON.encode()),
        (b"content-length", str(len(answer.body)).encode()),
    ]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def _as_response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type=JSON)


class ServingApp(FastAPI):
    """FastAPI, except that `POST /v1/predict` goes straight to the lean handler."""

    service: PredictionService

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PREDICT_PATH and scope["method"] == "POST":
            await self.service.predict_asgi(scope, receive, send)
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
    require_key = [Depends(api_key_dependency(settings)), Security(api_key_scheme)]
    require_admin = [Depends(admin_dependency(settings)), Security(admin_scheme)]

    @app.exception_handler(RequestError)
    async def _refused(request: Request, exc: RequestError) -> Response:
        request_id = new_request_id(request.headers.get("x-request-id"))
        service.metrics.http_response(_route_of(request), exc.status)
        return _as_response(PredictionService._refusal(exc, request_id))

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
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
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
        responses=ERROR_RESPONSES,
        dependencies=[Security(api_key_scheme)],
        tags=["predict"],
    )
    async def predict(request: Request) -> Response:
        """Reached through FastAPI only when the app is mounted under a prefix: the
        service normally answers this path in `PredictionService.predict_asgi`."""
        started = time.perf_counter()
        request_id = new_request_id(request.headers.get("x-request-id"))
        body = await request.body()
        answer = await service.predict(
            body,
            request.headers.get("x-api-key"),
            request.headers.get("content-type"),
            request_id,
            started,
        )
        if answer.after is not None:
            answer.after()
        return _as_response(answer)

    @app.post(
        "/v1/feedback",
        summary="Labels that arrived after the prediction",
        status_code=202,
        response_model=FeedbackResponse,
        responses=ERROR_RESPONSES,
        dependencies=require_key,
        tags=["predict"],
    )
    async def feedback(request: Request) -> Response:
        request_id = new_request_id(request.headers.get("x-request-id"))
        answer = service.feedback(await request.body(), request_id)
        service.metrics.http_response("/v1/feedback", answer.status)
        return _as_response(answer)

    @app.get(
        "/v1/models",
        summary="Loaded models, input schema, traffic split, rollout stage",
        dependencies=require_key,
        tags=["models"],
    )
    async def models() -> Response:
        return Response(orjson.dumps(service.models()), media_type=JSON)

    @app.get("/healthz", summary="The process is alive", tags=["health"])
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get("/readyz", summary="A champion model is loaded", tags=["health"])
    async def readyz() -> Response:
        champion = service.manager.snapshot.champion
        if champion is None or not service.ready:
            body = {"status": "not_ready", "reason": service._not_ready_reason()}
            return Response(orjson.dumps(body), status_code=503, media_type=JSON)
        body = {
            "status": "ready",
            "model": settings.serving.model_name,
            "version": champion.version,
        }
        return Response(orjson.dumps(body), media_type=JSON)

    @app.get("/metrics", summary="Prometheus metrics", tags=["health"])
    async def metrics() -> Response:
        data, content_type = service.metrics.exposition()
        return Response(data, media_type=content_type)

    @app.post(
        "/v1/admin/reload",
        summary="Re-read the registry now (force: retry refused versions)",
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
        dependencies=require_admin,
        tags=["admin"],
    )
    async def pause(request: Request) -> Response:
        reason = await _reason(request)
        state = await service.change_rollout("pause", reason)
        return Response(state.model_dump_json().encode(), media_type=JSON)

    @app.post(
        "/v1/admin/rollout/resume",
        summary="Resume a paused canary rollout",
        dependencies=require_admin,
        tags=["admin"],
    )
    async def resume() -> Response:
        state = await service.change_rollout("resume", "")
        return Response(state.model_dump_json().encode(), media_type=JSON)

    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app


async def _reason(request: Request) -> str:
    """The optional `{"reason": "..."}` of a pause request."""
    body = await request.body()
    if not body.strip():
        return "paused by an operator (serving admin API)"
    document = parse_json(body)
    if not isinstance(document, dict) or set(document) - {"reason"}:
        raise RequestError(422, "invalid_body", 'expected {"reason": "..."}', "body")
    reason = document.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise RequestError(422, "wrong_type", "expected a string", "reason")
    return reason or "paused by an operator (serving admin API)"


def _route_of(request: Request) -> str:
    found = request.scope.get("route")
    path = getattr(found, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, with the request bodies the handlers parse by hand."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model, path in ((PredictRequest, PREDICT_PATH), (FeedbackRequest, "/v1/feedback")):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            document["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        app.openapi_schema = document
        return document

    return build
