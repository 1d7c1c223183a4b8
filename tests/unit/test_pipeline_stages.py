"""The pipeline's stages without Prefect, on a real SQLite MLflow store and a tiny study
(two trials of two epochs on 1,500 synthetic rows): the study's summary, the candidate
logged to its run, loading a logged or registered model only when its digest matches,
the drift monitor's champion and reference, the quality gate against the champion, the
quantization stage, and starting and stepping a canary rollout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlops.candidate import champion_is_candidate, judge_candidate, train_and_log_candidate
from mlops.compression import ARTIFACT_ROOT, quantization_tags, quantize_candidate
from mlops.contracts import TrainingResult
from mlops.errors import ArtifactIntegrityError, ConfigError
from mlops.lineage import lineage_key
from mlops.modeling import evaluate, split_time_ordered
from mlops.monitoring import (
    LABEL,
    SCORE,
    TRAINING_SET_SHA_TAG,
    TRAINING_SET_URI_TAG,
    champion_reference,
    champion_reference_frame,
    find_champion,
)
from mlops.registry.client import (
    CHAMPION,
    SHA_TAG,
    load_logged_model,
    load_registered_model,
    register_challenger,
    registry_client,
)
from mlops.rollout.policy import RolloutAction
from mlops.rollout.state import RolloutStatus
from mlops.rollout.stepper import start_challenger_rollout, step_model_rollout
from mlops.scoring import ScoringModel, load_scoring_model, resolve_model
from mlops.settings import QuantizationSettings, Settings
from mlops.sources import read_frame
from mlops.tracking import start_parent_run
from mlops.tracking.mlflow_tracking import tracking_client
from mlops.tuning import StudySummary, TuningData, open_study, run_trials
from mlops.tuning.report import LEARNING_CURVES, summarize_study, trial_curve
from quantization import Scheme
from serving.prediction_log import read_feedback, read_predictions
from tests.unit.tuning_support import tuning_settings, write_tuning_data

STUDY = "stages"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Embedded settings on a fresh state dir: two trials of at most two epochs; fp32
    and fp16 variants only (the ternary fine-tuning is tested on its own)."""
    home = tmp_path_factory.mktemp("stages") / "state"
    base = Settings(home=home, _env_file=None)  # type: ignore[call-arg]
    tuned = tuning_settings(base, n_trials=2, max_epochs=2, patience=2)
    schemes = QuantizationSettings(schemes=("fp32", "fp16"))
    return tuned.model_copy(update={"quantization": schemes})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> TuningData:
    return write_tuning_data(tmp_path_factory.mktemp("data"), rows=1_500)


@pytest.fixture(scope="module")
def parent(store: Settings, data: TuningData) -> Iterator[str]:
    with start_parent_run(
        store,
        data.spec.name,
        dataset_sha256=data.sha256,
        validation_verdict="accepted",
        feature_service="card_fraud_v1",
        study_name=STUDY,
    ) as run_id:
        yield run_id


@pytest.fixture(scope="module")
def summary(store: Settings, data: TuningData, parent: str) -> StudySummary:
    run_trials(STUDY, None, data, store)
    return summarize_study(store, STUDY, parent)


@pytest.fixture(scope="module")
def training(
    store: Settings, data: TuningData, summary: StudySummary, parent: str
) -> TrainingResult:
    return train_and_log_candidate(store, data, summary, parent)


@pytest.fixture(scope="module")
def champion_v1(store: Settings, data: TuningData, training: TrainingResult) -> str:
    """The candidate registered as the first version (champion), with its training set."""
    ref = register_challenger(
        registry_client(store),
        data.spec.name,
        source=training.model_uri,
        run_id=training.mlflow_run_id,
        artifact_sha256=training.artifact_sha256,
        lineage_key=lineage_key(training),
        tags={TRAINING_SET_URI_TAG: str(data.path), TRAINING_SET_SHA_TAG: data.sha256},
    )
    assert ref.version == "1" and CHAMPION in ref.aliases
    return ref.version


def artifacts(client: MlflowClient, run_id: str, folder: str | None = None) -> set[str]:
    return {item.path for item in client.list_artifacts(run_id, folder)}


def holdout(data: TuningData) -> pd.DataFrame:
    return split_time_ordered(
        read_frame(data.path),
        data.spec,
        holdout_fraction=data.holdout_fraction,
        validation_fraction=data.validation_fraction,
    ).holdout


