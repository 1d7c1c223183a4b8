"""Optuna studies shared by many workers: one storage, one budget, one objective.

Direction: every trial *minimises the validation cross-entropy at its best epoch*. It
is the quantity early stopping watches inside `fit` and the one the pruner compares
epoch by epoch, so the number a trial is judged by, the number it is stopped on and
the number it is pruned on are the same; it is also a proper scoring rule, which AUC
is not (AUC ignores calibration). The validation AUC is kept beside it as a user
attribute and an MLflow metric.

Workers: `run_trials` can run in any number of processes at once on the same study.
The storage refuses a fresh trial once the study holds `settings.tuning.n_trials`
trials (see `mlops.tuning.storage`), so the study-wide budget holds exactly, whatever
the number of workers. Each worker builds its own sampler and pruner (Optuna does not
store them) with a seed offset by its worker index, so workers do not propose the
same random start-up points.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import optuna
import pandas as pd
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import ConfigError
from mlops.modeling.config import TrainConfig
from mlops.modeling.train import fit as train_fit
from mlops.settings import Settings, TuningSettings
from mlops.tracking.trials import EpochMetrics, TrialOutcome, TrialRun, TrialTracker
from mlops.tuning.data import TuningData
from mlops.tuning.search_space import suggest_params
from mlops.tuning.storage import BudgetedRDBStorage, BudgetSpent, prepare_sqlite_dir

logger = logging.getLogger(__name__)

StudySettings = TuningSettings
"""The tuning section of the settings (`MLOPS_TUNING__*`) is the study's configuration."""

DIRECTION: Literal["minimize"] = "minimize"
OBJECTIVE = "valid_loss"

# Trial user attributes (read back by `best_trial_summary` and the training stage).
ATTR_CONFIG = "config"
ATTR_HISTORY = "history"
ATTR_BEST_EPOCH = "best_epoch"
ATTR_EPOCHS_RUN = "epochs_run"
ATTR_VALID_AUC = "valid_auc"
ATTR_MLFLOW_RUN_ID = "mlflow_run_id"
ATTR_ERROR = "error"

TRIAL_ERRORS: tuple[type[Exception], ...] = (ConfigError, RuntimeError, ArithmeticError)
"""Errors that fail one trial, not the study: a diverging loss, out-of-memory on a wide
network. Anything else is a bug and stops the worker."""


class FitOutcome(Protocol):
    """What the objective reads from a fit (`mlops.modeling.train.FitResult` fits)."""

    @property
    def history(self) -> Sequence[EpochMetrics]: ...
    @property
    def best_epoch(self) -> int: ...
    @property
    def best_valid_loss(self) -> float: ...


class FitFunction(Protocol):
    """The training entry point the objective calls (`mlops.modeling.train.fit`)."""

    def __call__(
        self,
        config: TrainConfig,
        train: pd.DataFrame,
        valid: pd.DataFrame,
        spec: DatasetSpec,
        schema: FeatureSchema,
        *,
        on_epoch: Callable[[EpochMetrics], None] | None = None,
    ) -> FitOutcome: ...


def base_config(tuning: TuningSettings) -> TrainConfig:
    """The fields every trial shares: its epoch budget, patience and seed."""
    return TrainConfig(
        max_epochs=tuning.max_epochs, patience=tuning.patience, seed=tuning.sampler_seed
    )


def build_sampler(tuning: TuningSettings, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Multivariate TPE; `constant_liar` keeps parallel workers apart while trials run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=tuning.sampler_seed + worker, multivariate=True, constant_liar=True
        )


def build_pruner(tuning: TuningSettings) -> optuna.pruners.BasePruner:
    """Median (the default) or Hyperband, over epochs."""
    if tuning.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=tuning.max_epochs)
    return optuna.pruners.MedianPruner(
        n_startup_trials=tuning.n_startup_trials, n_warmup_steps=tuning.n_warmup_steps
    )


def open_study(name: str, settings: Settings, *, worker: int = 0) -> optuna.Study:
    """Create the study or join it; safe to call from many processes at once.

    Open it once before fanning out: a fresh PostgreSQL database gets Optuna's tables
    then (concurrent first-time table creation is retried, but costs a round).
    """
    tuning = settings.tuning
    url = settings.resolved_optuna_storage
    prepare_sqlite_dir(url)
    storage = _storage(url, tuning)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction=DIRECTION,
        sampler=build_sampler(tuning, worker),
        pruner=build_pruner(tuning),
    )


