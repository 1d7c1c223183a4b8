"""`feature_repo/feature_store.yaml` and the Feast config built from settings agree.

Pure checks (no service): the CLI and the UI must look at the registry and the online
store the pipeline writes, and each settings profile must map to the right stores.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from feast.repo_config import load_repo_config

from mlops.features.config import render_feature_store_yaml, repo_config
from mlops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FEATURE_REPO = ROOT / "feature_repo"


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`Settings()` as the pipeline sees it from the project root, without env overrides."""
    for name in [n for n in os.environ if n.startswith("MLOPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(ROOT)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def _resolved(repo_path: Path, path: str) -> Path:
    candidate = Path(path)
    return (candidate if candidate.is_absolute() else repo_path / candidate).resolve()


def test_feature_store_yaml_matches_default_settings(default_settings: Settings) -> None:
    from_yaml = load_repo_config(FEATURE_REPO, FEATURE_REPO / "feature_store.yaml")
    from_settings = repo_config(default_settings)

    assert from_yaml.project == from_settings.project == "mlops"
    assert from_yaml.provider == from_settings.provider == "local"
    assert from_yaml.offline_store.type == from_settings.offline_store.type == "duckdb"
    assert from_yaml.online_store.type == from_settings.online_store.type == "sqlite"
    assert from_yaml.registry.registry_type == from_settings.registry.registry_type == "file"
    assert (
        from_yaml.entity_key_serialization_version == from_settings.entity_key_serialization_version
    )
    assert from_yaml.materialization_config == from_settings.materialization_config
    assert from_yaml.registry.serve_features_while_materializing
    assert from_settings.registry.serve_features_while_materializing
    assert _resolved(FEATURE_REPO, from_yaml.registry.path) == Path(from_settings.registry.path)
    assert _resolved(FEATURE_REPO, from_yaml.online_store.path) == Path(
        from_settings.online_store.path
    )
    assert Path(from_settings.registry.path).is_relative_to(default_settings.feast_dir)


def test_rendered_yaml_loads_as_the_same_config(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "state", _env_file=None)  # type: ignore[call-arg]
    path = tmp_path / "feature_store.yaml"
    path.write_text(render_feature_store_yaml(settings))

    loaded = load_repo_config(tmp_path, path)

    assert loaded.project == settings.feast.project
    assert loaded.online_store.path == str(settings.feast_dir / "online.db")
    assert loaded.registry.path == str(settings.feast_dir / "registry.db")


def test_production_stores_come_from_settings(tmp_path: Path) -> None:
    base = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    redis = base.model_copy(
        update={
            "feast": base.feast.model_copy(
                update={
                    "online_store": "redis",
                    "redis_connection": "cache:6380,db=3",
                    "registry_url": "postgresql://feast@db:5432/registry",
                }
            )
        }
    )
    config = repo_config(redis)
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "cache:6380,db=3"
    assert config.registry.registry_type == "sql"
    assert config.registry.path == "postgresql+psycopg://feast@db:5432/registry"

    postgres = redis.model_copy(
        update={
            "database_url": "postgresql://app:secret@127.0.0.1:5433/mlops",
            "feast": redis.feast.model_copy(update={"online_store": "postgres"}),
        }
    )
    online = repo_config(postgres).online_store
    assert (online.host, online.port, online.database) == ("127.0.0.1", 5433, "mlops")
    assert (online.user, online.password, online.sslmode) == ("app", "secret", "disable")

    remote = postgres.model_copy(update={"database_url": "postgresql://app@db.internal/mlops"})
    assert repo_config(remote).online_store.sslmode == "require"
    pinned = postgres.model_copy(
        update={"database_url": "postgresql://app@db.internal/mlops?sslmode=verify-full"}
    )
    assert repo_config(pinned).online_store.sslmode == "verify-full"
