"""The one settings object: every URL and path the system uses, read from `MLOPS_*`.

Nothing else in the code base reads environment variables. The embedded default keeps
all state under one directory (`.mlops/` unless `MLOPS_HOME` names another) on SQLite
and local files; the production profile points the same code at PostgreSQL, Redis and
S3 and refuses embedded backends.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops.errors import ConfigError


class Profile(StrEnum):
    """Which family of backends the system runs on."""

    EMBEDDED = "embedded"
    PRODUCTION = "production"


class RowPolicy(StrEnum):
    """What validation does with a batch that has bad rows."""

    REJECT_BATCH = "reject-batch"
    QUARANTINE_ROWS = "quarantine-rows"


class ValidationSettings(BaseModel):
    """How strict the data contract learned from the reference data is."""

    policy: RowPolicy = RowPolicy.REJECT_BATCH
    max_bad_row_fraction: float = Field(default=0.05, ge=0.0, le=1.0)
    range_margin: float = Field(
        default=0.25,
        ge=0.0,
        description="Learned numeric bounds are widened by this share of the reference span.",
    )
    null_rate_tolerance: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Extra null share allowed on top of the reference null rate.",
    )


class GateSettings(BaseModel):
    """What a candidate model must show before it is registered as challenger."""

    metric: Literal["roc_auc", "accuracy", "f1"] = "roc_auc"
    min_gain_over_baseline: float = Field(
        default=0.01, description="The candidate must beat logistic regression by this much."
    )
    champion_tolerance: float = Field(
        default=0.0, ge=0.0, description="How much worse than the champion is still acceptable."
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
    ttl_days: int = Field(default=365, ge=1)


class TuningSettings(BaseModel):
    """How hard Optuna searches: the study-wide budget, pruning and the sampler's seed."""

    model_config = ConfigDict(frozen=True)

    n_trials: int = Field(default=20, ge=1, description="Trials per study, shared by all workers.")
    timeout_s: float | None = Field(
        default=None, gt=0.0, description="Wall-clock limit of each worker's share of a study."
    )
    pruner: Literal["median", "hyperband"] = "median"
    n_startup_trials: int = Field(
        default=3, ge=0, description="Median pruner: complete trials before any pruning."
    )
    n_warmup_steps: int = Field(
        default=2, ge=0, description="Median pruner: the first epoch a trial may be pruned at."
    )
    sampler_seed: int = 0
    max_epochs: int = Field(default=30, ge=1, description="Epoch budget of one trial.")
    patience: int = Field(default=4, ge=1, description="Early stopping inside one trial.")
    heartbeat_interval_s: int = Field(
        default=30, ge=1, description="A trial silent for two intervals is failed and retried."
    )
    max_retry: int = Field(default=1, ge=0, description="Retries of a trial whose worker died.")
    workers: int = Field(
        default=2, ge=1, description="Processes running trials of one study in parallel (Dask)."
    )
    dask_address: str | None = Field(
        default=None, description="An external Dask scheduler; a local cluster when unset."
    )


class SelectionPolicy(StrEnum):
    """Which quantized variant of a model is registered (among those passing the gate)."""

    SMALLEST_PASSING = "smallest-passing"
    FASTEST_PASSING = "fastest-passing"
    FP32 = "fp32"


class QuantizationSettings(BaseModel):
    """Which compressed variants are tried, the retention gate and the selection policy."""

    model_config = ConfigDict(frozen=True)

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
    qat_epochs: int = Field(
        default=5,
        ge=0,
        description="Ternary quantization-aware fine-tuning epochs (0: post-training only).",
    )
    qat_learning_rate: float = Field(default=1e-3, gt=0.0)


