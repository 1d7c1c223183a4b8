"""A study condensed into what the next stage and a reviewer need: the winner and a table."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel, ConfigDict

from mlops.errors import PipelineError
from mlops.modeling.config import TrainConfig
from mlops.tuning.search_space import config_from_params
from mlops.tuning.study import (
    ATTR_BEST_EPOCH,
    ATTR_CONFIG,
    ATTR_EPOCHS_RUN,
    ATTR_ERROR,
    ATTR_MLFLOW_RUN_ID,
    ATTR_VALID_AUC,
)

LEADERBOARD_SIZE = 10


class NoCompleteTrial(PipelineError):
    """A study ended without a single complete trial: there is nothing to train."""


class LeaderboardRow(BaseModel):
    """One trial in the leaderboard."""

    model_config = ConfigDict(frozen=True)

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    duration_s: float | None
    epochs_run: int | None = None
    mlflow_run_id: str | None = None


class StudySummary(BaseModel):
    """The outcome of a study: counts, the best trial and the top of the table."""

    model_config = ConfigDict(frozen=True)

    study_name: str
    direction: str
    n_complete: int
    n_pruned: int
    n_failed: int
    best_trial_number: int
    best_value: float
    best_params: TrainConfig
    best_epoch: int | None
    best_valid_auc: float | None
    best_mlflow_run_id: str | None
    leaderboard: tuple[LeaderboardRow, ...]


def best_trial_summary(study: optuna.Study, top: int = LEADERBOARD_SIZE) -> StudySummary:
    """Summarize a finished (or running) study.

    Raises:
        NoCompleteTrial: no trial completed; the message quotes the first failures.
    """
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    failed = [t for t in trials if t.state is TrialState.FAIL]
    if not complete:
        errors = sorted({str(t.user_attrs.get(ATTR_ERROR, "no error recorded")) for t in failed})
        raise NoCompleteTrial(
            f"study {study.study_name!r}: no complete trial ({len(pruned)} pruned, "
            f"{len(failed)} failed)" + (f"; errors: {'; '.join(errors[:3])}" if errors else "")
        )
    best = study.best_trial
    maximize = study.direction is optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(complete, key=_value, reverse=maximize)
    rest = sorted(pruned + failed, key=lambda t: t.number)
    return StudySummary(
        study_name=study.study_name,
        direction=study.direction.name.lower(),
        n_complete=len(complete),
        n_pruned=len(pruned),
        n_failed=len(failed),
        best_trial_number=best.number,
        best_value=_value(best),
        best_params=trial_config(best),
        best_epoch=_int_attr(best, ATTR_BEST_EPOCH),
        best_valid_auc=_float_attr(best, ATTR_VALID_AUC),
        best_mlflow_run_id=_str_attr(best, ATTR_MLFLOW_RUN_ID),
        leaderboard=tuple(_row(t) for t in (ranked + rest)[:top]),
    )


def trial_config(trial: FrozenTrial) -> TrainConfig:
    """The full configuration a trial trained with (budget fields included)."""
    stored = trial.user_attrs.get(ATTR_CONFIG)
    if isinstance(stored, dict):
        return TrainConfig.model_validate(stored)
    return config_from_params(dict(trial.params))


def _row(trial: FrozenTrial) -> LeaderboardRow:
    duration = trial.duration
    return LeaderboardRow(
        number=trial.number,
        state=trial.state.name.lower(),
        value=trial.value,
        params=dict(trial.params),
        duration_s=duration.total_seconds() if duration is not None else None,
        epochs_run=_int_attr(trial, ATTR_EPOCHS_RUN),
        mlflow_run_id=_str_attr(trial, ATTR_MLFLOW_RUN_ID),
    )


def _value(trial: FrozenTrial) -> float:
    return float("nan") if trial.value is None else float(trial.value)


def _int_attr(trial: FrozenTrial, key: str) -> int | None:
    value = trial.user_attrs.get(key)
    return int(value) if isinstance(value, int | float) else None


def _float_attr(trial: FrozenTrial, key: str) -> float | None:
    value = trial.user_attrs.get(key)
    return float(value) if isinstance(value, int | float) else None


def _str_attr(trial: FrozenTrial, key: str) -> str | None:
    value = trial.user_attrs.get(key)
    return str(value) if value is not None else None
