"""The Feast `RepoConfig` derived from `Settings`, so the pipeline needs no YAML file.

The embedded default keeps the registry and a SQLite online store under
`settings.feast_dir`; the production profile points the same code at a SQL registry
(`feast.registry_url`, else the shared `database_url`) and a Redis or PostgreSQL online
store. The offline store is always `duckdb` over parquet files with absolute paths:
Feast's default `file` (Dask) offline store drops entity rows in
`get_historical_features`, duckdb keeps every row. With a bucket configured the parquet
files live in S3 and DuckDB reads their local mirror (see `mlops.features.offline`).
"""

from __future__ import annotations

import logging
from typing import Any

import yaml
from feast import RepoConfig
from sqlalchemy.engine import make_url

from mlops.errors import ConfigError
from mlops.settings import Profile, Settings

OFFLINE_STORE_TYPE = "duckdb"
ENTITY_KEY_SERIALIZATION_VERSION = 3
REGISTRY_FILE = "registry.db"
SQLITE_ONLINE_FILE = "online.db"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MATERIALIZATION = {"pull_latest_features": True}
"""Materialize pulls only each entity's latest row (deduplicated inside duckdb) instead of
every row of the window (deduplicated in pandas by Feast's local engine)."""


def registry_url(settings: Settings) -> str | None:
    """The SQL registry's URL: `feast.registry_url`, else in the production profile the
    shared `database_url` (one registry for every process); None means a local file."""
    if settings.feast.registry_url:
        return settings.feast.registry_url
    if settings.profile is Profile.PRODUCTION:
        return settings.require_database_url()
    return None


def registry_config(settings: Settings) -> dict[str, Any]:
    """A SQL registry when `registry_url` names one, else a file in `feast_dir`.

    Both keep serving while a materialization runs: from the second run on, Feast marks
    the feature view MATERIALIZING in the shared registry, and without
    `serve_features_while_materializing` every online read in other processes (the
    serving replicas) fails until it ends (measured: 127 of 128 reads refused).
    """
    url = registry_url(settings)
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # SQLAlchemy maps a bare postgresql:// to psycopg2, which is not installed.
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return {
            "registry_type": "sql",
            "path": url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
            "serve_features_while_materializing": True,
        }
    return {
        "registry_type": "file",
        "path": str(settings.feast_dir / REGISTRY_FILE),
        "serve_features_while_materializing": True,
    }


class _FileRegistryServingWarning(logging.Filter):
    """Drops Feast's warning that `serve_features_while_materializing` "typically has no
    effect" on a file registry: it does have one (the state gate reads the same file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("`serve_features_while_materializing` is enabled but")
            and "'file'" in message
        )


_REGISTRY_WARNING_FILTER = _FileRegistryServingWarning()


def quiet_file_registry_warning() -> None:
    """Install the filter above on Feast's config logger (idempotent)."""
    logging.getLogger("feast.repo_config").addFilter(_REGISTRY_WARNING_FILTER)


def online_store_config(settings: Settings) -> dict[str, Any]:
    """The online store section for the backend `feast.online_store` selects."""
    kind = settings.feast.online_store
    if kind == "sqlite":
        return {"type": "sqlite", "path": str(settings.feast_dir / SQLITE_ONLINE_FILE)}
    if kind == "redis":
        return {"type": "redis", "connection_string": settings.feast.redis_connection}
    return _postgres_online_config(settings.require_database_url())


def _postgres_online_config(database_url: str) -> dict[str, Any]:
    """Split a PostgreSQL URL into the fields Feast's postgres store wants.

    Feast defaults `sslmode` to `require`, which a local server refuses; an explicit
    `?sslmode=` in the URL wins, else local hosts get `disable` and others `require`.
    """
    try:
        url = make_url(database_url)
    except Exception as exc:  # sqlalchemy raises ArgumentError, keep the message
        raise ConfigError(f"MLOPS_DATABASE_URL is not a valid URL: {exc}") from exc
    if not url.drivername.startswith("postgres"):
        raise ConfigError("the postgres online store needs a postgresql:// MLOPS_DATABASE_URL")
    host = url.host or "127.0.0.1"
    sslmode = url.query.get("sslmode")
    if isinstance(sslmode, tuple):
        sslmode = sslmode[0]
    return {
        "type": "postgres",
        "host": host,
        "port": url.port or 5432,
        "database": url.database or "postgres",
        "db_schema": "public",
        "user": url.username or "postgres",
        "password": url.password or "",
        "sslmode": sslmode or ("disable" if host in _LOCAL_HOSTS else "require"),
    }


def repo_config(settings: Settings) -> RepoConfig:
    """The Feast configuration for these settings (nothing is created on disk here)."""
    quiet_file_registry_warning()
    return RepoConfig(
        project=settings.feast.project,
        provider="local",
        registry=registry_config(settings),
        online_store=online_store_config(settings),
        offline_store={"type": OFFLINE_STORE_TYPE},
        entity_key_serialization_version=ENTITY_KEY_SERIALIZATION_VERSION,
        materialization=MATERIALIZATION,
        repo_path=settings.feast_dir,
    )


def render_feature_store_yaml(settings: Settings) -> str:
    """A `feature_store.yaml` equivalent to `repo_config(settings)`, with absolute paths.

    Lets the `feast` CLI (`-f`) and the Feast UI look at the registry of any profile.
    """
    document = {
        "project": settings.feast.project,
        "provider": "local",
        "registry": registry_config(settings),
        "online_store": online_store_config(settings),
        "offline_store": {"type": OFFLINE_STORE_TYPE},
        "entity_key_serialization_version": ENTITY_KEY_SERIALIZATION_VERSION,
        "materialization": MATERIALIZATION,
    }
    text: str = yaml.safe_dump(document, sort_keys=False)
    return text