class ServingSettings(BaseModel):
    """The prediction service: where it listens, how it batches, where predictions go."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, description="uvicorn worker processes.")
    model_name: str = Field(
        default="card_fraud", description="The registered model served (one per dataset spec)."
    )
    api_key: SecretStr | None = Field(
        default=None, description="When set, prediction endpoints need header `X-API-Key`."
    )
    max_rows_per_request: int = Field(default=10_000, ge=1)
    batch_max_rows: int = Field(
        default=512, ge=1, description="Rows gathered from concurrent requests per forward pass."
    )
    batch_wait_ms: float = Field(
        default=1.0, ge=0.0, description="Longest a request waits for others to batch with."
    )
    poll_interval_s: float = Field(
        default=2.0, gt=0.0, description="How often the registry is polled for alias changes."
    )
    prediction_log_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the prediction log; parquet under the state dir if unset.",
    )
    log_buffer_rows: int = Field(
        default=100_000, ge=1, description="Bound of the in-memory prediction-log buffer."
    )
    log_flush_interval_s: float = Field(default=1.0, gt=0.0)


class RolloutSettings(BaseModel):
    """The canary: stages, how long each lasts, guardrails and the sequential test."""

    model_config = ConfigDict(frozen=True)

    stages: tuple[float, ...] = Field(
        default=(0.0, 0.05, 0.25, 0.5, 1.0),
        description="Challenger traffic share per stage; 0.0 is shadow (mirrored, not answered).",
    )
    min_predictions: int = Field(
        default=500, ge=1, description="Challenger predictions a stage needs before it advances."
    )
    min_stage_seconds: float = Field(default=600.0, ge=0.0)
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
    min_labels: int = Field(
        default=200, ge=1, description="Labelled challenger predictions before the test may decide."
    )
    max_error_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Challenger error share that rolls back."
    )
    max_p99_latency_ratio: float = Field(
        default=2.0,
        gt=0.0,
        description="Rolls back when the lower confidence bound of the challenger's p99 "
        "(at level 1 - alpha) exceeds this times the upper bound of the champion's: "
        "point estimates of a p99 from a few hundred latencies differ twofold by chance.",
    )
    min_p99_latency_increase_ms: float = Field(
        default=5.0,
        ge=0.0,
        description="...and exceeds it by more than this: on a busy host a p99 of a few ms "
        "doubles for reasons other than the model, and users do not feel 3 ms.",
    )
    max_duration_s: float = Field(
        default=3 * 86_400.0,
        gt=0.0,
        description="A rollout with no verdict this long after its start is rolled back "
        "('expired without evidence'); it no longer defers retraining past this deadline.",
    )
    paused_expiry_s: float = Field(
        default=86_400.0,
        gt=0.0,
        description="A rollout paused this long is rolled back ('expired without evidence').",
    )
    lock_timeout_s: float = Field(
        default=60.0,
        gt=0.0,
        description="How long a rollout state change waits for the rollout lock.",
    )


class RetrainingSettings(BaseModel):
    """Guardrails between a drift alarm and a retraining run."""

    model_config = ConfigDict(frozen=True)

    cooldown_s: float = Field(
        default=6 * 3600.0, ge=0.0, description="No retraining this soon after the last one."
    )
    debounce_s: float = Field(
        default=900.0, ge=0.0, description="Alarms this close to an earlier one are merged."
    )
    min_new_rows: int = Field(
        default=1_000,
        ge=0,
        description="Labelled rows the retraining window must hold that the champion has "
        "not seen and, for a drift alarm, that came after the drift's onset.",
    )
    window_days: float = Field(
        default=14.0, gt=0.0, description="How far back the retraining data reaches."
    )
    max_run_s: float = Field(
        default=4 * 3600.0,
        gt=0.0,
        description="A retraining the ledger says is running for longer is taken as dead "
        "(its worker was killed): it no longer holds drift alarms back, and expires.",
    )
    heartbeat_interval_s: float = Field(
        default=60.0,
        gt=0.0,
        description="How often a running retraining stamps its ledger row (heartbeat).",
    )
    heartbeat_timeout_s: float = Field(
        default=15 * 60.0,
        gt=0.0,
        description="A running retraining silent for longer is dead: it no longer holds "
        "drift alarms back, and expires (marked failed; the alarms it held are pending).",
    )
    max_alarm_wait_s: float = Field(
        default=24 * 3600.0,
        gt=0.0,
        description="A pending drift alarm waiting longer for a retraining is overdue: "
        "the drift monitor emits mlops.drift.overdue.",
    )

    @model_validator(mode="after")
    def _heartbeat_fits_its_timeout(self) -> RetrainingSettings:
        if self.heartbeat_timeout_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                "retraining.heartbeat_timeout_s must be at least twice heartbeat_interval_s "
                "(one late beat must not expire a live run)"
            )
        return self


class DriftSettings(BaseModel):
    """How a window is judged against its reference.

    Thresholds follow Evidently's precedence: a per-column threshold beats the numeric /
    categorical one, which beats `threshold`; unset means the method's own default
    (0.05 for the p-value tests, 0.1 for the distances). A threshold's meaning depends on
    the method it ends up with: a p-value tests drifts *below* it, a distance *at or
    above* it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    drift_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="The dataset drifts when at least this share of its columns drift "
        "(Evidently's DataDriftPreset default: 0.5).",
    )
    threshold: float | None = Field(default=None, gt=0.0, description="For every column.")
    num_threshold: float | None = Field(default=None, gt=0.0, description="Numeric columns.")
    cat_threshold: float | None = Field(default=None, gt=0.0, description="Categorical columns.")
    per_column_threshold: dict[str, float] = Field(
        default_factory=dict, description="Overrides for single columns."
    )
    min_rows: int = Field(
        default=100,
        ge=1,
        description="A window with fewer rows gets an explicit insufficient-data verdict.",
    )
    max_workers: int = Field(
        default=2,
        ge=1,
        description="Threads that test numeric columns in parallel (numpy releases the GIL).",
    )
    decision_threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Probability above which a row is positive."
    )
    max_roc_auc_drop: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Tolerated ROC AUC drop: performance is degraded only when the "
        "one-sided lower confidence bound of (reference - window) ROC AUC exceeds it "
        "(the bound alone keeps false alarms below performance_alpha; a margin only "
        "ignores small real drops, see mlops.drift.performance).",
    )
    max_accuracy_drop: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Tolerated accuracy drop, judged by its lower confidence bound.",
    )
    performance_alpha: float = Field(
        default=0.01,
        gt=0.0,
        lt=0.5,
        description="False alarm rate per stable window of the performance alarm (split "
        "equally over ROC AUC and accuracy); see benchmarks/performance_alarm.py.",
    )
    min_positives: int = Field(
        default=30,
        ge=2,
        description="Fewer labelled positives in the window: verdict 'insufficient "
        "labels', never an alarm.",
    )
    min_negatives: int = Field(default=30, ge=2, description="The same for labelled negatives.")

    def threshold_for(self, column: str, *, categorical: bool) -> float | None:
        """The configured threshold of a column, or None for the method's default."""
        if column in self.per_column_threshold:
            return self.per_column_threshold[column]
        kind_threshold = self.cat_threshold if categorical else self.num_threshold
        if kind_threshold is not None:
            return kind_threshold
        return self.threshold


