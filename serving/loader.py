"""Model slots and hot swap: what the service serves, and how it changes without a hiccup.

The service holds one immutable `ServingSnapshot`: the champion, the challenger (when
the registry has one that differs from the champion), and the rollout state. A request
reads the snapshot once and uses those objects to the end, so swapping in a new
snapshot (one attribute assignment, atomic for the event loop) never disturbs a request
in flight: the old model keeps answering the requests that started with it.

`ModelManager.refresh` (every `serving.poll_interval_s`, and on `POST /v1/admin/reload`):

1. reads the `champion` / `challenger` aliases and the rollout state from the registry;
2. for an alias that moved, downloads the version, loads it with its recorded digest
   (`artifact.sha256` tag; a mismatch raises `ArtifactIntegrityError`), warms it and
   smoke-tests it on reference rows (`serving.smoke`: the logged input example, an
   all-null row and a row of unseen categories);
3. swaps the snapshot. A version that fails any step is refused and remembered (not
   retried until its alias moves again or a reload is forced); the current model keeps
   serving. A promotion (the challenger becomes champion) reuses the loaded object.

All registry and loading work runs in threads; the event loop only swaps references.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from mlops.errors import ArtifactIntegrityError
from mlops.registry.client import (
    CHALLENGER,
    CHAMPION,
    SHA_TAG,
    download_artifact,
    registry_client,
    version_by_alias,
)
from mlops.rollout.state import RolloutState, Variant, read_rollout
from mlops.settings import Settings
from mlops.validation.profile import ReferenceProfile
from mlops.validation.suite import never_null_columns
from quantization.served import ServedModel, load_served_model, scheme_of
from serving.batching import MicroBatcher
from serving.metrics import ServingMetrics
from serving.online_features import FEATURES_SERVICE_TAG
from serving.smoke import reference_rows, smoke_test
from serving.validation import InputSchema

logger = logging.getLogger(__name__)

INLINE_ROWS = 32
"""Batches up to this size run on the event loop (well under a millisecond), larger ones on
the model's thread (see `serving.batching`)."""


Row = Mapping[str, Any]
Probabilities = list[float]


@dataclass(eq=False)
class LoadedModel:
    """A registered version in memory, warmed, smoke-tested and ready to score."""

    name: str
    version: str
    model: ServedModel
    scheme: str
    sha256: str
    run_id: str
    feature_service: str
    schema: InputSchema
    classes: tuple[int | str, ...]
    loaded_at: datetime
    load_seconds: float
    smoke_rows: int
    batcher: MicroBatcher[Row, Probabilities] = field(init=False, repr=False)
    executor: ThreadPoolExecutor | None = field(default=None, repr=False)

    class_keys: tuple[str, ...] = field(init=False)
    """Class values as text (JSON object keys, prediction-log values)."""

    def __post_init__(self) -> None:
        self.class_keys = tuple(str(c) for c in self.classes)

    def score(self, rows: list[Row]) -> list[Probabilities]:
        """Class probabilities of feature rows (one forward pass; pandas-free)."""
        arrays = self.model.preprocessor.transform_records(rows)
        out: list[Probabilities] = self.model.predict_proba_arrays(arrays).tolist()
        return out

    def retire(self) -> None:
        """Stop the batcher's thread once work in flight is done (requests still finish)."""
        self.batcher.close()
        if self.executor is not None:
            self.executor.shutdown(wait=False)

    def describe(self, variant: str) -> dict[str, object]:
        """What `GET /v1/models` shows of it."""
        return {
            "variant": variant,
            "name": self.name,
            "version": self.version,
            "scheme": self.scheme,
            "artifact_sha256": self.sha256,
            "run_id": self.run_id,
            "feature_service": self.feature_service,
            "classes": list(self.classes),
            "loaded_at": self.loaded_at.isoformat(),
            "load_seconds": round(self.load_seconds, 3),
            "smoke_test_rows": self.smoke_rows,
            "batches": self.batcher.calls,
            "rows_scored": self.batcher.rows,
        }


@dataclass(frozen=True)
class ServingSnapshot:
    """What the service serves right now; replaced as a whole, never mutated."""

    champion: LoadedModel | None
    challenger: LoadedModel | None
    rollout: RolloutState
    generation: int
    refreshed_at: datetime | None

    @property
    def loaded(self) -> tuple[LoadedModel, ...]:
        """The models loaded: the champion, then the challenger (either may be absent)."""
        return tuple(m for m in (self.champion, self.challenger) if m is not None)

    @property
    def routable_challenger(self) -> bool:
        """The challenger loaded here is the version the rollout is about."""
        return self.challenger is not None and (
            self.rollout.challenger_version == self.challenger.version
        )

    def traffic(self) -> dict[str, object]:
        """The split being applied: answered shares, and whether the challenger shadows."""
        running = self.rollout.status.value == "running" and self.routable_challenger
        share = 0.0 if not running or self.rollout.shadow else min(1.0, self.rollout.share)
        return {
            Variant.CHAMPION.value: round(1.0 - share, 6),
            Variant.CHALLENGER.value: round(share, 6),
            "shadow": bool(running and self.rollout.shadow),
        }


