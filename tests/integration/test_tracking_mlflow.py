"""MLflow tracking on a temporary SQLite store and on PostgreSQL: one parent run per
training, one nested run per trial with its params, per-epoch curves and final state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from optuna.trial import TrialState

from mlops.settings import Settings, TuningSettings
from mlops.tracking import (
    TAG_DATASET_SHA256,
    TAG_FEATURE_SERVICE,
    TAG_FLOW_RUN_ID,
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
    TAG_VALIDATION_VERDICT,
    TrialTracker,
    configure_tracking,
    ensure_experiment,
    start_parent_run,
    tracking_client,
)
from mlops.tracking.plots import log_study_plots, study_figures
from mlops.tuning import TuningData, open_study, run_trials
from tests.unit.tuning_support import psycopg_url, toy_fit, write_tuning_data

STATE_TAGS = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}


@pytest.fixture(autouse=True)
def restore_mlflow_uris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`configure_tracking` sets process-wide URIs: put them back after each test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TuningData:
    return write_tuning_data(tmp_path_factory.mktemp("tracking-data"), rows=1_000)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def tracked_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    tuning = TuningSettings(n_trials=8, max_epochs=5, n_startup_trials=3, n_warmup_steps=2)
    if request.param == "sqlite":
        return settings.model_copy(update={"tuning": tuning})
    url = psycopg_url(request.getfixturevalue("postgres_url"))
    return settings.model_copy(update={"tracking_uri": url, "tuning": tuning})


def test_trials_are_nested_runs_with_curves_and_states(
    tracked_settings: Settings, data: TuningData
) -> None:
    settings = tracked_settings
    assert configure_tracking(settings) == mlflow.get_tracking_uri()
    with start_parent_run(
        settings,
        "card_fraud",
        dataset_sha256=data.sha256,
        validation_verdict="accepted",
        feature_service="card_fraud_v1",
        flow_run_id="flow-run-123",
        study_name="tracked",
    ) as parent:
        tracker = TrialTracker.for_parent_run(settings, parent)
        run_trials("tracked", None, data, settings, tracker, fit=toy_fit)
        study = open_study("tracked", settings)
        assert log_study_plots(parent, study) == [
            "optuna/optimization_history.png",
            "optuna/param_importances.png",
        ]

    client = tracking_client(settings.resolved_tracking_uri)
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.tags[TAG_DATASET_SHA256] == data.sha256
    assert parent_run.data.tags[TAG_VALIDATION_VERDICT] == "accepted"
    assert parent_run.data.tags[TAG_FEATURE_SERVICE] == "card_fraud_v1"
    assert parent_run.data.tags[TAG_FLOW_RUN_ID] == "flow-run-123"
    assert {a.path for a in client.list_artifacts(parent, "optuna")} == {
        "optuna/optimization_history.png",
        "optuna/param_importances.png",
    }

    experiment = client.get_experiment(parent_run.info.experiment_id)
    assert experiment.name == "training/card_fraud"
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'"
    )
    assert len(children) == len(study.trials) == 8
    by_number = {int(r.data.tags[TAG_TRIAL_NUMBER]): r for r in children}
    assert {STATE_TAGS[t.state] for t in study.trials} == {"complete", "pruned"}
    for trial in study.trials:
        run = by_number[trial.number]
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.data.tags[TAG_TRIAL_STATE] == STATE_TAGS[trial.state]
        assert run.data.tags[MLFLOW_RUN_NAME] == f"trial-{trial.number:03d}"
        assert run.data.params["learning_rate"] == str(trial.params["learning_rate"])
        assert run.data.params["max_epochs"] == "5"
        curve = client.get_metric_history(run.info.run_id, "valid_loss")
        assert [m.step for m in sorted(curve, key=lambda m: m.step)] == sorted(
            trial.intermediate_values
        )
        assert {m.step: m.value for m in curve} == pytest.approx(trial.intermediate_values)
        if trial.state is TrialState.PRUNED:
            assert len(curve) < 5
        else:
            assert len(curve) == 5
            assert run.data.metrics["best_valid_loss"] == pytest.approx(trial.value)


def test_embedded_artifacts_live_under_the_state_directory(settings: Settings) -> None:
    configure_tracking(settings)
    experiment_id = ensure_experiment(settings, "card_fraud")
    assert ensure_experiment(settings, "card_fraud") == experiment_id
    location = tracking_client(settings.resolved_tracking_uri).get_experiment(experiment_id)
    assert location.artifact_location == (settings.artifacts_dir / "training/card_fraud").as_uri()
    assert Path(settings.home / "mlflow.db").is_file()


def test_a_failing_block_fails_the_parent_run(settings: Settings) -> None:
    client = tracking_client(settings.resolved_tracking_uri)
    with (
        pytest.raises(RuntimeError, match="boom"),
        start_parent_run(
            settings,
            "card_fraud",
            dataset_sha256="0" * 64,
            validation_verdict="accepted",
            feature_service="card_fraud_v1",
        ) as parent,
    ):
        raise RuntimeError("boom")
    assert client.get_run(parent).info.status == "FAILED"


def test_importances_are_skipped_below_two_complete_trials() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert list(study_figures(study)) == ["optuna/optimization_history.png"]
    assert study_figures(optuna.create_study()) == {}
