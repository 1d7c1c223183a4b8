"""The MLflow Model Registry with real models, on SQLite and on PostgreSQL.

Four small models are trained once for the module on 6,000 synthetic transactions,
chosen so that on the shared holdout they order as the gate tests need: `weak` does
not beat the logistic baseline by the margin, `worse` does but loses to `champion`,
and `better` beats `champion`. Each test gets a fresh tracking store, logs what it
needs as pyfunc models on a parent run, and registers them the way the flow does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlops import synthetic
from mlops.candidate import score_stored_model
from mlops.contracts import (
    DatasetRef,
    FeatureSetRef,
    GateDecision,
    ModelVersionRef,
    TrainingResult,
    TrainingSetRef,
    ValidationReport,
    Verdict,
)
from mlops.dataset_spec import load_spec
from mlops.errors import ArtifactIntegrityError
from mlops.lineage import lineage_key, lineage_tags
from mlops.modeling import (
    Metrics,
    ModelArtifact,
    TabularModel,
    TrainConfig,
    artifact_sha256,
    as_training_frame,
    evaluate,
    fit,
    load_model,
    logistic_baseline,
    save_model,
    split_time_ordered,
)
from mlops.modeling.artifact import WEIGHTS
from mlops.registry.client import (
    CHALLENGER,
    CHAMPION,
    LINEAGE_KEY_TAG,
    SHA_TAG,
    download_artifact,
    register_challenger,
    registry_client,
    version_by_alias,
)
from mlops.registry.gate import quality_gate
from mlops.registry.pyfunc import log_pyfunc_model
from mlops.settings import GateSettings, Settings
from mlops.sources import sha256_file
from mlops.tracking import configure_tracking, start_parent_run
from mlops.tuning import TuningData
from tests.unit.tuning_support import psycopg_url

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO_ROOT / "datasets" / "card_fraud.yaml")
NAME = SPEC.name  # one registered model per dataset spec, as the flow names it
ROWS = 6_000
GATE = GateSettings(metric="roc_auc", min_gain_over_baseline=0.01, champion_tolerance=0.0)
CONFIGS = {
    "champion": TrainConfig(max_epochs=2, learning_rate=1e-2, seed=3),
    "better": TrainConfig(max_epochs=3, learning_rate=3e-3, seed=0),
    "worse": TrainConfig(max_epochs=2, learning_rate=1e-2, seed=1),
    "weak": TrainConfig(max_epochs=1, learning_rate=3e-3, seed=0),
}


@dataclass(frozen=True)
class Trained:
    """A fitted model, its saved artifact and its holdout metrics."""

    config: TrainConfig
    model: TabularModel
    artifact: ModelArtifact
    metrics: Metrics


@dataclass(frozen=True)
class Models:
    """The module's data and models (trained once; every store reuses them)."""

    data: TuningData
    holdout: pd.DataFrame
    baseline: Metrics
    trained: dict[str, Trained]

    def __getitem__(self, key: str) -> Trained:
        return self.trained[key]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    folder = tmp_path_factory.mktemp("registry-models")
    raw = synthetic.generate(
        synthetic.Scenario.BASELINE, ROWS, datetime(2024, 1, 1, tzinfo=UTC), seed=3
    )
    schema = SPEC.resolve_schema(raw)
    frame = as_training_frame(raw, SPEC, schema)
    path = folder / "training_set.parquet"
    frame.to_parquet(path, index=False)
    data = TuningData(uri=str(path), sha256=sha256_file(path), spec=SPEC, feature_schema=schema)
    splits = split_time_ordered(
        frame,
        SPEC,
        holdout_fraction=data.holdout_fraction,
        validation_fraction=data.validation_fraction,
    )
    trained: dict[str, Trained] = {}
    for key, config in CONFIGS.items():
        model = fit(config, splits.train, splits.valid, SPEC, schema).model
        artifact = save_model(model, folder / key)
        trained[key] = Trained(config, model, artifact, evaluate(model, splits.holdout, SPEC))
    baseline = logistic_baseline(splits.train, splits.holdout, SPEC, schema)

    auc = {key: t.metrics.roc_auc for key, t in trained.items()}
    needed = baseline.roc_auc + GATE.min_gain_over_baseline
    assert auc["weak"] < needed <= auc["worse"] < auc["champion"] < auc["better"], (
        f"the fixture models no longer order as the gate tests need: {auc}, "
        f"baseline {baseline.roc_auc:.4f} (+{GATE.min_gain_over_baseline})"
    )
    return Models(data, splits.holdout, baseline, trained)


@pytest.fixture(autouse=True)
def restore_mlflow_uris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`configure_tracking` sets process-wide URIs: put them back after each test."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Settings on a fresh MLflow store (tracking and registry), configured for this process."""
    if request.param == "postgres":
        url = psycopg_url(request.getfixturevalue("postgres_url"))
        settings = settings.model_copy(update={"tracking_uri": url})
    configure_tracking(settings)
    return settings


# --- what the flow does, step by step --------------------------------------------------


