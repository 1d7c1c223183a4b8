"""Sections of the training pipeline: validation, features, the gate, tuning and
quantization (`MLOPS_VALIDATION__*`, `MLOPS_FEAST__*`, `MLOPS_GATE__*`, `MLOPS_TUNING__*`,
`MLOPS_QUANTIZATION__*`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from mlops.settings.base import Count, NonNegative, NonNegativeCount, Positive, Section, Share


class RowPolicy(StrEnum):
    """What validation does with a batch that has bad rows."""

    REJECT_BATCH = "reject-batch"
    QUARANTINE_ROWS = "quarantine-rows"


class ValidationSettings(BaseModel):
    """How strict the data contract learned from the reference data is."""

    policy: RowPolicy = RowPolicy.REJECT_BATCH
    max_bad_row_fraction: Share = 0.05
    range_margin: NonNegative = Field(
        default=0.25,
        description="Learned numeric bounds are widened by this share of the reference span.",
    )
    null_rate_tolerance: Share = Field(
        default=0.0, description="Extra null share allowed on top of the reference null rate."
    )


class GateSettings(BaseModel):
    """What a candidate model must show before it is registered as challenger."""

    metric: Literal["roc_auc", "accuracy", "f1"] = "roc_auc"
    min_gain_over_baseline: float = Field(
        default=0.01, description="The candidate must beat logistic regression by this much."
    )
    champion_tolerance: NonNegative = Field(
        default=0.0, description="How much worse than the champion is still acceptable."
    )


class FeastSettings(BaseModel):
    """Where Feast keeps its registry, offline files and online values."""

    project: str = "mlops"
    online_store: Literal["sqlite", "redis", "postgres"] = "sqlite"
    redis_connection: str = "127.0.0.1:6379,db=0"
    registry_url: str | None = Field(
        default=None,
        description="SQL registry URL (postgresql+psycopg://...); a local file when unset.",
    )
    ttl_days: Count = 365


class TuningSettings(Section):
    """How hard Optuna searches: the study-wide budget, pruning and the sampler's seed."""

    n_trials: Count = Field(default=20, description="Trials per study, shared by all workers.")
    timeout_s: float | None = Field(
        default=None, gt=0.0, description="Wall-clock limit of each worker's share of a study."
    )
    pruner: Literal["median", "hyperband"] = "median"
    n_startup_trials: NonNegativeCount = Field(
        default=3, description="Median pruner: complete trials before any pruning."
    )
    n_warmup_steps: NonNegativeCount = Field(
        default=2, description="Median pruner: the first epoch a trial may be pruned at."
    )
    sampler_seed: int = 0
    max_epochs: Count = Field(default=30, description="Epoch budget of one trial.")
    patience: Count = Field(default=4, description="Early stopping inside one trial.")
    heartbeat_interval_s: Count = Field(
        default=30, description="A trial silent for two intervals is failed and retried."
    )
    max_retry: NonNegativeCount = Field(
        default=1, description="Retries of a trial whose worker died."
    )
    workers: Count = Field(
        default=2, description="Processes running trials of one study in parallel (Dask)."
    )
    dask_address: str | None = Field(
        default=None, description="An external Dask scheduler; a local cluster when unset."
    )


class SelectionPolicy(StrEnum):
    """Which quantized variant of a model is registered (among those passing the gate)."""

    SMALLEST_PASSING = "smallest-passing"
    FASTEST_PASSING = "fastest-passing"
    FP32 = "fp32"


class QuantizationSettings(Section):
    """Which compressed variants are tried, the retention gate and the selection policy."""

    schemes: tuple[Literal["fp32", "int8", "fp16", "ternary"], ...] = (
        "fp32",
        "int8",
        "fp16",
        "ternary",
    )
    min_retention: float = Field(
        default=0.99,
        gt=0.0,
        le=1.0,
        description="A variant passes when its ROC AUC / its fp32 parent's is at least this.",
    )
    policy: SelectionPolicy = SelectionPolicy.SMALLEST_PASSING
    register_batch_dependent: bool = Field(
        default=False,
        description="Let the policy register dynamic int8, whose scores depend on the rows "
        "batched with them: the service refuses such a model, so only for batch scoring.",
    )
    qat_epochs: NonNegativeCount = Field(
        default=5,
        description="Ternary quantization-aware fine-tuning epochs (0: post-training only).",
    )
    qat_learning_rate: Positive = 1e-3
