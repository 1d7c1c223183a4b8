"""A finished study on the parent MLflow run: its summary, Optuna's plots and the best
trial's learning curves (the `summarize-study` stage, without Prefect).

Not imported by the package's `__init__`: it draws figures (matplotlib), which the
trial workers never need.
"""

from __future__ import annotations

import optuna

from mlops.modeling import EpochRecord
from mlops.modeling.plots import learning_curves_figure
from mlops.settings import Settings
from mlops.tracking.mlflow_tracking import tracking_client
from mlops.tracking.plots import log_figure, log_study_plots
from mlops.tuning.study import ATTR_HISTORY, open_study
from mlops.tuning.summary import StudySummary, best_trial_summary

LEARNING_CURVES = "evaluation/learning_curves_best_trial.png"


def trial_curve(trial: optuna.trial.FrozenTrial) -> list[EpochRecord]:
    """The learning curve a trial recorded, one record per epoch (empty when none)."""
    return [EpochRecord(**epoch) for epoch in trial.user_attrs.get(ATTR_HISTORY, [])]


def summarize_study(settings: Settings, study_name: str, parent_run_id: str) -> StudySummary:
    """The best trial and a leaderboard (`best_trial_summary`); the Optuna plots and the
    best trial's learning curves go to the parent MLflow run.

    Raises:
        NoCompleteTrial: no trial completed.
    """
    study = open_study(study_name, settings)
    summary = best_trial_summary(study)
    client = tracking_client(settings.resolved_tracking_uri)
    log_study_plots(parent_run_id, study, client=client)
    curve = trial_curve(study.best_trial)
    if curve:
        log_figure(
            parent_run_id,
            learning_curves_figure(curve, summary.best_epoch),
            LEARNING_CURVES,
            client=client,
        )
    return summary