def test_the_study_summary_goes_to_the_parent_run(
    store: Settings, summary: StudySummary, parent: str
) -> None:
    assert summary.study_name == STUDY and summary.n_complete + summary.n_pruned == 2
    best = open_study(STUDY, store).best_trial
    assert best.number == summary.best_trial_number
    curve = trial_curve(best)
    assert 1 <= len(curve) <= 2 and all(0.0 <= record.valid_auc <= 1.0 for record in curve)
    logged = artifacts(tracking_client(store.resolved_tracking_uri), parent, "evaluation")
    assert LEARNING_CURVES in logged


def test_the_candidate_is_logged_with_its_metrics_and_figures(
    store: Settings, data: TuningData, training: TrainingResult, parent: str
) -> None:
    client = tracking_client(store.resolved_tracking_uri)
    logged = client.get_run(parent).data
    assert training.mlflow_run_id == parent and training.dataset == data.spec.name
    assert training.training_set_sha256 == data.sha256
    assert logged.metrics["holdout_roc_auc"] == pytest.approx(training.metrics["roc_auc"])
    assert logged.metrics["baseline_roc_auc"] == pytest.approx(training.baseline_metrics["roc_auc"])
    assert {f"best_{name}" for name in training.params} <= set(logged.params)
    assert {"evaluation/confusion_matrix.png", "evaluation/roc.png"} <= artifacts(
        client, parent, "evaluation"
    )
    # The logged model is the candidate: loaded back it scores the holdout the same.
    model = load_logged_model(training.model_uri, training.artifact_sha256)
    scored = evaluate(model, holdout(data), data.spec).model_dump()
    assert scored["roc_auc"] == pytest.approx(training.metrics["roc_auc"])


def test_a_logged_model_is_loaded_only_against_its_digest(training: TrainingResult) -> None:
    with pytest.raises(ArtifactIntegrityError, match="was expected"):
        load_logged_model(training.model_uri, "0" * 64)
    for missing in (None, ""):
        with pytest.raises(ArtifactIntegrityError, match="no artifact.sha256"):
            load_logged_model(training.model_uri, missing)


def test_a_registered_version_is_loaded_only_against_its_digest(
    store: Settings, data: TuningData, training: TrainingResult, champion_v1: str
) -> None:
    client = registry_client(store)
    name = data.spec.name
    model = load_registered_model(client, name, champion_v1, training.artifact_sha256)
    rows = holdout(data)
    direct = load_logged_model(training.model_uri, training.artifact_sha256)
    np.testing.assert_array_equal(model.predict_proba(rows), direct.predict_proba(rows))
    with pytest.raises(ArtifactIntegrityError, match="was expected"):
        load_registered_model(client, name, champion_v1, "f" * 64)
    with pytest.raises(ArtifactIntegrityError, match=f"{name} v1 has no artifact.sha256 tag"):
        load_registered_model(client, name, champion_v1, None)
    # Batch scoring loads its pinned version the same way, once per process.
    pinned = resolve_model(store, name)
    assert pinned == ScoringModel(
        name=name, version=champion_v1, artifact_sha256=training.artifact_sha256
    )
    scoring = load_scoring_model(pinned, store)
    assert load_scoring_model(pinned, store) is scoring
    np.testing.assert_array_equal(scoring.predict_proba(rows), direct.predict_proba(rows))
    tampered = pinned.model_copy(update={"artifact_sha256": "e" * 64})
    with pytest.raises(ArtifactIntegrityError, match="was expected"):
        load_scoring_model(tampered, store)


def test_the_monitor_finds_the_champion_and_scores_its_training_set(
    store: Settings, data: TuningData, training: TrainingResult, champion_v1: str
) -> None:
    champion = find_champion(store, data.spec.name)
    assert (champion.name, champion.version, champion.run_id) == (
        data.spec.name,
        champion_v1,
        training.mlflow_run_id,
    )
    assert champion.reference_id == f"{data.spec.name}-v1"
    assert Path(champion.cache_dir) == store.home / "drift" / "references"
    with pytest.raises(ConfigError, match="has no champion"):
        find_champion(store, "no_such_model")

    frame = champion_reference_frame(store, champion, data.spec)
    training_set = read_frame(data.path)
    assert len(frame) == len(training_set)
    model = load_logged_model(training.model_uri, training.artifact_sha256)
    np.testing.assert_allclose(frame[SCORE], model.predict_proba(training_set)[:, 1])
    assert set(frame[LABEL].unique()) <= {0, 1}

    reference = champion_reference(store, champion, data.spec, data.feature_schema)
    assert reference.reference_id == champion.reference_id
    assert reference.rows == len(training_set) and reference.prediction is not None
    assert (Path(champion.cache_dir) / reference.cache_key).is_dir()
    again = champion_reference(store, champion, data.spec, data.feature_schema)
    assert (again.cache_key, again.created_at) == (reference.cache_key, reference.created_at)


