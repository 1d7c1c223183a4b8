"""The settings object: embedded defaults under one directory, a strict production profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops.settings import Profile, RowPolicy, Settings


def test_embedded_default_keeps_all_state_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "state", _env_file=None)  # type: ignore[call-arg]
    for path in (
        settings.raw_dir,
        settings.quarantine_dir,
        settings.ledger_dir,
        settings.references_dir,
        settings.feast_dir,
        settings.training_sets_dir,
        settings.prefect_home,
    ):
        assert path.is_relative_to(tmp_path / "state")
    assert settings.resolved_tracking_uri == f"sqlite:///{tmp_path / 'state' / 'mlflow.db'}"
    assert not (tmp_path / "state").exists(), "building settings must not create directories"


def test_environment_overrides_with_prefix_and_nesting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MLOPS_VALIDATION__POLICY", "quarantine-rows")
    monkeypatch.setenv("MLOPS_FEAST__ONLINE_STORE", "redis")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.home == (tmp_path / "elsewhere").resolve()
    assert settings.validation.policy is RowPolicy.QUARANTINE_ROWS
    assert settings.feast.online_store == "redis"


def test_relative_home_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings(home=Path(".mlops"), _env_file=None).home == tmp_path / ".mlops"  # type: ignore[call-arg]


def test_production_profile_refuses_embedded_backends_and_default_secret() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(profile=Profile.PRODUCTION, tracking_uri="sqlite:///x.db", _env_file=None)  # type: ignore[call-arg]
    message = str(info.value)
    assert "MLOPS_DATABASE_URL" in message
    assert "MLOPS_TRACKING_URI" in message
    assert "MLOPS_FEAST__ONLINE_STORE" in message
    assert "MLOPS_OPTUNA_STORAGE" in message
    assert "MLOPS_ADMIN_TOKEN" in message


def test_production_profile_accepts_real_backends() -> None:
    settings = Settings(  # type: ignore[call-arg]
        profile=Profile.PRODUCTION,
        database_url="postgresql://u@db/mlops",
        tracking_uri="postgresql+psycopg://u@db/mlflow",
        optuna_storage="postgresql+psycopg://u@db/optuna",
        feast={"online_store": "redis", "redis_connection": "redis:6379"},
        admin_token="a-long-random-token",
        _env_file=None,
    )
    assert settings.feast.online_store == "redis"


def test_invalid_policy_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_VALIDATION__POLICY", "drop-everything")
    with pytest.raises(ValidationError, match="validation.policy"):
        Settings(_env_file=None)  # type: ignore[call-arg]
