"""Experiment tracking on MLflow: configuration, the parent training run, trial runs.

The plots live in `mlops.tracking.plots` (matplotlib, about a second of import): the
registry and the canary, which read tags through this package, do not pay for them.
"""

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
    "start_parent_run",
    "tracking_client",
]