@dataclass(frozen=True)
class Refusal:
    """A version that was refused, and why."""

    version: str
    sha256: str
    reason: str
    at: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "version": self.version,
            "artifact_sha256": self.sha256,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


@dataclass
class RefreshReport:
    """What one refresh did."""

    loaded: list[str] = field(default_factory=list)
    """Versions loaded by this refresh."""
    refused: list[str] = field(default_factory=list)
    """Versions an alias names that are not served: refused now, or still refused."""
    swapped: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "loaded": self.loaded,
            "refused": self.refused,
            "swapped": self.swapped,
            "error": self.error,
        }


@dataclass(frozen=True)
class _Observed:
    champion: ModelVersion | None
    challenger: ModelVersion | None
    rollout: RolloutState


class ModelManager:
    """Loads the registry's champion and challenger and keeps the snapshot current."""

    def __init__(
        self,
        settings: Settings,
        metrics: ServingMetrics,
        *,
        expecting: Callable[[], bool] | None = None,
        offload: bool = True,
        client: MlflowClient | None = None,
    ) -> None:
        """
        Args:
            expecting: tells the batchers whether more rows are on their way.
            offload: run forward passes on one thread per model (else on the event loop).
            client: the registry client (default: from settings).
        """
        self.settings = settings
        self.name = settings.serving.model_name
        self.metrics = metrics
        self._expecting = expecting
        self._offload = offload
        self._client = client
        self._snapshot = ServingSnapshot(None, None, RolloutState(model_name=self.name), 0, None)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.refused: dict[str, Refusal] = {}
        self.last_error: str | None = None
        self.last_report = RefreshReport()
        self._never_null: frozenset[str] = frozenset()

    @property
    def snapshot(self) -> ServingSnapshot:
        """The current snapshot (read it once per request)."""
        return self._snapshot

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = registry_client(self.settings)
        return self._client

    async def start(self, contract: ReferenceProfile | None = None) -> None:
        """Load what the registry names, then poll it in the background.

        Args:
            contract: the data contract of the served dataset (`load_served_profile`):
                features it says are never null are refused as null in requests.
        """
        if contract is not None:
            self._never_null = never_null_columns(contract, self.settings.validation)
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="registry-poll")

    async def stop(self) -> None:
        """Stop polling and release the models' threads."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for model in (self._snapshot.champion, self._snapshot.challenger):
            if model is not None:
                model.retire()

    async def _poll(self) -> None:
        interval = self.settings.serving.poll_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:  # keep polling whatever one round did
                logger.exception("registry poll failed")

    async def refresh(self, force: bool = False) -> RefreshReport:
        """Bring the snapshot in line with the registry (see the module docstring).

        Args:
            force: also retry versions refused before.
        """
        async with self._lock:
            report = RefreshReport()
            try:
                observed = await asyncio.to_thread(self._observe)
            except Exception as exc:
                report.error = self.last_error = f"registry unreachable: {exc}"
                logger.warning("model %s: %s", self.name, report.error)
                self.last_report = report
                return report
            if force:
                self.refused.clear()
            current = self._snapshot
            champion = await self._resolve(observed.champion, current, CHAMPION, report)
            if champion is None:
                champion = current.champion  # no champion alias: keep what serves
            challenger: LoadedModel | None = None
            wanted = observed.challenger
            if wanted is not None and (champion is None or str(wanted.version) != champion.version):
                challenger = await self._resolve(wanted, current, CHALLENGER, report)
                if challenger is None and current.challenger is not None:
                    # refused: keep the loaded challenger only if it is still the one named
                    if current.challenger.version == str(wanted.version):
                        challenger = current.challenger
            changed = (
                champion is not current.champion
                or challenger is not current.challenger
                or observed.rollout != current.rollout
            )
            if changed:
                self._swap(champion, challenger, observed.rollout)
                report.swapped = True
            else:
                self._snapshot = ServingSnapshot(
                    current.champion,
                    current.challenger,
                    current.rollout,
                    current.generation,
                    datetime.now(UTC),
                )
            if not report.refused:
                self.last_error = None  # everything the registry names is served
            self.last_report = report
            return report

    def set_rollout(self, state: RolloutState) -> None:
        """Apply a rollout state written by this process (pause/resume) at once."""
        current = self._snapshot
        if state != current.rollout:
            self._swap(current.champion, current.challenger, state)

    def _swap(
        self,
        champion: LoadedModel | None,
        challenger: LoadedModel | None,
        rollout: RolloutState,
    ) -> None:
        old = self._snapshot
        self._snapshot = ServingSnapshot(
            champion, challenger, rollout, old.generation + 1, datetime.now(UTC)
        )
        for model in (old.champion, old.challenger):
            if model is not None and model is not champion and model is not challenger:
                model.retire()
        loaded = {}
        if champion is not None:
            loaded[CHAMPION] = (self.name, champion.version, champion.scheme)
        if challenger is not None:
            loaded[CHALLENGER] = (self.name, challenger.version, challenger.scheme)
        self.metrics.show_models(loaded)
        share = self._snapshot.traffic()[Variant.CHALLENGER.value]
        assert isinstance(share, float)
        self.metrics.rollout_share.labels(model=self.name).set(share)
        if (old.champion, old.challenger) != (champion, challenger):
            logger.info(
                "model %s: now serving champion v%s, challenger %s",
                self.name,
                None if champion is None else champion.version,
                None if challenger is None else f"v{challenger.version}",
            )

    def _observe(self) -> _Observed:
        client = self.client
        return _Observed(
            champion=version_by_alias(client, self.name, CHAMPION),
            challenger=version_by_alias(client, self.name, CHALLENGER),
            rollout=read_rollout(client, self.name),
        )

    async def _resolve(
        self,
        wanted: ModelVersion | None,
        current: ServingSnapshot,
        alias: str,
        report: RefreshReport,
    ) -> LoadedModel | None:
        """The loaded model for the version an alias names (None if none or refused)."""
        if wanted is None:
            return None
        version = str(wanted.version)
        sha = (wanted.tags or {}).get(SHA_TAG, "")
        for loaded in (current.champion, current.challenger):
            if loaded is not None and loaded.version == version and loaded.sha256 == sha:
                return loaded
        refusal = self.refused.get(version)
        if refusal is not None and refusal.sha256 == sha:
            # still refused (not retried until the alias moves or a reload is forced)
            self.last_error = f"v{version} ({alias}) refused: {refusal.reason}"
            if version not in report.refused:
                report.refused.append(version)
            return None
        try:
            model = await asyncio.to_thread(self._load, wanted)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.refused[version] = Refusal(version, sha, reason, datetime.now(UTC))
            self.last_error = f"v{version} ({alias}) refused: {reason}"
            report.refused.append(version)
            self.metrics.model_loads.labels(
                model=self.name, version=version, result="refused"
            ).inc()
            logger.error("model %s v%s (%s) refused: %s", self.name, version, alias, reason)
            return None
        self.metrics.model_loads.labels(model=self.name, version=version, result="ok").inc()
        report.loaded.append(version)
        return model

    def _load(self, wanted: ModelVersion) -> LoadedModel:
        """Download, verify, load, warm and smoke-test one version (in a thread)."""
        started = time.perf_counter()
        version = str(wanted.version)
        tags = wanted.tags or {}
        sha = tags.get(SHA_TAG)
        if not sha:
            raise ArtifactIntegrityError(f"version {version} has no {SHA_TAG} tag to verify")
        downloads = self.settings.home / "serving" / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{self.name}-v{version}-", dir=downloads) as tmp:
            folder = download_artifact(self.client, self.name, version, Path(tmp))
            model = load_served_model(folder, sha)
            reference = reference_rows(Path(tmp), model)
        smoke_rows = smoke_test(model, reference)
        schema = InputSchema(
            numeric=model.schema.numeric,
            categorical=model.schema.categorical,
            entity=entity_of(model),
            never_null=self._never_null & frozenset(model.schema.columns),
        )
        loaded = LoadedModel(
            name=self.name,
            version=version,
            model=model,
            scheme=scheme_of(model).value,
            sha256=sha,
            run_id=wanted.run_id or "",
            feature_service=tags.get(FEATURES_SERVICE_TAG) or f"{self.name}_v1",
            schema=schema,
            classes=tuple(model.classes),
            loaded_at=datetime.now(UTC),
            load_seconds=time.perf_counter() - started,
            smoke_rows=smoke_rows,
        )
        if self._offload:
            loaded.executor = ThreadPoolExecutor(1, thread_name_prefix=f"model-v{version}")
        metrics = self.metrics

        def observe(rows: int, seconds: float) -> None:
            variant = CHAMPION if self._snapshot.champion is loaded else CHALLENGER
            metrics.for_model(self.name, version, variant).observe_batch(rows, seconds)

        loaded.batcher = MicroBatcher(
            loaded.score,
            max_rows=self.settings.serving.batch_max_rows,
            wait_s=self.settings.serving.batch_wait_ms / 1000.0,
            executor=loaded.executor,
            inline_rows=INLINE_ROWS,
            expecting=self._expecting,
            observe=observe,
            name=f"{self.name}-v{version}",
        )
        logger.info(
            "model %s v%s loaded (%s, %d smoke rows) in %.2fs",
            self.name,
            version,
            loaded.scheme,
            smoke_rows,
            loaded.load_seconds,
        )
        return loaded


def entity_of(model: ServedModel) -> str | None:
    """The entity column the model's training data was keyed by (lineage in the artifact)."""
    from mlops.modeling import TabularModel
    from quantization.model import QuantizedModel

    inner = model.model if isinstance(model, QuantizedModel) else model
    return inner.roles.entity if isinstance(inner, TabularModel) else None
