"""The one settings object: every URL and path the system uses, read from `MLOPS_*`.

Nothing else in the code base reads environment variables. The embedded default keeps
all state under one directory (`.mlops/` unless `MLOPS_HOME` names another) on SQLite
and local files; the production profile points the same code at PostgreSQL, Redis and
S3 and refuses embedded backends.

`Settings` holds the top-level values (profile, state directory, backend URLs, the
bucket) and one section per subsystem, each read from `MLOPS_<SECTION>__*`; the
section models live beside this module, by the part of the loop they tune:

- `training`: validation, Feast, the gate, tuning, quantization
- `serving`: the prediction service and the canary rollout
- `monitoring`: drift, data quality of served traffic, retraining guardrails
- `operations`: silent flow runs, notifications
- `base`: what the sections share (a frozen base model, constrained number types)

Every model is importable from `mlops.settings` itself.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops.errors import ConfigError
from mlops.settings.monitoring import DriftSettings, QualitySettings, RetrainingSettings
from mlops.settings.operations import FlowRunSettings, NotificationSettings
from mlops.settings.serving import RolloutSettings, ServingSettings
from mlops.settings.training import (
    FeastSettings,
    GateSettings,
    QuantizationSettings,
    RowPolicy,
    SelectionPolicy,
    TuningSettings,
    ValidationSettings,
)

__all__ = [
    "DriftSettings",
    "FeastSettings",
    "FlowRunSettings",
    "GateSettings",
    "NotificationSettings",
    "Profile",
    "QualitySettings",
    "QuantizationSettings",
    "RetrainingSettings",
    "RolloutSettings",
    "RowPolicy",
    "SelectionPolicy",
    "ServingSettings",
    "Settings",
    "TuningSettings",
    "ValidationSettings",
    "get_settings",
]


class Profile(StrEnum):
    """Which family of backends the system runs on."""

    EMBEDDED = "embedded"
    PRODUCTION = "production"


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
