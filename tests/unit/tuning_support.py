"""Shared helpers for the tuning and tracking tests: a small training set and fake fits.

The fakes honour the `fit` contract (report every epoch through `on_epoch`, let what it
raises propagate) with curves fixed by the hyperparameters, so tests of the study
mechanics are exact and fast. Everything here is importable by a spawned process.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlops import synthetic
from mlops.dataset_spec import DatasetSpec, FeatureSchema, Task
from mlops.errors import ConfigError
from mlops.modeling.config import TrainConfig
from mlops.modeling.train import fit as real_fit
from mlops.settings import Settings, TuningSettings
from mlops.sources import sha256_file
from mlops.tracking import TrialTracker
from mlops.tuning import TuningData, run_trials

SPEC = DatasetSpec(
    name="card_fraud",
    entity=synthetic.ENTITY,
    timestamp=synthetic.TIMESTAMP,
    label=synthetic.LABEL,
    task=Task.BINARY,
    exclude=(synthetic.TRANSACTION_ID,),
)


def write_tuning_data(folder: Path, rows: int = 2_000, seed: int = 7) -> TuningData:
    """A synthetic baseline batch stored as parquet, referenced by path and hash."""
    frame = synthetic.generate(
        synthetic.Scenario.BASELINE, rows=rows, start=datetime(2024, 1, 1), seed=seed
    )
    path = synthetic.write_batch(frame, folder / f"training-{rows}-{seed}.parquet")
    return TuningData(
        uri=str(path),
        sha256=sha256_file(path),
        spec=SPEC,
        feature_schema=SPEC.resolve_schema(frame),
    )


def psycopg_url(url: str) -> str:
    """SQLAlchemy URL for psycopg 3 (a bare postgresql:// would ask for psycopg2)."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def tuning_settings(settings: Settings, **tuning: Any) -> Settings:
    """The fixture's settings with a tuning section for one test."""
    return settings.model_copy(update={"tuning": TuningSettings(**tuning)})


@dataclass(frozen=True)
class ToyEpoch:
    epoch: int
    train_loss: float
    valid_loss: float
    valid_auc: float


@dataclass(frozen=True)
class ToyResult:
    history: tuple[ToyEpoch, ...]
    best_epoch: int
    best_valid_loss: float


def toy_loss(config: TrainConfig, epoch: int) -> float:
    """Validation loss: best near learning_rate 1e-3, falling with every epoch."""
    distance = abs(math.log10(config.learning_rate) + 3.0)  # 0 (best) .. 1 (worst)
    return 0.2 + 0.5 * distance + 0.3 / epoch


def toy_fit(
    config: TrainConfig,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    spec: DatasetSpec,
    schema: FeatureSchema,
    *,
    on_epoch: Callable[[ToyEpoch], None] | None = None,
) -> ToyResult:
    """A deterministic stand-in for `fit`: every epoch improves, nothing stops early."""
    history: list[ToyEpoch] = []
    for epoch in range(1, config.max_epochs + 1):
        loss = toy_loss(config, epoch)
        record = ToyEpoch(epoch, loss + 0.01, loss, 1.0 - loss)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    best = history[-1]
    return ToyResult(tuple(history), best.epoch, best.valid_loss)


@dataclass(frozen=True)
class SlowFit:
    """`toy_fit` that sleeps per epoch (to make trials overlap or hit a timeout)."""

    seconds_per_epoch: float

    def __call__(
        self,
        config: TrainConfig,
        train: pd.DataFrame,
        valid: pd.DataFrame,
        spec: DatasetSpec,
        schema: FeatureSchema,
        *,
        on_epoch: Callable[[ToyEpoch], None] | None = None,
    ) -> ToyResult:
        def sleepy(record: ToyEpoch) -> None:
            time.sleep(self.seconds_per_epoch)
            if on_epoch is not None:
                on_epoch(record)

        return toy_fit(config, train, valid, spec, schema, on_epoch=sleepy)


def failing_fit(
    config: TrainConfig,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    spec: DatasetSpec,
    schema: FeatureSchema,
    *,
    on_epoch: Callable[[ToyEpoch], None] | None = None,
) -> ToyResult:
    """Diverges on wide networks, the way the real fit reports it (ConfigError)."""
    if config.width > 64:
        raise ConfigError(f"training diverged (width {config.width})")
    return toy_fit(config, train, valid, spec, schema, on_epoch=on_epoch)


@dataclass(frozen=True)
class RendezvousFit:
    """A fit whose first call in each process waits until every worker got that far.

    Guarantees that every worker process takes part in a shared study, however unequal
    their start-up times (the wait polls for one marker file per process).
    """

    folder: Path
    workers: int
    inner: Callable[..., Any] = real_fit
    timeout_s: float = 120.0

    def __call__(
        self,
        config: TrainConfig,
        train: pd.DataFrame,
        valid: pd.DataFrame,
        spec: DatasetSpec,
        schema: FeatureSchema,
        *,
        on_epoch: Callable[[Any], None] | None = None,
    ) -> Any:
        mark = self.folder / f"started-{os.getpid()}"
        if not mark.exists():
            mark.touch()
            deadline = time.monotonic() + self.timeout_s
            while len(list(self.folder.glob("started-*"))) < self.workers:
                if time.monotonic() > deadline:
                    raise TimeoutError("the other workers never started")
                time.sleep(0.02)
        return self.inner(config, train, valid, spec, schema, on_epoch=on_epoch)


@dataclass(frozen=True)
class WorkerJob:
    """One worker's share of a study, sent to a spawned process."""

    study_name: str
    data: TuningData
    settings: Settings
    tracker: TrialTracker | None
    worker: int
    fit: Callable[..., Any]


def run_worker(job: WorkerJob) -> list[int]:
    """Entry point of a spawned worker process (module level, so it pickles)."""
    return run_trials(
        job.study_name,
        None,
        job.data,
        job.settings,
        job.tracker,
        worker=job.worker,
        fit=job.fit,
    )
