"""Entity mode: feature rows of a request's entity keys, from the online store.

`EntityLookup` owns the one `OnlineFeatureReader` of the process and the micro-batcher
of its reads. Opening the store takes seconds (Feast's import and registry) and may
fail while the store is down: a failure is remembered for `FEATURE_RETRY_S`, so entity
requests meanwhile answer 503 at once instead of each trying again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlops.errors import FeatureStoreError
from mlops.settings import Settings
from serving.batching import MicroBatcher
from serving.errors import FieldIssue, RequestError
from serving.loader import LoadedModel
from serving.metrics import ServingMetrics
from serving.online_features import OnlineFeatureReader
from serving.validation import PredictInput, validate_entities

logger = logging.getLogger(__name__)

FEATURE_RETRY_S = 5.0
"""How long entity mode waits before trying to open an unavailable online store again."""


class EntityLookup:
    """Turns entity keys into feature rows, through one reader and one lookup batcher."""

    def __init__(self, settings: Settings, metrics: ServingMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.reader: OnlineFeatureReader | None = None
        self._error: str | None = None
        self._failed_at = 0.0
        self._failed_for: str | None = None
        self._lock = asyncio.Lock()
        self._batcher: MicroBatcher[str | int, dict[str, Any] | None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def serves(self, feature_service: str) -> bool:
        """The reader is open on `feature_service`."""
        return self.reader is not None and self.reader.feature_service == feature_service

    async def rows(
        self, items: list[Any], model: LoadedModel
    ) -> tuple[PredictInput, list[dict[str, Any]]]:
        """The validated entity keys of a request and their feature rows, in order.

        Raises:
            RequestError: 422 when `model` names no entity, or for a bad key; 404 for
                keys the store does not know; 503 when the store is unavailable.
        """
        if model.schema.entity is None:
            raise RequestError(
                422,
                "entities_unsupported",
                "the served model names no entity: send feature rows in `instances`",
                "entities",
            )
        reader = await self.open(model.feature_service)
        request = validate_entities(items, reader.entity, reader.entity_type)
        keys = [key for key in request.entities if key is not None]
        batcher = self._batcher
        assert batcher is not None
        try:
            found = await batcher.submit(keys)
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

    async def open(self, feature_service: str) -> OnlineFeatureReader:
        """The reader of `feature_service`, opened (on a thread) unless it already is.

        Raises:
            RequestError: 503 when the store cannot be opened (now or in the last
                `FEATURE_RETRY_S` seconds).
        """
        reader = self.reader
        if reader is not None and reader.feature_service == feature_service:
            return reader
        async with self._lock:
            reader = self.reader
            if reader is not None and reader.feature_service == feature_service:
                return reader
            if (
                self._error is not None
                and self._failed_for == feature_service
                and time.monotonic() - self._failed_at < FEATURE_RETRY_S
            ):
                raise RequestError(503, "features_unavailable", self._error)
            try:
                reader = await asyncio.to_thread(
                    OnlineFeatureReader, self.settings, feature_service
                )
            except Exception as exc:
                self._error = f"the online store is unavailable: {exc}"
                self._failed_at = time.monotonic()
                self._failed_for = feature_service
                logger.warning("%s", self._error)
                raise RequestError(503, "features_unavailable", self._error) from exc
            self._error = None
            metrics = self.metrics
            # Concurrent requests' keys share one read. A local SQLite read takes a
            # third of a millisecond: on the event loop (no thread hand-offs). Redis and
            # PostgreSQL reads wait on the network: on a thread of their own.
            if self.settings.feast.online_store != "sqlite" and self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="online-features")
            self._batcher = MicroBatcher(
                reader.read,
                max_rows=self.settings.serving.batch_max_rows,
                executor=self._executor,
                name="online-features",
                observe=lambda rows, seconds: metrics.feature_lookup_seconds.observe(seconds),
            )
            self.reader = reader
            return reader

    async def open_quietly(self, feature_service: str) -> None:
        """`open`, with a failure only logged: entity requests answer 503 until it works."""
        try:
            await self.open(feature_service)
        except RequestError:
            pass

    def describe(self) -> dict[str, object] | None:
        """The open reader's feature service and entity, for `GET /v1/models`."""
        reader = self.reader
        if reader is None:
            return None
        return {
            "feature_service": reader.feature_service,
            "entity": reader.entity,
            "entity_type": reader.entity_type,
        }

    def close(self) -> None:
        """Let go of the lookup thread (a read in progress finishes on its own)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