def run_trials(
    study_name: str,
    n_trials: int | None,
    data: TuningData,
    settings: Settings,
    tracker: TrialTracker | None = None,
    *,
    worker: int = 0,
    base: TrainConfig | None = None,
    fit: FitFunction | None = None,
) -> list[int]:
    """Run trials of a shared study in this process; returns their numbers.

    Stops after `n_trials` trials of its own (None: no per-process cap), when the study
    holds its study-wide budget (`settings.tuning.n_trials`, all workers together), or
    after `settings.tuning.timeout_s` seconds, whichever comes first.

    Args:
        worker: index of this worker among those sharing the study (offsets the seed).
        base: budget fields of every trial (default: from `settings.tuning`).
        fit: the training function (default `mlops.modeling.train.fit`).
    """
    study = open_study(study_name, settings, worker=worker)
    if _budget_spent(study, settings.tuning.n_trials):
        logger.info("study %s already holds its %d trials", study_name, settings.tuning.n_trials)
        return []
    train, valid = data.load()
    objective = _Objective(
        train=train,
        valid=valid,
        spec=data.spec,
        schema=data.feature_schema,
        base=base or base_config(settings.tuning),
        tracker=tracker,
        fit=fit or train_fit,
    )
    started = time.perf_counter()
    try:
        study.optimize(
            objective, n_trials=n_trials, timeout=settings.tuning.timeout_s, catch=TRIAL_ERRORS
        )
    except BudgetSpent:
        logger.info("study %s: budget of %d trials reached", study_name, settings.tuning.n_trials)
    logger.info(
        "worker %d ran %d trials of %s in %.1fs",
        worker,
        len(objective.numbers),
        study_name,
        time.perf_counter() - started,
    )
    return objective.numbers


class _Objective:
    """Suggest, fit with per-epoch reporting, record the trial in Optuna and MLflow."""

    def __init__(
        self,
        *,
        train: pd.DataFrame,
        valid: pd.DataFrame,
        spec: DatasetSpec,
        schema: FeatureSchema,
        base: TrainConfig,
        tracker: TrialTracker | None,
        fit: FitFunction,
    ) -> None:
        self.train, self.valid, self.spec, self.schema = train, valid, spec, schema
        self.base, self.tracker, self.fit = base, tracker, fit
        self.numbers: list[int] = []

    def __call__(self, trial: optuna.Trial) -> float:
        self.numbers.append(trial.number)
        config = suggest_params(trial, self.base)
        trial.set_user_attr(ATTR_CONFIG, config.model_dump(mode="json"))
        run: TrialRun | None = None
        if self.tracker is not None:
            run = self.tracker.start_trial(trial.study.study_name, trial.number, config)
            trial.set_user_attr(ATTR_MLFLOW_RUN_ID, run.run_id)
        history: list[EpochMetrics] = []

        def on_epoch(record: EpochMetrics) -> None:
            history.append(record)
            if run is not None:
                run.log_epoch(record)
            trial.report(record.valid_loss, record.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"epoch {record.epoch}: valid loss {record.valid_loss:.5f} behind the median"
                )

        try:
            result = self.fit(
                config, self.train, self.valid, self.spec, self.schema, on_epoch=on_epoch
            )
        except optuna.TrialPruned:
            best = _best_record(history)
            _record(trial, history, best)
            if run is not None:
                run.finish(
                    TrialOutcome.PRUNED,
                    value=best.valid_loss if best else None,
                    best_epoch=best.epoch if best else None,
                )
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            _record(trial, history, _best_record(history))
            trial.set_user_attr(ATTR_ERROR, message)
            if run is not None:
                run.finish(TrialOutcome.FAILED, error=message)
            raise
        best = next((r for r in result.history if r.epoch == result.best_epoch), None)
        _record(trial, list(result.history), best)
        if run is not None:
            run.finish(
                TrialOutcome.COMPLETE, value=result.best_valid_loss, best_epoch=result.best_epoch
            )
        return float(result.best_valid_loss)


def _budget_spent(study: optuna.Study, budget: int) -> bool:
    """True when no trial is left to run: spares a late worker loading the data."""
    trials = study.get_trials(deepcopy=False)
    waiting = any(t.state is TrialState.WAITING for t in trials)
    return len(trials) >= budget and not waiting


def _best_record(history: Sequence[EpochMetrics]) -> EpochMetrics | None:
    finite = [r for r in history if r.valid_loss == r.valid_loss]  # drop NaN
    return min(finite, key=lambda r: r.valid_loss) if finite else None


def _record(
    trial: optuna.Trial, history: Sequence[EpochMetrics], best: EpochMetrics | None
) -> None:
    """Per-epoch curve and best epoch on the trial, readable without MLflow."""
    trial.set_user_attr(
        ATTR_HISTORY,
        [
            {
                "epoch": r.epoch,
                "train_loss": r.train_loss,
                "valid_loss": r.valid_loss,
                "valid_auc": r.valid_auc,
            }
            for r in history
        ],
    )
    trial.set_user_attr(ATTR_EPOCHS_RUN, len(history))
    if best is not None:
        trial.set_user_attr(ATTR_BEST_EPOCH, best.epoch)
        trial.set_user_attr(ATTR_VALID_AUC, best.valid_auc)


def _storage(url: str, tuning: TuningSettings) -> BudgetedRDBStorage:
    """The study's storage; first-time table creation by racing processes is retried."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        for attempt in range(3):
            try:
                return BudgetedRDBStorage(
                    url,
                    budget=tuning.n_trials,
                    heartbeat_interval=tuning.heartbeat_interval_s,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=tuning.max_retry
                    ),
                )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