class QualitySettings(BaseModel):
    """How served traffic is judged against the data contract: a broken pipe, not drift.

    Every check is a share of the window, so one noisy row never opens an incident.
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(default=True, description="The drift monitor checks data quality.")
    min_rows: int = Field(
        default=100, ge=1, description="A window with fewer rows is not judged (no incident)."
    )
    null_rate_margin: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Null share allowed above the reference's (plus the validation "
        "tolerance and a binomial bound) before a feature counts as broken.",
    )
    null_rate_z: float = Field(
        default=4.0, ge=0.0, description="Standard errors of the binomial bound on the null rate."
    )
    max_out_of_range_share: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of numeric values outside the widened learned range that breaks it.",
    )
    max_unseen_category_share: float = Field(
        default=0.05, ge=0.0, le=1.0, description="Share of categories never seen in the reference."
    )
    max_dtype_mismatch_share: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Share of values of the wrong type (text in a numeric feature, numbers "
        "in a categorical one).",
    )
    example_values: int = Field(default=5, ge=0, description="Example values per failure.")
    incident_stale_s: float = Field(
        default=86_400.0,
        gt=0.0,
        description="An open incident no window has seen for this long no longer holds "
        "retraining (the monitor stopped judging it).",
    )
    resume_rollout: bool = Field(
        default=True,
        description="Resume a rollout the incident paused once a window is clean again.",
    )
    serving_dataset: str | None = Field(
        default=None,
        description="Dataset whose reference profile serving counts out-of-range values "
        "against (default: the served model's name).",
    )


class FlowRunSettings(BaseModel):
    """How a flow run that died without a word (its worker killed) is noticed.

    Prefect marks a run Crashed only when a live worker sees its process die; a run
    whose worker was killed stays Running on the server for ever, holding its
    deployment's concurrency slot (so a `CANCEL_NEW` schedule never runs again). Runs
    send heartbeats, and the automation `mlops: crash silent flow runs` (created by
    `make up` / `mlops stack deploy`) marks a run Crashed when they stop; the
    `sweep-silent-runs` deployment (every 5 minutes, `mlops.runs`) does the same for runs
    the automation missed and for runs that never left Pending.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    heartbeat_s: int = Field(
        default=30,
        ge=30,
        description="Flow runs of the stack send a heartbeat event this often "
        "(PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the workers; Prefect's least is 30 s).",
    )
    crashed_after_s: float = Field(
        default=90.0,
        ge=10.0,
        description="A running flow run silent this long is marked Crashed (Prefect's "
        "proactive triggers wait 10 s at least).",
    )
    worker_gc_s: float = Field(
        default=60.0,
        gt=0.0,
        description="The local stack's workers run a full garbage collection this often: "
        "each completed run leaves 0.3-0.6 MiB in reference cycles (devstack/worker.py).",
    )
    pending_after_s: float = Field(
        default=900.0,
        gt=0.0,
        description="A flow run Pending this long is marked Crashed: its process never "
        "started (a worker killed while submitting it; an ECS task that never ran).",
    )

    @model_validator(mode="after")
    def _silence_outlasts_beats(self) -> FlowRunSettings:
        if self.crashed_after_s < 2 * self.heartbeat_s:
            raise ValueError("runs.crashed_after_s must be at least twice runs.heartbeat_s")
        return self


