"""Lineage tags: what a registered version records so a prediction can be traced back."""

from __future__ import annotations

import hashlib
import json
import subprocess
from functools import cache
from pathlib import Path

from mlops.contracts import (
    DatasetRef,
    FeatureSetRef,
    TrainingResult,
    TrainingSetRef,
    ValidationReport,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


@cache
def git_commit() -> str:
    """The commit of the code that trained the model ("unknown" outside a git checkout)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def lineage_key(training: TrainingResult) -> str:
    """Same training set + same chosen parameters + same epochs = the same model."""
    payload = json.dumps(
        {
            "training_set": training.training_set_sha256,
            "params": training.params,
            "epochs": training.epochs,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def lineage_tags(
    batch: DatasetRef,
    validation: ValidationReport,
    features: FeatureSetRef,
    training_set: TrainingSetRef,
    training: TrainingResult,
    flow_run_id: str | None,
    flow_run_url: str | None,
) -> dict[str, str]:
    """Tags of a model version: data, validation, features, study, run, code, metrics."""
    tags = {
        "data.sha256": batch.sha256,
        "data.uri": batch.uri,
        "data.window": f"{batch.start} .. {batch.end}",
        "validation.verdict": validation.verdict.value,
        "validation.report": validation.report_json or "",
        "features.service": features.feature_service,
        "features.project": features.project,
        "training_set.sha256": training_set.sha256,
        "training_set.rows": str(training_set.rows),
        "training_set.uri": training_set.uri,
        "study.name": training.study_name,
        "study.best_trial": str(training.best_trial),
        "mlflow.run_id": training.mlflow_run_id,
        "prefect.flow_run_id": flow_run_id or "",
        "prefect.flow_run_url": flow_run_url or "",
        "git.commit": git_commit(),
    }
    tags.update({f"metrics.holdout.{k}": f"{v:.6f}" for k, v in training.metrics.items()})
    tags.update({f"metrics.baseline.{k}": f"{v:.6f}" for k, v in training.baseline_metrics.items()})
    return tags
