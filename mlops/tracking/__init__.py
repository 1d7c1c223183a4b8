"""Experiment tracking on MLflow: configuration, the parent training run, trial runs, plots."""

from __future__ import annotations

from mlops.tracking.mlflow_tracking import (
    TAG_DATASET,
    TAG_DATASET_SHA256,
    TAG_FEATURE_SERVICE,
    TAG_FLOW_RUN_ID,
    TAG_RUN_KIND,
    TAG_STUDY_NAME,
    TAG_VALIDATION_VERDICT,
    artifact_location,
    configure_tracking,
    ensure_experiment,
    experiment_name,
    start_parent_run,
    tracking_client,
)
from mlops.tracking.plots import log_figure, log_study_plots, study_figures
from mlops.tracking.trials import (
    TAG_TRIAL_ERROR,
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
    EpochMetrics,
    TrialOutcome,
    TrialRun,
    TrialTracker,
)

__all__ = [
    "TAG_DATASET",
    "TAG_DATASET_SHA256",
    "TAG_FEATURE_SERVICE",
    "TAG_FLOW_RUN_ID",
    "TAG_RUN_KIND",
    "TAG_STUDY_NAME",
    "TAG_TRIAL_ERROR",
    "TAG_TRIAL_NUMBER",
    "TAG_TRIAL_STATE",
    "TAG_VALIDATION_VERDICT",
    "EpochMetrics",
    "TrialOutcome",
    "TrialRun",
    "TrialTracker",
    "artifact_location",
    "configure_tracking",
    "ensure_experiment",
    "experiment_name",
    "log_figure",
    "log_study_plots",
    "start_parent_run",
    "study_figures",
    "tracking_client",
]
