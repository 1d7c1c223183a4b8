"""`mlops canary status|promote|rollback` on a real (SQLite) registry, as a person uses them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlops.registry.client import CHALLENGER, CHAMPION, registry_client, version_by_alias
from mlops.rollout.state import RolloutStatus, read_rollout, start_rollout
from mlops.settings import Settings
from mlops_cli.main import app
from tests.e2e.conftest import mlops_env
from tests.serving_support import register_model, train_models


@pytest.fixture()
def two_versions(tmp_path: Path) -> Iterator[Settings]:
    with mlops_env(tmp_path / "state") as settings:
        models = train_models(tmp_path / "models", count=2, rows=1_500)
        register_model(settings, "card_fraud", models, 0)
        challenger = register_model(settings, "card_fraud", models, 1)
        start_rollout(
            registry_client(settings), "card_fraud", challenger.version, settings.rollout.stages
        )
        yield settings


def test_status_json_shows_aliases_and_the_running_rollout(two_versions: Settings) -> None:
    done = CliRunner().invoke(app, ["canary", "status", "--json"])
    assert done.exit_code == 0, done.output
    status = json.loads(done.output)
    assert (status["champion"], status["challenger"]) == ("1", "2")
    assert status["rollout"]["status"] == "running" and status["rollout"]["shadow"] is True


def test_a_manual_rollback_withdraws_the_challenger_and_is_audited(two_versions: Settings) -> None:
    done = CliRunner().invoke(app, ["canary", "rollback", "--reason", "bad smell"])
    assert done.exit_code == 0, done.output
    client = registry_client(two_versions)
    assert version_by_alias(client, "card_fraud", CHALLENGER) is None
    assert read_rollout(client, "card_fraud").status is RolloutStatus.ROLLED_BACK
    status = json.loads(CliRunner().invoke(app, ["canary", "status", "--json"]).output)
    assert status["decisions"][-1]["action"] == "rollback"
    assert status["decisions"][-1]["reason"] == "bad smell"
    again = CliRunner().invoke(app, ["canary", "rollback"])
    assert again.exit_code == 0 and "nothing done" in again.output


def test_a_manual_promotion_moves_the_champion(two_versions: Settings) -> None:
    done = CliRunner().invoke(app, ["canary", "promote"])
    assert done.exit_code == 0, done.output
    champion = version_by_alias(registry_client(two_versions), "card_fraud", CHAMPION)
    assert champion is not None and str(champion.version) == "2"


def test_restore_undoes_a_promotion_and_is_audited(two_versions: Settings) -> None:
    assert CliRunner().invoke(app, ["canary", "promote"]).exit_code == 0
    done = CliRunner().invoke(app, ["canary", "restore", "1", "--reason", "v2 hurt conversions"])
    assert done.exit_code == 0, done.output
    client = registry_client(two_versions)
    champion = version_by_alias(client, "card_fraud", CHAMPION)
    assert champion is not None and str(champion.version) == "1"
    assert client.get_model_version("card_fraud", "1").tags["rollout.restored_reason"] == (
        "v2 hurt conversions"
    )
    status = json.loads(CliRunner().invoke(app, ["canary", "status", "--json"]).output)
    last = status["decisions"][-1]
    assert (last["action"], last["version"], last["evidence"]["champion_before"]) == (
        "restore",
        "1",
        "2",
    )
    again = CliRunner().invoke(app, ["canary", "restore", "1"])
    assert again.exit_code == 0 and "nothing done" in again.output


def test_restore_is_refused_during_a_rollout_and_for_unknown_versions(
    two_versions: Settings,
) -> None:
    running = CliRunner().invoke(app, ["canary", "restore", "1"])
    assert running.exit_code == 1
    assert "in progress" in running.output
    assert CliRunner().invoke(app, ["canary", "rollback"]).exit_code == 0
    unknown = CliRunner().invoke(app, ["canary", "restore", "9"])
    assert unknown.exit_code == 1
    assert "no version 9" in unknown.output
    champion = version_by_alias(registry_client(two_versions), "card_fraud", CHAMPION)
    assert champion is not None and str(champion.version) == "1"
