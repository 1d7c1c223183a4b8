"""What an answered request leaves behind: metrics, prediction-log records, shadow scores.

All of it runs after the answer is sent (`Answer.after`), so none of it adds to a
request's latency. Record ids extend the answer's `prediction_id` (`<request id>-<row>`):
`-failed` for a challenger's failure on a row the champion answered instead, `-shadow`
for a mirrored row scored by the challenger and never answered. Rows of a request that
pinned a version are logged `pinned` (the canary and the drift monitor leave them out)
and counted in the metrics as any other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

from mlops.quality.bounds import FeatureBounds
from mlops.settings import ValidationSettings
from mlops.validation.profile import ReferenceProfile
from serving.loader import LoadedModel
from serving.metrics import FeatureQualityMetrics, ServingMetrics
from serving.prediction_log import PredictionLog, PredictionRecord

logger = logging.getLogger(__name__)


class PredictionRecorder:
    """Feeds the metrics and the prediction log of one served model name."""

    def __init__(
        self, model_name: str, metrics: ServingMetrics, log: PredictionLog | None = None
    ) -> None:
        """
        Args:
            log: where records go; None drops them (until the service sets it at start).
        """
        self.model_name = model_name
        self.metrics = metrics
        self.log = log
        self._background: set[asyncio.Task[None]] = set()
        self._profile: ReferenceProfile | None = None
        self._validation = ValidationSettings()
        self._feature_quality: dict[str, FeatureQualityMetrics] = {}

    def set_contract(
        self, profile: ReferenceProfile | None, validation: ValidationSettings
    ) -> None:
        """The data contract served feature values are counted against (None: nulls only)."""
        self._profile = profile
        self._validation = validation
        self._feature_quality.clear()

    def count_features(self, champion: LoadedModel, rows: list[dict[str, Any]]) -> None:
        """Per-feature nulls and contract violations of a request's rows (never raises)."""
        try:
            quality = self._feature_quality.get(champion.version)
            if quality is None:
                bounds = FeatureBounds.build(
                    champion.schema.numeric,
                    champion.schema.categorical,
                    self._profile,
                    self._validation,
                )
                quality = self.metrics.feature_quality(self.model_name, bounds)
                self._feature_quality[champion.version] = quality
            quality.observe(rows)
        except Exception:
            logger.exception("counting feature quality failed")

    def record_failure(
        self, champion: LoadedModel, request_id: str, exc: BaseException, rows: int
    ) -> None:
        """Count a request the champion failed (answered 500, nothing logged)."""
        logger.error("champion v%s failed on request %s: %r", champion.version, request_id, exc)
        metrics = self.metrics.for_model(self.model_name, champion.version, "champion")
        metrics.failed.inc()
        metrics.error("model_error", rows)

    def record_answer(
        self,
        champion: LoadedModel,
        challenger: LoadedModel | None,
        rows: list[dict[str, Any]],
        keys: list[str | int | None],
        answered_by: list[LoadedModel],
        probabilities: list[list[float]],
        labels: list[int | str],
        failures: dict[int, str],
        request_id: str,
        latency: float,
        *,
        pinned: bool,
    ) -> None:
        """Metrics and prediction-log records of an answered request.

        Args:
            failures: the challenger's error per row it failed on (the champion answered
                those rows instead).
            pinned: the client named the version that answers, the router did not pick it.
        """
        name = self.model_name
        latency_ms = latency * 1000.0
        now = datetime.now(UTC)
        by_challenger = sum(1 for model in answered_by if model is not champion)
        for model, count in ((champion, len(rows) - by_challenger), (challenger, by_challenger)):
            if model is None or not count:
                continue
            variant = "champion" if model is champion else "challenger"
            metrics = self.metrics.for_model(name, model.version, variant)
            metrics.ok.inc()
            metrics.latency.observe(latency)
            metrics.rows.inc(count)
        if failures and challenger is not None:
            metrics = self.metrics.for_model(name, challenger.version, "challenger")
            metrics.failed.inc()
            metrics.error("model_error", len(failures))
        self.count_features(champion, rows)
        log = self.log
        if log is None:
            return
        record = partial(
            PredictionRecord,
            request_id=request_id,
            model_name=name,
            latency_ms=latency_ms,
            ts=now,
            pinned=pinned,
        )
        records: list[PredictionRecord] = []
        for i, row in enumerate(rows):
            model = answered_by[i]
            key = keys[i]
            entity = None if key is None else str(key)
            if i in failures and challenger is not None:
                records.append(
                    record(
                        prediction_id=f"{request_id}-{i}-failed",
                        model_version=challenger.version,
                        variant="challenger",
                        shadow=False,
                        entity=entity,
                        features=row,
                        probabilities=(),
                        prediction="",
                        status="error",
                        error=failures[i],
                    )
                )
            records.append(
                record(
                    prediction_id=f"{request_id}-{i}",
                    model_version=model.version,
                    variant="champion" if model is champion else "challenger",
                    shadow=False,
                    entity=entity,
                    features=row,
                    probabilities=tuple(probabilities[i]),
                    prediction=str(labels[i]),
                    status="ok",
                    error=None,
                )
            )
        try:
            log.submit(records)
        except Exception:
            logger.exception("prediction log refused %d records", len(records))

    def score_shadow(
        self,
        challenger: LoadedModel,
        rows: list[dict[str, Any]],
        keys: list[str | int | None],
        mirrored: list[int],
        request_id: str,
    ) -> None:
        """Start scoring the `mirrored` rows on the challenger, in the background."""
        task = asyncio.ensure_future(self._shadow(challenger, rows, keys, mirrored, request_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) for shadow scoring under way to finish."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout_s)

    async def _shadow(
        self,
        challenger: LoadedModel,
        rows: list[dict[str, Any]],
        keys: list[str | int | None],
        mirrored: list[int],
        request_id: str,
    ) -> None:
        """Score mirrored rows on the challenger and log them (never answered)."""
        name = self.model_name
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
        record = partial(
            PredictionRecord,
            request_id=request_id,
            model_name=name,
            model_version=challenger.version,
            variant="challenger",
            shadow=True,
            latency_ms=latency_ms,
            status=status,
            error=error,
            ts=datetime.now(UTC),
        )
        records = []
        for i, p in zip(mirrored, scored, strict=True):
            key = keys[i]
            best = max(range(len(p)), key=p.__getitem__) if p else None
            records.append(
                record(
                    prediction_id=f"{request_id}-{i}-shadow",
                    entity=None if key is None else str(key),
                    features=rows[i],
                    probabilities=tuple(p),
                    prediction="" if best is None else str(challenger.classes[best]),
                )
            )
        if self.log is not None:
            try:
                self.log.submit(records)
            except Exception:
                logger.exception("prediction log refused %d shadow records", len(records))
