"""One nested MLflow run per Optuna trial, from whichever process runs the trial.

A child run is an ordinary run carrying the tag `mlflow.parentRunId`: that tag is all
the MLflow UI needs to fold it under its parent, so a Dask worker on another machine
only needs the tracking URI, the experiment id and the parent's run id (a small,
picklable `TrialTracker`). Epoch metrics are buffered and written with `log_batch` when
the trial ends: four store calls per trial, whatever the number of epochs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from mlops.settings import Settings
from mlops.tracking.mlflow_tracking import TAG_RUN_KIND, TAG_STUDY_NAME, tracking_client

if TYPE_CHECKING:  # a type only: importing mlops.modeling loads torch
    from mlops.modeling.config import TrainConfig

logger = logging.getLogger(__name__)

TAG_TRIAL_NUMBER = "optuna.trial_number"
TAG_TRIAL_STATE = "optuna.trial_state"
TAG_TRIAL_ERROR = "optuna.trial_error"
_MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call


class TrialOutcome(StrEnum):
    """How a trial ended, as recorded on its MLflow run."""

    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"


class EpochMetrics(Protocol):
    """What a trial reports per epoch (`mlops.modeling.train.EpochRecord` fits)."""

    @property
    def epoch(self) -> int: ...
    @property
    def train_loss(self) -> float: ...
    @property
    def valid_loss(self) -> float: ...
    @property
    def valid_auc(self) -> float: ...


@dataclass(frozen=True)
class TrialTracker:
    """Where trial runs go; cheap to pickle to worker processes."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str

    @classmethod
    def for_parent_run(cls, settings: Settings, parent_run_id: str) -> TrialTracker:
        """A tracker whose trial runs nest under an existing (parent) run."""
        uri = settings.resolved_tracking_uri
        parent = tracking_client(uri).get_run(parent_run_id)
        return cls(uri, str(parent.info.experiment_id), parent_run_id)

    def start_trial(self, study_name: str, number: int, config: TrainConfig) -> TrialRun:
        """Open the trial's child run with its hyperparameters (visible as RUNNING)."""
        client = tracking_client(self.tracking_uri)
        run = client.create_run(
            self.experiment_id,
            tags={
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                MLFLOW_RUN_NAME: f"trial-{number:03d}",
                TAG_RUN_KIND: "trial",
                TAG_STUDY_NAME: study_name,
                TAG_TRIAL_NUMBER: str(number),
            },
        )
        run_id = str(run.info.run_id)
        params = [Param(key, str(value)) for key, value in config.model_dump().items()]
        client.log_batch(run_id, params=params, synchronous=True)
        return TrialRun(self.tracking_uri, run_id)


@dataclass
class TrialRun:
    """The child run of one trial; epochs are buffered until `finish`."""

    tracking_uri: str
    run_id: str
    _pending: list[Metric] = field(default_factory=list, repr=False)

    def log_epoch(self, record: EpochMetrics) -> None:
        """Buffer one epoch's metrics (step = epoch), written when the trial ends."""
        stamp = int(time.time() * 1000)
        for key, value in (
            ("train_loss", record.train_loss),
            ("valid_loss", record.valid_loss),
            ("valid_auc", record.valid_auc),
        ):
            self._pending.append(Metric(key, float(value), stamp, int(record.epoch)))

    def finish(
        self,
        outcome: TrialOutcome,
        *,
        value: float | None = None,
        best_epoch: int | None = None,
        error: str | None = None,
    ) -> None:
        """Write the buffered epochs, the outcome tag and the summary, then end the run."""
        client = tracking_client(self.tracking_uri)
        stamp = int(time.time() * 1000)
        metrics = list(self._pending)
        if value is not None:
            metrics.append(Metric("best_valid_loss", float(value), stamp, 0))
        if best_epoch is not None:
            metrics.append(Metric("best_epoch", float(best_epoch), stamp, 0))
        tags = [RunTag(TAG_TRIAL_STATE, outcome.value)]
        if error:
            tags.append(RunTag(TAG_TRIAL_ERROR, error[:4000]))
        for start in range(0, max(len(metrics), 1), _MAX_METRICS_PER_BATCH):
            chunk = metrics[start : start + _MAX_METRICS_PER_BATCH]
            client.log_batch(
                self.run_id, metrics=chunk, tags=tags if start == 0 else (), synchronous=True
            )
        self._pending.clear()
        status = RunStatus.FAILED if outcome is TrialOutcome.FAILED else RunStatus.FINISHED
        client.set_terminated(self.run_id, status=RunStatus.to_string(status))
