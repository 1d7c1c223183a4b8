"""`ServingRuntime`: what the service holds while it runs, and how it starts and stops.

The models (`serving.loader`: champion and challenger in one immutable snapshot, the
registry polled), the online features (`serving.entity_lookup`), the prediction log and
the metrics (`serving.recording`), and how many requests are arriving, which the
micro-batchers wait for. `startup` and `shutdown` bring them up and down in order;
`served` names the loaded model a request asks for. Requests are answered on top of
it, by `serving.service.PredictionService`.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime

from mlops.quality.bounds import load_served_profile
from mlops.settings import Settings
from serving.entity_lookup import EntityLookup
from serving.errors import RequestError
from serving.loader import LoadedModel, ModelManager, ServingSnapshot
from serving.metrics import ServingMetrics
from serving.prediction_log import PredictionLog, open_prediction_log
from serving.recording import PredictionRecorder

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


class ServingRuntime:
    """The service's long-lived parts: models, features, log, metrics, arrivals."""

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
        self._arriving = 0  # requests read whose rows are not ready to score yet
        self.manager = ModelManager(
            settings, self.metrics, expecting=self._more_expected, offload=offload
        )
        self.recorder = PredictionRecorder(self.serving.model_name, self.metrics, prediction_log)
        self._own_log = prediction_log is None
        self.entities = EntityLookup(settings, self.metrics)
        self.started_at: datetime | None = None
        self._opening_features: asyncio.Future[None] | None = None

    def _more_expected(self) -> bool:
        """Whether rows are on their way: a batcher waits a little for them."""
        return self._arriving > 0

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

    def check_model(self, name: str) -> None:
        """Refuse a model name this service does not serve.

        Raises:
            RequestError: 404.
        """
        if name != self.serving.model_name:
            raise RequestError(
                404,
                "unknown_model",
                f"unknown model {name!r}: this service serves {self.serving.model_name!r}",
            )

    def served(
        self, snapshot: ServingSnapshot, name: str, version: str | None
    ) -> tuple[LoadedModel, LoadedModel]:
        """The champion, and the loaded model that `name` and `version` name (the champion
        when no version is given).

        Raises:
            RequestError: 404 for another model or a version not loaded here (champion or
                challenger); 503 while no champion is loaded.
        """
        self.check_model(name)
        champion = snapshot.champion
        if champion is None:
            raise RequestError(503, "not_ready", self.not_ready_reason())
        if version is None:
            return champion, champion
        for model in snapshot.loaded:
            if model.version == version:
                return champion, model
        served = ", ".join(m.version for m in snapshot.loaded)
        raise RequestError(
            404,
            "unknown_version",
            f"version {version!r} of {name!r} is not served here (served: {served})",
        )
