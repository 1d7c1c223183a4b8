"""The candidate model of a pipeline run: refit on train + valid, judged on the holdout.

The tuner picks hyperparameters and an epoch count on (train, valid); the candidate is
trained once more on both with those, then scored on the time-ordered holdout next to
a logistic-regression baseline and the current champion, all on the very same rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops.modeling import (
    Metrics,
    TabularModel,
    evaluate,
    logistic_baseline,
    refit,
    split_time_ordered,
)
from mlops.sources import read_frame
from mlops.tuning import StudySummary, TuningData
from quantization.served import load_served_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """The refit model, its holdout and the evidence the quality gate weighs."""

    model: TabularModel
    epochs: int
    train_rows: int
    holdout: pd.DataFrame
    metrics: Metrics
    baseline: Metrics
    seconds: float


def train_candidate(data: TuningData, study: StudySummary) -> Candidate:
    """Refit the best trial's configuration on train + valid and score it on the holdout.

    The epoch count is the best trial's early-stopping epoch (at least one).
    """
    started = time.perf_counter()
    frame = read_frame(data.path)
    splits = split_time_ordered(
        frame,
        data.spec,
        holdout_fraction=data.holdout_fraction,
        validation_fraction=data.validation_fraction,
    )
    train = splits.train_and_valid
    epochs = max(1, study.best_epoch or study.best_params.max_epochs)
    model = refit(study.best_params, train, data.spec, data.feature_schema, epochs)
    metrics = evaluate(model, splits.holdout, data.spec)
    baseline = logistic_baseline(train, splits.holdout, data.spec, data.feature_schema)
    seconds = time.perf_counter() - started
    logger.info(
        "candidate (%d epochs on %d rows): holdout %s; baseline %s",
        epochs,
        len(train),
        metrics,
        baseline,
    )
    return Candidate(
        model=model,
        epochs=epochs,
        train_rows=len(train),
        holdout=splits.holdout,
        metrics=metrics,
        baseline=baseline,
        seconds=seconds,
    )


def score_stored_model(
    directory: Path, sha256: str, holdout: pd.DataFrame, data: TuningData
) -> Metrics:
    """Metrics of a stored model (the champion, fp32 or quantized) on the candidate's holdout.

    The artifact's digest is checked before anything is loaded.
    """
    return evaluate(load_served_model(directory, sha256), holdout, data.spec)