class NotificationSettings(BaseModel):
    """Who is told what the loop did, and how: Prefect automations and their block.

    `make up` / `mlops stack deploy` create the automations declared in
    `infra/prefect/automations.yaml`, all sending through one notification block of
    `kind`: a generic webhook (a JSON POST, the default), a Slack incoming webhook, or
    e-mail through SendGrid. Without a destination (`url`; for e-mail `email_to` and
    `sendgrid_api_key`) no automation is created, and `make up` says so.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["webhook", "slack", "email"] = "webhook"
    url: SecretStr | None = Field(
        default=None,
        description="webhook: any endpoint taking a JSON POST; slack: the incoming-webhook URL.",
    )
    token: SecretStr | None = Field(
        default=None, description="webhook: sent as `Authorization: Bearer <token>`."
    )
    email_to: str = Field(default="", description="email: recipients, comma-separated.")
    email_from: str = Field(default="mlops@localhost", description="email: the sender.")
    sendgrid_api_key: SecretStr | None = Field(default=None, description="email: SendGrid key.")
    ui_url: str | None = Field(
        default=None,
        description="Base of the Prefect UI links in messages (what a person can open); "
        "the stack's own UI (PREFECT_UI_URL) when unset.",
    )
    block_name: str = Field(
        default="mlops-notifications",
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Name of the Prefect notification block the automations send through.",
    )

    @property
    def recipients(self) -> list[str]:
        """email: the addresses of `email_to`."""
        return [part.strip() for part in self.email_to.split(",") if part.strip()]

    @property
    def configured(self) -> bool:
        """Whether a destination is set: without one, no automation is created."""
        if self.kind == "email":
            return bool(self.recipients) and self.sendgrid_api_key is not None
        return self.url is not None and bool(self.url.get_secret_value())

    def destination(self) -> str:
        """Where messages go, fit for a log line (no path, query or secret of the URL)."""
        if self.kind == "email":
            return f"email to {', '.join(self.recipients) or '(nobody)'}"
        if self.url is None:
            return f"{self.kind} (no URL)"
        parts = urlsplit(self.url.get_secret_value())
        return f"{self.kind} {parts.scheme}://{parts.hostname or '?'}" + (
            f":{parts.port}" if parts.port else ""
        )


class Settings(BaseSettings):
    """Every tunable of the system; see `.env.example` for the environment names."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    profile: Profile = Profile.EMBEDDED
    home: Path = Path(".mlops")
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://...) for table sources and production stores.",
    )
    tracking_uri: str | None = Field(default=None, description="MLflow tracking/registry URI.")
    optuna_storage: str | None = Field(
        default=None, description="Optuna RDB storage URL; SQLite under the state dir by default."
    )
    prefect_database_url: str | None = Field(
        default=None,
        description="PostgreSQL database of the Prefect server `mlops stack up` starts in the "
        "production profile (postgresql://...; served through asyncpg). Unused by flow runs "
        "and serving; the embedded server keeps SQLite under the state dir.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint (an S3-compatible server, a VPC endpoint); AWS when unset.",
    )
    s3_bucket: str | None = Field(
        default=None,
        description="Bucket holding raw batches, quarantine, reports, Feast offline files, "
        "training sets and MLflow artifacts; the local state dir when unset.",
    )
    s3_prefix: str = Field(
        default="", description="Key prefix of everything in the bucket (several deployments)."
    )
    s3_region: str | None = Field(
        default=None, description="Region of the bucket; boto3's own default when unset."
    )
    admin_token: SecretStr = SecretStr("change-me")
    validation: ValidationSettings = ValidationSettings()
    gate: GateSettings = GateSettings()
    feast: FeastSettings = FeastSettings()
    tuning: TuningSettings = TuningSettings()
    quantization: QuantizationSettings = QuantizationSettings()
    serving: ServingSettings = ServingSettings()
    rollout: RolloutSettings = RolloutSettings()
    retraining: RetrainingSettings = RetrainingSettings()
    drift: DriftSettings = DriftSettings()
    notifications: NotificationSettings = NotificationSettings()
    quality: QualitySettings = QualitySettings()
    runs: FlowRunSettings = FlowRunSettings()

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @model_validator(mode="after")
    def _production_needs_real_backends(self) -> Settings:
        if self.profile is not Profile.PRODUCTION:
            return self
        problems: list[str] = []
        if not self.database_url or not self.database_url.startswith("postgresql"):
            problems.append("MLOPS_DATABASE_URL must be a postgresql:// URL")
        if not self.tracking_uri or self.tracking_uri.startswith("sqlite"):
            problems.append("MLOPS_TRACKING_URI must name a tracking server or PostgreSQL")
        if not self.optuna_storage or self.optuna_storage.startswith("sqlite"):
            problems.append("MLOPS_OPTUNA_STORAGE must be a PostgreSQL URL")
        if self.feast.online_store == "sqlite":
            problems.append("MLOPS_FEAST__ONLINE_STORE must be redis or postgres")
        if self.feast.registry_url and self.feast.registry_url.startswith("sqlite"):
            problems.append("MLOPS_FEAST__REGISTRY_URL must not be SQLite")
        if self.prefect_database_url and not self.prefect_database_url.startswith("postgres"):
            problems.append("MLOPS_PREFECT_DATABASE_URL must be a PostgreSQL URL")
        if self.admin_token.get_secret_value() == "change-me":
            problems.append("MLOPS_ADMIN_TOKEN must not be the default secret")
        if problems:
            raise ValueError("production profile: " + "; ".join(problems))
        return self

    # Paths of the embedded state directory. Nothing here creates a directory:
    # callers create what they write (no side effects at import or construction).
    @property
    def raw_dir(self) -> Path:
        """Immutable copies of every ingested batch, named by content hash."""
        return self.home / "raw"

    @property
    def quarantine_dir(self) -> Path:
        """Refused batches and rows, each with its JSON result and HTML report."""
        return self.home / "quarantine"

    @property
    def ledger_dir(self) -> Path:
        """One JSON record per accepted batch (the content hash is the file name)."""
        return self.home / "ledger"

    @property
    def references_dir(self) -> Path:
        """Reference profiles the validation suites are learned from."""
        return self.home / "references"

    @property
    def feast_dir(self) -> Path:
        """Feast registry, offline parquet files and the SQLite online store."""
        return self.home / "feast"

    @property
    def training_sets_dir(self) -> Path:
        """Point-in-time training sets, named by content hash."""
        return self.home / "training_sets"

    @property
    def prefect_home(self) -> Path:
        """PREFECT_HOME for the embedded profile (its SQLite database and logs)."""
        return self.home / "prefect"

    @property
    def predictions_dir(self) -> Path:
        """The embedded prediction log and feedback (parquet parts)."""
        return self.home / "predictions"

    @property
    def landing_dir(self) -> Path:
        """Where labelled raw batches arrive from the source systems (one folder per dataset)."""
        return self.home / "landing"

    @property
    def spill_dir(self) -> Path:
        """Where the prediction log spills rows while its sink is unreachable."""
        return self.home / "spill"

    @property
    def artifacts_dir(self) -> Path:
        """MLflow's artifact root in the embedded profile (models, plots, reports)."""
        return self.home / "mlartifacts"

    @property
    def cache_dir(self) -> Path:
        """Disposable local copies: S3 objects read as files (`cache/s3/<bucket>/<key>`)
        and uploads being staged (`cache/staging`). Safe to delete at any time."""
        return self.home / "cache"

    @property
    def resolved_optuna_storage(self) -> str:
        """Optuna storage URL; SQLite inside the state directory by default."""
        return self.optuna_storage or f"sqlite:///{self.home / 'optuna.db'}"

    @property
    def prefect_server_database_url(self) -> str | None:
        """`prefect_database_url` with the asyncpg driver Prefect's server needs, or None."""
        url = self.prefect_database_url
        if not url:
            return None
        scheme, sep, rest = url.partition("://")
        if sep and (scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+")):
            return f"postgresql+asyncpg://{rest}"
        return url

    @property
    def resolved_tracking_uri(self) -> str:
        """MLflow tracking URI; SQLite inside the state directory by default."""
        return self.tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    def require_bucket_in_production(self) -> None:
        """Refuse to keep files in the local state dir in the production profile.

        Checked where files are stored (`mlops.storage.artifact_store`), not at
        construction, so settings that never store a file (a serving replica, a CLI
        reading the registry) need no bucket.
        """
        if self.profile is Profile.PRODUCTION and not self.s3_bucket:
            raise ConfigError(
                "the production profile keeps data and artifacts in S3: set MLOPS_S3_BUCKET"
            )

    def require_database_url(self) -> str:
        """The PostgreSQL URL, or a clear error naming the setting to provide."""
        if not self.database_url:
            raise ConfigError("this needs PostgreSQL: set MLOPS_DATABASE_URL=postgresql://...")
        return self.database_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (and `.env`)."""
    return Settings()