def log_candidate(settings: Settings, models: Models, key: str) -> TrainingResult:
    """Log a trained model on its own parent run, as `train_candidate_task` does."""
    trained = models[key]
    with start_parent_run(
        settings,
        NAME,
        dataset_sha256=models.data.sha256,
        validation_verdict=Verdict.ACCEPTED.value,
        feature_service=f"{NAME}_v1",
        study_name=f"{NAME}-study",
    ) as parent_run_id:
        model_uri = log_pyfunc_model(parent_run_id, trained.artifact, trained.model, models.holdout)
    run = registry_client(settings).get_run(parent_run_id)
    return TrainingResult(
        dataset=NAME,
        mlflow_run_id=parent_run_id,
        experiment=str(run.info.experiment_id),
        study_name=f"{NAME}-study",
        best_trial=0,
        params=trained.config.model_dump(),
        epochs=trained.config.max_epochs,
        metrics=trained.metrics.model_dump(),
        baseline_metrics=models.baseline.model_dump(),
        model_uri=model_uri,
        artifact_sha256=trained.artifact.sha256,
        training_set_sha256=models.data.sha256,
    )


def tags_for(training: TrainingResult, models: Models) -> dict[str, str]:
    """The lineage tags the flow attaches, from stand-in upstream references."""
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC)
    batch = DatasetRef(
        dataset=NAME,
        uri="file:///raw/batch.parquet",
        sha256="b" * 64,
        rows=ROWS,
        start=start,
        end=end,
    )
    validation = ValidationReport(
        dataset=NAME,
        batch=batch,
        suite=f"{NAME}.contract",
        policy="reject-batch",
        verdict=Verdict.ACCEPTED,
        outcomes=(),
        bad_rows=0,
        clean_rows=ROWS,
        report_json="/reports/validation.json",
    )
    schema = models.data.feature_schema
    features = FeatureSetRef(
        dataset=NAME,
        project="mlops",
        feature_service=f"{NAME}_v1",
        feature_view=f"{NAME}_fv",
        entity=SPEC.entity,
        features=schema.columns,
        offline_uri="file:///feast/offline",
        online_store="sqlite",
        rows_written=ROWS,
        materialized_until=end,
    )
    training_set = TrainingSetRef(
        dataset=NAME,
        uri=models.data.uri,
        sha256=models.data.sha256,
        rows=ROWS,
        features=schema.columns,
        label=SPEC.label,
        feature_service=f"{NAME}_v1",
        start=start,
        end=end,
        label_counts={"0": ROWS - 400, "1": 400},
    )
    return lineage_tags(
        batch, validation, features, training_set, training, "flow-run-1", "http://prefect/1"
    )


def register(settings: Settings, training: TrainingResult, models: Models) -> ModelVersionRef:
    """`register_model_task` without Prefect."""
    return register_challenger(
        registry_client(settings),
        NAME,
        source=training.model_uri,
        run_id=training.mlflow_run_id,
        artifact_sha256=training.artifact_sha256,
        lineage_key=lineage_key(training),
        tags=tags_for(training, models),
    )


def gate_then_register(
    settings: Settings, training: TrainingResult, models: Models, tmp_path: Path
) -> tuple[GateDecision, ModelVersionRef | None]:
    """`quality_gate_task`, then `register_model_task` only when the gate passed."""
    client = registry_client(settings)
    champion = version_by_alias(client, NAME, CHAMPION)
    champion_metrics = None
    if champion is not None:
        number = str(champion.version)
        folder = download_artifact(client, NAME, number, tmp_path / f"champion-v{number}")
        sha = (champion.tags or {})[SHA_TAG]
        champion_metrics = score_stored_model(folder, sha, models.holdout, models.data)
    decision = quality_gate(
        training.metrics,
        training.baseline_metrics,
        None if champion_metrics is None else champion_metrics.model_dump(),
        GATE,
        champion_version=None if champion is None else str(champion.version),
    )
    if not decision.passed:
        return decision, None
    return decision, register(settings, training, models)


def aliases(client: MlflowClient) -> dict[str, str]:
    """Alias -> version number of the registered model."""
    return {
        alias: str(number) for alias, number in client.get_registered_model(NAME).aliases.items()
    }


def version_numbers(client: MlflowClient) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'"))


def store_path(client: MlflowClient, version: str) -> Path:
    """The folder on disk holding a version's files (a local artifact store)."""
    uri = urlparse(client.get_model_version_download_uri(NAME, version))
    assert uri.scheme == "file", f"not a local artifact store: {uri.geturl()}"
    return Path(url2pathname(uri.path))


# --- tests ---------------------------------------------------------------------------


def test_first_version_is_champion_and_the_next_only_challenger(
    store: Settings, models: Models
) -> None:
    client = registry_client(store)
    first = log_candidate(store, models, "champion")
    v1 = register(store, first, models)
    assert (v1.name, v1.version, v1.aliases) == (NAME, "1", (CHALLENGER, CHAMPION))
    assert v1.model_uri == f"models:/{NAME}/1"
    assert v1.run_id == first.mlflow_run_id
    assert v1.artifact_sha256 == models["champion"].artifact.sha256

    second = log_candidate(store, models, "better")
    assert lineage_key(second) != lineage_key(first)
    v2 = register(store, second, models)
    assert (v2.version, v2.aliases) == ("2", (CHALLENGER,))
    assert v2.artifact_sha256 == models["better"].artifact.sha256
    assert aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}
    assert version_numbers(client) == [1, 2]


