"""Rollout state and decisions on a real MLflow registry; the audit trail on real databases.

One SQLite tracking store serves the module (each test registers its own model name);
the versions are tiny (a one-file artifact): what matters here is aliases and tags,
not what the versions hold. The audit trail runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pydantic import SecretStr

from mlops.registry.client import CHALLENGER, CHAMPION
from mlops.rollout.actions import (
    DECIDED_BY_TAG,
    PROMOTED_REASON_TAG,
    ROLLED_BACK_REASON_TAG,
    apply_decision,
    promote_now,
    rollback_now,
)
from mlops.rollout.audit import AuditTrail, audit_url
from mlops.rollout.policy import RolloutAction, RolloutDecision
from mlops.rollout.state import (
    STATE_TAG,
    RolloutStatus,
    Variant,
    pause_rollout,
    read_rollout,
    resume_rollout,
    start_rollout,
)
from mlops.settings import FeastSettings, Profile, RolloutSettings, Settings, get_settings
from serving.routing import route

STAGES = RolloutSettings().stages
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _rollout_lock_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """State changes without an explicit lock take the settings' one: keep it in tmp."""
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("rollout-registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment("rollout", artifact_location=(folder / "artifacts").as_uri())
    return uri


def fresh_client(uri: str) -> MlflowClient:
    """A new client, as another replica or flow run would have."""
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture
def model(tracking_uri: str, run_id: str) -> str:
    """A registered model with three tiny versions: v1 champion, v2 challenger, v3 spare."""
    client = fresh_client(tracking_uri)
    name = f"rollout_{run_id}"
    client.create_registered_model(name)
    experiment = client.get_experiment_by_name("rollout")
    assert experiment is not None
    run = client.create_run(experiment.experiment_id)
    client.log_text(run.info.run_id, "a tiny model", "model/MLmodel")
    for _ in range(3):
        client.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
    client.set_registered_model_alias(name, CHAMPION, "1")
    client.set_registered_model_alias(name, CHALLENGER, "2")
    return name


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return {alias: str(v) for alias, v in client.get_registered_model(name).aliases.items()}


def decision(
    name: str, version: str, action: RolloutAction, stage: int, to_stage: int, reason: str
) -> RolloutDecision:
    return RolloutDecision(
        model_name=name,
        challenger_version=version,
        action=action,
        reason=reason,
        from_stage=stage,
        to_stage=to_stage,
        to_share=STAGES[to_stage] if action is RolloutAction.ADVANCE else 0.0,
        evidence={"p_better": 0.01, "labelled_paired": 250},
        decided_at=T0 + timedelta(hours=stage),
        actor="rollout-policy",
    )


def test_rollout_state_lives_in_the_registry(tracking_uri: str, model: str) -> None:
    started = start_rollout(fresh_client(tracking_uri), model, "2", STAGES, now=T0)
    replica = fresh_client(tracking_uri)
    assert read_rollout(replica, model) == started
    assert (started.status, started.shadow, started.share) == (RolloutStatus.RUNNING, True, 0.0)
    tags = replica.get_registered_model(model).tags
    assert tags["rollout.status"] == "running" and tags["rollout.challenger_version"] == "2"
    assert STATE_TAG in tags
    assert route("card-1", read_rollout(replica, model), True).mirror_to_challenger

    paused = pause_rollout(replica, model, "incident 42")
    assert read_rollout(fresh_client(tracking_uri), model) == paused
    assert not route("card-1", paused, True).mirror_to_challenger
    resume_rollout(fresh_client(tracking_uri), model)
    assert read_rollout(replica, model).status is RolloutStatus.RUNNING


def test_a_missing_model_reads_as_idle(tracking_uri: str) -> None:
    state = read_rollout(fresh_client(tracking_uri), "no_such_model")
    assert state.status is RolloutStatus.IDLE and state.challenger_version is None


def test_advance_then_promote(tracking_uri: str, model: str) -> None:
    client = fresh_client(tracking_uri)
    state = start_rollout(client, model, "2", STAGES, now=T0)
    advance = decision(model, "2", RolloutAction.ADVANCE, 0, 1, "stage 0 complete")
    state = apply_decision(client, state, advance)
    assert read_rollout(fresh_client(tracking_uri), model).share == 0.05
    assert apply_decision(client, state, advance) == state  # a retried apply changes nothing

    promote = decision(model, "2", RolloutAction.PROMOTE, 1, 1, "challenger better")
    promoted = apply_decision(client, state, promote)
    replica = fresh_client(tracking_uri)
    assert read_rollout(replica, model) == promoted
    assert promoted.status is RolloutStatus.PROMOTED
    assert aliases(replica, model) == {CHAMPION: "2"}
    tags = replica.get_model_version(model, "2").tags
    assert tags[PROMOTED_REASON_TAG] == "challenger better"
    assert tags[DECIDED_BY_TAG] == "rollout-policy"
    assert route("card-1", promoted, True).answer is Variant.CHAMPION
    assert apply_decision(replica, state, promote) == promoted


def test_rollback_clears_the_challenger_and_tags_the_version(tracking_uri: str, model: str) -> None:
    client = fresh_client(tracking_uri)
    state = start_rollout(client, model, "3", STAGES, now=T0)  # moves `challenger` to v3
    assert aliases(client, model) == {CHAMPION: "1", CHALLENGER: "3"}
    reason = "guardrail: challenger error rate 5/5 (100.0%, lower bound 54.93%) above 1.00%"
    rolled = apply_decision(
        client, state, decision(model, "3", RolloutAction.ROLLBACK, 0, 0, reason)
    )
    replica = fresh_client(tracking_uri)
    assert read_rollout(replica, model) == rolled
    assert (rolled.status, rolled.reason) == (RolloutStatus.ROLLED_BACK, reason)
    assert aliases(replica, model) == {CHAMPION: "1"}
    assert replica.get_model_version(model, "3").tags[ROLLED_BACK_REASON_TAG] == reason
    assert start_rollout(replica, model, "3", STAGES) == rolled  # a decided rollout stays so


def test_manual_actions(tracking_uri: str, model: str) -> None:
    client = fresh_client(tracking_uri)
    start_rollout(client, model, "2", STAGES, now=T0)
    made = promote_now(client, model, actor="alice", reason="urgent fix")
    assert (made.action, made.actor, made.challenger_version) == (
        RolloutAction.PROMOTE,
        "alice",
        "2",
    )
    assert aliases(fresh_client(tracking_uri), model) == {CHAMPION: "2"}

    client.set_registered_model_alias(model, CHALLENGER, "3")
    made = rollback_now(client, model, actor="bob", reason="not now")
    assert (made.action, made.challenger_version) == (RolloutAction.ROLLBACK, "3")
    assert aliases(client, model) == {CHAMPION: "2"}
    assert client.get_model_version(model, "3").tags[ROLLED_BACK_REASON_TAG] == "not now"


# --- the audit trail ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def audit(request: pytest.FixtureRequest, settings: Settings) -> Iterator[AuditTrail]:
    url = (
        audit_url(settings)
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")  # postgresql://, normalised by AuditTrail
    )
    trail = AuditTrail(url)
    yield trail
    trail.close()


def test_the_audit_trail_appends_every_decision(audit: AuditTrail) -> None:
    made = [
        decision("m1", "2", RolloutAction.ADVANCE, 0, 1, "stage 0 complete"),
        decision("m1", "2", RolloutAction.PROMOTE, 1, 1, "challenger better"),
        decision("m2", "5", RolloutAction.ROLLBACK, 0, 0, "guardrail"),
    ]
    for one in made:
        audit.record(one, one.model_name, one.challenger_version)
    again = audit.record(made[0], "m1", "2")  # a retried task: no second row
    history = audit.history("m1")
    assert [r.action for r in history] == ["advance", "promote"]
    assert again.id == history[0].id
    first = history[0]
    assert (first.model_name, first.version, first.actor) == ("m1", "2", "rollout-policy")
    assert (first.from_stage, first.to_stage, first.to_share) == (0, 1, 0.05)
    assert first.decided_at == T0
    assert first.recorded_at.tzinfo is not None
    assert first.evidence == {"p_better": 0.01, "labelled_paired": 250}
    assert [r.reason for r in audit.history("m2")] == ["guardrail"]
    assert audit.history("m3") == []


def test_audit_url_by_profile(settings: Settings, tmp_path: Path) -> None:
    assert audit_url(settings) == f"sqlite:///{settings.home / 'rollout.db'}"
    production = Settings(  # type: ignore[call-arg]
        _env_file=None,
        profile=Profile.PRODUCTION,
        home=tmp_path,
        database_url="postgresql://mlops@db:5432/mlops",
        tracking_uri="http://mlflow:5000",
        optuna_storage="postgresql+psycopg://mlops@db:5432/optuna",
        feast=FeastSettings(online_store="redis"),
        admin_token=SecretStr("not-the-default"),
    )
    assert audit_url(production) == "postgresql+psycopg://mlops@db:5432/mlops"
