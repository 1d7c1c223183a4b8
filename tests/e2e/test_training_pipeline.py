"""The `training-pipeline` flow on a real Prefect server, as a user runs it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.training import (
    PipelineStatus,
    TrainingPipelineParams,
    TrainingPipelineResult,
    run_training_pipeline,
)
from mlops.dataset_spec import load_spec
from mlops.errors import DataValidationError
from mlops.features.store import read_online_features
from mlops.settings import RowPolicy, Settings
from mlops.synthetic import DEFECT_COLUMNS, Defect, Scenario, generate, write_batch
from mlops.validation import load_manifest, load_profile
from tests.e2e.conftest import mlops_env

CARD_FRAUD = Path("datasets/card_fraud.yaml").resolve()
START = datetime(2026, 1, 1, tzinfo=UTC)
# The expectation each defect must trip, by the suite's naming scheme.
EXPECTED_FAILURE = {
    Defect.NULLS: "not_null",
    Defect.OUT_OF_RANGE: "in_range",
    Defect.WRONG_DTYPE: "dtype",
    Defect.MISSING_COLUMN: "exists",
    Defect.DUPLICATE_KEYS: "keys.unique",
}


@dataclass(frozen=True)
class BaselineState:
    settings: Settings
    result: TrainingPipelineResult
    batch: pd.DataFrame
    data_dir: Path


def _run(
    data: Path, spec: Path = CARD_FRAUD, policy: RowPolicy | None = None, *, train: bool = True
) -> TrainingPipelineResult:
    params = TrainingPipelineParams(
        data=str(data), dataset_config=str(spec), policy=policy, train=train
    )
    return run_training_pipeline(params)


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` with its content hash: equal digests mean nothing changed."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _online(state: BaselineState, entity_ids: list[str]) -> pd.DataFrame:
    spec = load_spec(CARD_FRAUD)
    profile = load_profile(spec, state.settings)
    assert profile is not None
    return read_online_features(spec, profile.feature_schema, state.settings, entity_ids)


@pytest.fixture(scope="module")
def baseline(
    prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BaselineState]:
    root = tmp_path_factory.mktemp("baseline")
    frame = generate(Scenario.BASELINE, 4_000, START, days=7)
    data = write_batch(frame, root / "data" / "baseline.parquet")
    # Two trial workers: the tuning subflow runs on a local Dask cluster of processes.
    with mlops_env(
        root / "state", MLOPS_TUNING__WORKERS="2", MLOPS_TUNING__N_TRIALS="4"
    ) as settings:
        result = _run(data)
        yield BaselineState(settings=settings, result=result, batch=frame, data_dir=root / "data")


def test_baseline_batch_becomes_a_point_in_time_training_set(baseline: BaselineState) -> None:
    result = baseline.result
    assert result.validation.passed and not result.validation.failed
    assert result.batch.rows == result.validation.clean_rows == 4_000
    training = pd.read_parquet(result.training_set.uri)
    assert len(training) == result.training_set.rows == 4_000, "rows in must equal rows out"
    assert set(result.training_set.features) <= set(training.columns)
    assert sum(result.training_set.label_counts.values()) == 4_000
    # Each transaction's features are its own: the point-in-time join lands on its row.
    merged = training.merge(
        baseline.batch, on=["card_id", "event_timestamp"], suffixes=("", "_raw"), validate="1:1"
    )
    np.testing.assert_allclose(merged["amount"], merged["amount_raw"])
    assert (merged["is_fraud"] == merged["is_fraud_raw"]).all()


def test_online_store_serves_each_cards_latest_values(baseline: BaselineState) -> None:
    latest = baseline.batch.sort_values("event_timestamp").groupby("card_id").tail(1)
    sample = latest.sample(25, random_state=1)
    online = _online(baseline, list(sample["card_id"]))
    np.testing.assert_allclose(online["amount"].to_numpy(), sample["amount"].to_numpy())
    assert list(online["merchant_category"]) == list(sample["merchant_category"])


def test_rerunning_the_same_batch_reproduces_the_model_and_duplicates_nothing(
    baseline: BaselineState,
) -> None:
    offline = _tree_digest(baseline.settings.feast_dir / "offline")
    again = _run(baseline.data_dir / "baseline.parquet")
    first = baseline.result
    assert again.training_set.sha256 == first.training_set.sha256
    assert _tree_digest(baseline.settings.feast_dir / "offline") == offline
    assert again.training is not None and first.training is not None
    assert again.training.metrics == first.training.metrics, "same seed and data, same metrics"
    assert again.training.artifact_sha256 == first.training.artifact_sha256
    assert again.model is not None and first.model is not None
    assert again.model.version == first.model.version, "no duplicate registry version"


def test_flow_run_publishes_artifacts_a_person_reads(baseline: BaselineState) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = ["validation-card-fraud", "validation-summary-card-fraud", "features-card-fraud"]
    keys += ["training-set-card-fraud", "hpo-leaderboard-card-fraud", "evaluation-card-fraud"]
    keys += ["quality-gate-card-fraud", "model-version-card-fraud"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    assert {a.key for a in artifacts} == set(keys)
    table = next(a for a in artifacts if a.key == "validation-card-fraud")
    assert "amount.in_range" in str(table.data)


@pytest.mark.parametrize("defect", list(Defect), ids=lambda d: d.value)
def test_each_bad_batch_defect_is_caught_named_and_quarantined(
    baseline: BaselineState, defect: Defect
) -> None:
    settings = baseline.settings
    stores = {name: _tree_digest(settings.feast_dir / name) for name in ("offline", "labels")}
    training_sets = _tree_digest(settings.training_sets_dir)
    probe = list(baseline.batch["card_id"].drop_duplicates().head(30))
    online_before = _online(baseline, probe)
    bad = generate(
        Scenario.BAD_BATCH, 1_000, datetime(2026, 1, 9, tzinfo=UTC), days=2, defects=[defect]
    )
    data = write_batch(bad, baseline.data_dir / f"bad-{defect.value}.parquet")

    with pytest.raises(DataValidationError) as refused:
        _run(data)

    report = refused.value.report
    failed = {o.name for o in report.failed}
    expected = {f"{c}.{EXPECTED_FAILURE[defect]}" for c in DEFECT_COLUMNS[defect]}
    if defect is Defect.DUPLICATE_KEYS:
        expected = {"keys.unique"}
    assert expected & failed, f"{defect}: expected one of {expected}, got {failed}"
    assert any(name in str(refused.value) for name in failed), "the message names the expectations"
    folder = Path(report.quarantine_dir or "")
    assert (folder / "report.html").is_file() and (folder / "result.json").is_file()
    assert str(folder / "report.html") in str(refused.value)
    manifest = load_manifest(folder)
    assert manifest.batch.sha256 == report.batch.sha256
    # Nothing downstream ran: offline files, labels, training sets and online values as before.
    for name, digest in stores.items():
        assert _tree_digest(settings.feast_dir / name) == digest, f"{name} store changed"
    assert _tree_digest(settings.training_sets_dir) == training_sets
    pd.testing.assert_frame_equal(_online(baseline, probe), online_before)


def test_quarantine_rows_policy_trains_on_the_clean_rows(
    prefect_api_url: str, tmp_path: Path
) -> None:
    base = write_batch(generate(Scenario.BASELINE, 3_000, START), tmp_path / "base.parquet")
    bad = generate(
        Scenario.BAD_BATCH, 2_000, datetime(2026, 1, 8, tzinfo=UTC), defects=[Defect.OUT_OF_RANGE]
    )
    data = write_batch(bad, tmp_path / "some-bad-rows.parquet")
    with mlops_env(tmp_path / "state"):
        _run(base, train=False)
        result = _run(data, policy=RowPolicy.QUARANTINE_ROWS, train=False)
    assert result.status is PipelineStatus.FEATURES_ONLY
    report = result.validation
    assert report.bad_rows > 0 and report.clean_rows == 2_000 - report.bad_rows
    assert result.training_set.rows == 3_000 + report.clean_rows
    rows = pd.read_parquet(Path(report.quarantine_dir or "") / "rows.parquet")
    assert len(rows) == report.bad_rows
    assert rows["__failed_expectations"].astype(str).str.contains("in_range").all()


def test_another_dataset_runs_from_its_spec_alone(prefect_api_url: str, tmp_path: Path) -> None:
    """Other column names, integer entity ids, a three-class label: no code change."""
    rng = np.random.default_rng(7)
    rows = 1_500
    frame = pd.DataFrame(
        {
            "patient_ref": rng.integers(1, 300, rows),
            "seen_at": pd.Timestamp("2026-02-01", tz="UTC")
            + pd.to_timedelta(rng.uniform(0, 30 * 86_400, rows), unit="s"),
            "heart_rate": rng.normal(80, 12, rows).round(1),
            "temperature": rng.normal(37.0, 0.6, rows).round(2),
            "arrival": rng.choice(["walk-in", "ambulance", "referral"], rows),
        }
    )
    frame["triage"] = np.select(
        [frame["heart_rate"] > 95, frame["temperature"] > 37.6], ["urgent", "soon"], "routine"
    )
    frame = frame.drop_duplicates(["patient_ref", "seen_at"])
    data = tmp_path / "visits.csv"
    frame.to_csv(data, index=False)
    spec = tmp_path / "triage.yaml"
    spec.write_text(
        "name: triage\nentity: patient_ref\ntimestamp: seen_at\nlabel: triage\ntask: multiclass\n"
    )
    with mlops_env(tmp_path / "state"):
        result = _run(data, spec)
    assert result.status is PipelineStatus.REGISTERED
    assert result.model is not None and result.model.name == "triage"
    assert result.training is not None and 0.0 <= result.training.metrics["roc_auc"] <= 1.0
    assert result.training_set.rows == len(frame)
    assert set(result.training_set.label_counts) == {"urgent", "soon", "routine"}
    assert set(result.features.features) == {"heart_rate", "temperature", "arrival"}
    assert result.features.feature_service == "triage_v1"


def test_baseline_is_tuned_registered_and_traceable(baseline: BaselineState) -> None:
    from mlflow import MlflowClient

    result = baseline.result
    assert result.status is PipelineStatus.REGISTERED
    assert result.training is not None and result.model is not None and result.gate is not None
    assert (
        result.gate.passed and result.gate.baseline == result.training.baseline_metrics["roc_auc"]
    )
    assert set(result.model.aliases) == {"champion", "challenger"}, "first version is champion"
    uri = baseline.settings.resolved_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("card_fraud", result.model.version)
    tags = version.tags
    assert tags["data.sha256"] == result.batch.sha256
    assert tags["training_set.sha256"] == result.training_set.sha256
    assert tags["features.service"] == "card_fraud_v1"
    assert tags["validation.verdict"] == "accepted"
    assert tags["study.name"] == result.training.study_name
    assert tags["mlflow.run_id"] == result.training.mlflow_run_id
    assert tags["prefect.flow_run_id"] == str(result.flow_run_id)
    quantized = result.quantization
    assert quantized is not None
    assert tags["artifact.sha256"] == quantized.artifact_sha256
    assert tags["quantization.scheme"] == quantized.scheme
    assert tags["quantization.parent_run"] == result.training.mlflow_run_id
    assert float(tags["quantization.retention"]) == pytest.approx(quantized.retention, abs=1e-6)
    assert int(tags["quantization.bytes"]) == quantized.bytes
    trials = client.search_runs(
        [client.get_run(result.training.mlflow_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.training.mlflow_run_id}'",
    )
    assert len(trials) == 4, "one nested MLflow run per trial"
    logged = {a.path for a in client.list_artifacts(result.training.mlflow_run_id, "evaluation")}
    assert {
        "evaluation/learning_curves_best_trial.png",
        "evaluation/roc.png",
        "evaluation/confusion_matrix.png",
    } <= logged
    assert {t.data.tags["optuna.trial_state"] for t in trials} <= {"complete", "pruned"}


def test_every_variant_is_scored_logged_and_the_chosen_one_serves(
    baseline: BaselineState,
) -> None:
    import mlflow
    from mlflow import MlflowClient

    result = baseline.result
    quantized, training = result.quantization, result.training
    assert quantized is not None and training is not None and result.model is not None
    tried = {v.scheme: v for v in quantized.variants}
    assert set(tried) == {"fp32", "int8", "fp16", "ternary"}
    chosen = tried[quantized.scheme]
    assert chosen.passed and quantized.retention >= quantized.threshold or chosen.scheme == "fp32"
    assert quantized.fp32_bytes > 0 and quantized.bytes == chosen.bytes
    passing = [v for v in tried.values() if v.passed and v.scheme != "int8"]  # batch-dependent
    assert chosen.bytes == min(v.bytes for v in passing), "smallest-passing is the default policy"
    uri = baseline.settings.resolved_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    logged = {a.path for a in client.list_artifacts(training.mlflow_run_id, "quantization")}
    assert {f"quantization/{s}" for s in tried} | {"quantization/comparison.md"} <= logged
    metrics = client.get_run(training.mlflow_run_id).data.metrics
    assert metrics["quantization.ternary.retention"] == pytest.approx(tried["ternary"].retention)
    # The registered version is the chosen variant and loads from the registry alone.
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    served = mlflow.pyfunc.load_model(f"models:/card_fraud/{result.model.version}")
    rows = baseline.batch.drop(columns=["is_fraud"]).head(64)
    proba = served.predict(rows)
    assert list(proba.columns) == ["p_0", "p_1"]
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_a_variant_failing_the_retention_gate_is_never_registered(
    prefect_api_url: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    data = write_batch(generate(Scenario.BASELINE, 3_000, START), tmp_path / "batch.parquet")
    # Post-training ternarization (no fine-tuning) cannot keep all of the parent's ROC AUC.
    strict = {
        "MLOPS_QUANTIZATION__SCHEMES": '["fp32", "ternary"]',
        "MLOPS_QUANTIZATION__QAT_EPOCHS": "0",
        "MLOPS_QUANTIZATION__MIN_RETENTION": "1.0",
    }
    with mlops_env(tmp_path / "state", **strict) as settings:
        result = _run(data)
    quantized, training = result.quantization, result.training
    assert quantized is not None and training is not None and result.model is not None
    ternary = next(v for v in quantized.variants if v.scheme == "ternary")
    assert not ternary.passed and ternary.retention < 1.0
    assert quantized.scheme == "fp32"
    uri = settings.resolved_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    tags = client.get_model_version("card_fraud", result.model.version).tags
    assert tags["quantization.scheme"] == "fp32"
    assert tags["artifact.sha256"] == training.artifact_sha256


def test_a_candidate_that_fails_the_gate_changes_nothing_in_the_registry(
    prefect_api_url: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    first = write_batch(generate(Scenario.BASELINE, 3_000, START), tmp_path / "first.parquet")
    later = generate(Scenario.BASELINE, 1_500, datetime(2026, 1, 8, tzinfo=UTC))
    second = write_batch(later, tmp_path / "second.parquet")
    with mlops_env(tmp_path / "state") as settings:
        registered = _run(first)
        assert registered.model is not None
        # An impossible bar: no candidate beats logistic regression by 0.5 ROC AUC.
        with mlops_env(tmp_path / "state", MLOPS_GATE__MIN_GAIN_OVER_BASELINE="0.5"):
            refused = _run(second)
        uri = settings.resolved_tracking_uri
    assert refused.status is PipelineStatus.NOT_PROMOTED and refused.model is None
    assert "does not beat the logistic-regression baseline" in refused.reason
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='card_fraud'")
    assert [int(v.version) for v in versions] == [int(registered.model.version)]
    assert client.get_model_version_by_alias("card_fraud", "champion").version == int(
        registered.model.version
    )