def test_registering_the_same_lineage_again_adds_no_version(
    store: Settings, models: Models
) -> None:
    client = registry_client(store)
    training = log_candidate(store, models, "champion")
    first = register(store, training, models)
    again = register(store, training, models)
    assert again == first
    assert version_numbers(client) == [1]
    assert aliases(client) == {CHAMPION: "1", CHALLENGER: "1"}


def test_version_carries_lineage_and_serves_probabilities(store: Settings, models: Models) -> None:
    client = registry_client(store)
    training = log_candidate(store, models, "champion")
    ref = register(store, training, models)
    version = client.get_model_version(NAME, ref.version)
    tags = version.tags
    assert tags[SHA_TAG] == models["champion"].artifact.sha256
    assert tags[LINEAGE_KEY_TAG] == lineage_key(training)
    expected = tags_for(training, models)
    assert {k: tags.get(k) for k in expected} == expected
    assert tags["training_set.sha256"] == models.data.sha256
    assert tags["mlflow.run_id"] == training.mlflow_run_id
    assert float(tags["metrics.holdout.roc_auc"]) == pytest.approx(
        models["champion"].metrics.roc_auc, abs=1e-6
    )

    served = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION}")
    rows = models.holdout.head(50)  # raw feature values plus entity, time and label
    proba = served.predict(rows)
    assert list(proba.columns) == ["p_0", "p_1"]
    assert len(proba) == len(rows)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(proba.to_numpy(), models["champion"].model.predict_proba(rows), atol=1e-6)


def test_downloaded_artifact_loads_after_its_digest_is_checked(
    store: Settings, models: Models, tmp_path: Path
) -> None:
    client = registry_client(store)
    ref = register(store, log_candidate(store, models, "champion"), models)
    folder = download_artifact(client, NAME, ref.version, tmp_path / "download")
    assert artifact_sha256(folder) == ref.artifact_sha256
    loaded = load_model(folder, ref.artifact_sha256)
    original = models["champion"].model
    assert loaded.classes == original.classes
    assert np.array_equal(
        loaded.predict_proba(models.holdout), original.predict_proba(models.holdout)
    )


def test_a_tampered_version_is_refused(settings: Settings, models: Models, tmp_path: Path) -> None:
    configure_tracking(settings)  # SQLite and a local artifact store we can reach into
    client = registry_client(settings)
    ref = register(settings, log_candidate(settings, models, "champion"), models)
    (weights,) = store_path(client, ref.version).rglob(WEIGHTS)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight: still a valid safetensors file
    weights.write_bytes(bytes(data))

    folder = download_artifact(client, NAME, ref.version, tmp_path / "download")
    with pytest.raises(ArtifactIntegrityError, match=f"{ref.artifact_sha256} was expected"):
        load_model(folder, ref.artifact_sha256)
    with pytest.raises(ArtifactIntegrityError, match="refusing to load it"):
        mlflow.pyfunc.load_model(f"models:/{NAME}/{ref.version}")


def test_refused_candidates_leave_the_aliases_untouched(
    store: Settings, models: Models, tmp_path: Path
) -> None:
    client = registry_client(store)
    first, v1 = gate_then_register(
        store, log_candidate(store, models, "champion"), models, tmp_path
    )
    assert first.passed and first.champion is None
    assert v1 is not None and v1.aliases == (CHALLENGER, CHAMPION)
    champion_auc = models["champion"].metrics.roc_auc
    baseline_auc = models.baseline.roc_auc

    worse, ref = gate_then_register(store, log_candidate(store, models, "worse"), models, tmp_path)
    assert not worse.passed and ref is None
    assert worse.champion == pytest.approx(champion_auc)  # scored from the registry
    assert worse.champion_version == "1"
    assert worse.reason == (
        f"roc_auc {models['worse'].metrics.roc_auc:.4f} is worse than champion v1 "
        f"({champion_auc:.4f}) on the same holdout (tolerance 0.0000)"
    )

    weak, ref = gate_then_register(store, log_candidate(store, models, "weak"), models, tmp_path)
    assert not weak.passed and ref is None
    assert weak.reason == (
        f"roc_auc {models['weak'].metrics.roc_auc:.4f} does not beat the logistic-regression "
        f"baseline {baseline_auc:.4f} by 0.0100"
    )
    assert version_numbers(client) == [1]
    assert aliases(client) == {CHAMPION: "1", CHALLENGER: "1"}

    better, v2 = gate_then_register(store, log_candidate(store, models, "better"), models, tmp_path)
    assert better.passed and better.champion_version == "1"
    assert v2 is not None and (v2.version, v2.aliases) == ("2", (CHALLENGER,))
    assert aliases(client) == {CHAMPION: "1", CHALLENGER: "2"}
