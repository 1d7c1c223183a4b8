"""Hyperparameter search with Optuna: the search space, shared studies, their summary."""

from __future__ import annotations

from mlops.tuning.data import TuningData
from mlops.tuning.search_space import config_from_params, suggest_params
from mlops.tuning.storage import BudgetedRDBStorage, BudgetSpent
from mlops.tuning.study import (
    DIRECTION,
    OBJECTIVE,
    FitFunction,
    FitOutcome,
    StudySettings,
    base_config,
    build_pruner,
    build_sampler,
    open_study,
    run_trials,
)
from mlops.tuning.summary import (
    LeaderboardRow,
    NoCompleteTrial,
    StudySummary,
    best_trial_summary,
    trial_config,
)

__all__ = [
    "DIRECTION",
    "OBJECTIVE",
    "BudgetSpent",
    "BudgetedRDBStorage",
    "FitFunction",
    "FitOutcome",
    "LeaderboardRow",
    "NoCompleteTrial",
    "StudySettings",
    "StudySummary",
    "TuningData",
    "base_config",
    "best_trial_summary",
    "build_pruner",
    "build_sampler",
    "config_from_params",
    "open_study",
    "run_trials",
    "suggest_params",
    "trial_config",
]