def test_the_gate_scores_a_champion_of_another_lineage_on_the_same_holdout(
    store: Settings, data: TuningData, training: TrainingResult, champion_v1: str
) -> None:
    client = registry_client(store)
    name = data.spec.name
    champion = client.get_model_version(name, champion_v1)
    assert champion_is_candidate(champion, training) and not champion_is_candidate(None, training)
    remade = judge_candidate(store, data, training)
    assert remade.champion is None and remade.champion_version == champion_v1

    # The same artifact registered under another lineage, made champion: it is downloaded,
    # checked and scored on the candidate's holdout (the same model: the same figure).
    other = register_challenger(
        client,
        name,
        source=training.model_uri,
        run_id=training.mlflow_run_id,
        artifact_sha256=training.artifact_sha256,
        lineage_key="another-lineage",
        tags={},
    )
    client.set_registered_model_alias(name, CHAMPION, other.version)
    try:
        decision = judge_candidate(store, data, training)
        assert decision.champion_version == other.version
        assert decision.champion == pytest.approx(training.metrics[decision.metric])
        client.set_model_version_tag(name, other.version, SHA_TAG, "0" * 64)
        with pytest.raises(ArtifactIntegrityError, match="was expected"):
            judge_candidate(store, data, training)
    finally:
        client.set_registered_model_alias(name, CHAMPION, champion_v1)


def test_quantization_logs_every_variant_and_chooses_one(
    store: Settings, data: TuningData, training: TrainingResult
) -> None:
    quantized = quantize_candidate(store, data, training)
    result = quantized.result
    assert result.parent_run == training.mlflow_run_id
    assert {v.scheme for v in result.variants} == {"fp32", "fp16"}
    assert result.scheme in {"fp32", "fp16"} and result.policy == "smallest-passing"
    if result.scheme == Scheme.FP32.value:
        assert (result.model_uri, result.artifact_sha256) == (
            training.model_uri,
            training.artifact_sha256,
        )
    chosen = load_logged_model(result.model_uri, result.artifact_sha256)
    assert chosen.classes == (0, 1)

    client = tracking_client(store.resolved_tracking_uri)
    run = client.get_run(training.mlflow_run_id).data
    assert run.tags["quantization.scheme"] == result.scheme
    assert run.metrics["quantization.fp16.retention"] == pytest.approx(
        next(v.retention for v in result.variants if v.scheme == "fp16")
    )
    logged = artifacts(client, training.mlflow_run_id, ARTIFACT_ROOT)
    assert {f"{ARTIFACT_ROOT}/comparison.md", f"{ARTIFACT_ROOT}/result.json"} <= logged
    assert f"{ARTIFACT_ROOT}/fp16" in logged and "fp16" in quantized.comparison
    assert quantization_tags(result) == {
        "quantization.scheme": result.scheme,
        "quantization.parent_run": training.mlflow_run_id,
        "quantization.retention": f"{result.retention:.6f}",
        "quantization.bytes": str(result.bytes),
        "quantization.fp32_bytes": str(result.fp32_bytes),
        "quantization.policy": "smallest-passing",
    }


def test_a_canary_starts_on_the_challenger_and_holds_without_traffic(
    store: Settings, training: TrainingResult
) -> None:
    client = registry_client(store)
    for lineage in ("canary-v1", "canary-v2"):
        register_challenger(
            client,
            "canary",
            source=training.model_uri,
            run_id=training.mlflow_run_id,
            artifact_sha256=training.artifact_sha256,
            lineage_key=lineage,
            tags={},
        )
    idle, nothing = start_challenger_rollout(client, "no_such_model", None, store)
    assert nothing is None and not idle.active

    state, version = start_challenger_rollout(client, "canary", None, store)
    assert version == "2" and state.challenger_version == "2"
    assert (state.status, state.stage, state.shadow) == (RolloutStatus.RUNNING, 0, True)
    assert start_challenger_rollout(client, "canary", "2", store) == (state, "2")

    asked: list[tuple[str, datetime]] = []

    def read_traffic(model: str, since: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
        asked.append((model, since))
        return read_predictions(store, model_name=model, since=since), read_feedback(
            store, since=since
        )

    step = step_model_rollout(client, "canary", store, read_traffic)
    assert step.decision is not None and step.decision.action is RolloutAction.HOLD
    assert not step.applied and step.state == state
    registered = client.get_model_version("canary", "2").creation_timestamp / 1000
    assert asked == [("canary", datetime.fromtimestamp(registered, tz=UTC))]

    none = step_model_rollout(client, "no_such_model", store, read_traffic)
    assert none.decision is None and len(asked) == 1
