"""Sections of the prediction service and the canary that rolls a challenger out
(`MLOPS_SERVING__*`, `MLOPS_ROLLOUT__*`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from mlops.settings.base import Count, NonNegative, Positive, Section, Share


class ServingSettings(Section):
    """The prediction service: where it listens, how it batches, where predictions go."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: Count = Field(default=1, description="uvicorn worker processes.")
    model_name: str = Field(
        default="card_fraud", description="The registered model served (one per dataset spec)."
    )
    api_key: SecretStr | None = Field(
        default=None, description="When set, prediction endpoints need header `X-API-Key`."
    )
    max_rows_per_request: Count = Field(
        default=10_000, description="Rows (or labels) per request; more are refused with 413."
    )
    max_body_bytes: Count = Field(
        default=16 * 1024 * 1024,
        description="Largest request body; a larger one is refused with 413 before it is "
        "parsed (from its Content-Length, or as soon as it grows past this).",
    )
    impute_nulls: bool = Field(
        default=True,
        description="A null in a feature the model's data contract says is never null is "
        "imputed by the model, listed in the row's `imputed`, counted in /metrics and "
        "logged, so the drift monitor opens a data-quality incident (and people are told) "
        "when a pipe breaks; false refuses such a row with 422 naming the field (the "
        "client is told, the monitor never sees the rows).",
    )
    batch_max_rows: Count = Field(
        default=512, description="Rows gathered from concurrent requests per forward pass."
    )
    batch_wait_ms: NonNegative = Field(
        default=1.0, description="Longest a request waits for others to batch with."
    )
    poll_interval_s: Positive = Field(
        default=2.0, description="How often the registry is polled for alias changes."
    )
    prediction_log_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the prediction log; parquet under the state dir if unset.",
    )
    log_buffer_rows: Count = Field(
        default=100_000, description="Bound of the in-memory prediction-log buffer."
    )
    log_flush_interval_s: Positive = 1.0


class RolloutSettings(Section):
    """The canary: stages, how long each lasts, guardrails and the sequential test."""

    stages: tuple[float, ...] = Field(
        default=(0.0, 0.05, 0.25, 0.5, 1.0),
        description="Challenger traffic share per stage; 0.0 is shadow (mirrored, not answered).",
    )
    min_predictions: Count = Field(
        default=500, description="Challenger predictions a stage needs before it advances."
    )
    min_stage_seconds: NonNegative = 600.0
    alpha: float = Field(
        default=0.05,
        gt=0.0,
        lt=1.0,
        description="False-promotion rate of the sequential test, and the error level of "
        "the guardrails' bounds: the error-rate guardrail uses a one-sided 1 - alpha "
        "lower bound; the p99-latency guardrail 1 - alpha confidence intervals of both "
        "p99s, so a challenger no slower than the champion is rolled back on latency with "
        "probability at most alpha at a look, whatever the latency distribution.",
    )
    min_labels: Count = Field(
        default=200, description="Labelled challenger predictions before the test may decide."
    )
    max_error_rate: Share = Field(
        default=0.01, description="Challenger error share that rolls back."
    )
    max_p99_latency_ratio: Positive = Field(
        default=2.0,
        description="Rolls back when the lower confidence bound of the challenger's p99 "
        "(at level 1 - alpha) exceeds this times the upper bound of the champion's: "
        "point estimates of a p99 from a few hundred latencies differ twofold by chance.",
    )
    min_p99_latency_increase_ms: NonNegative = Field(
        default=5.0,
        description="...and exceeds it by more than this: on a busy host a p99 of a few ms "
        "doubles for reasons other than the model, and users do not feel 3 ms.",
    )
    max_duration_s: Positive = Field(
        default=3 * 86_400.0,
        description="A rollout with no verdict this long after its start is rolled back "
        "('expired without evidence'); it no longer defers retraining past this deadline.",
    )
    paused_expiry_s: Positive = Field(
        default=86_400.0,
        description="A rollout paused this long is rolled back ('expired without evidence').",
    )
    lock_timeout_s: Positive = Field(
        default=60.0, description="How long a rollout state change waits for the rollout lock."
    )
