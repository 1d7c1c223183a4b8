"""The whole training pipeline in the production profile, on real backends only.

PostgreSQL holds the Prefect server's database, the MLflow tracking and registry store,
the Optuna study, the Feast SQL registry (one fresh database each); Redis is the Feast
online store; a local S3 endpoint (moto's server mode, reached only by its URL) holds
raw batches, validation reports, quarantine, Feast offline files, training sets and
MLflow artifacts. The code is configured by `MLOPS_*` settings alone: nothing in it
knows the endpoint is not AWS. After the run, the prediction service (in this process,
on the same settings) answers by entity key with the features held in Redis.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import httpx
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from devstack.localstack import free_port
from flows.training import (
    PipelineStatus,
    TrainingPipelineParams,
    TrainingPipelineResult,
    run_training_pipeline,
)
from mlops.errors import DataValidationError
from mlops.settings import Settings
from mlops.synthetic import Defect, Scenario, generate, write_batch
from mlops.tracking.plots import OPTIMIZATION_HISTORY
from tests.conftest import REDIS_HOST, REDIS_PORT, _unavailable, fresh_databases
from tests.e2e.conftest import mlops_env
from tests.polling import wait_for
from tests.unit.tuning_support import psycopg_url

CARD_FRAUD = Path("datasets/card_fraud.yaml").resolve()
START = datetime(2026, 1, 1, tzinfo=UTC)
ROLES = ("prefect", "mlflow", "optuna", "feast", "app")
LOCAL_CACHE = "cache"
"""The one folder the production profile may write under the state dir: the object
cache (S3 objects read as local files, uploads being staged); see `mlops.storage`."""
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible HTTP endpoint (moto server mode) on a free port."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    wait_for(
        lambda: httpx.get(url, timeout=2).status_code < 500,
        "the S3 endpoint",
        30,
        tolerate=(httpx.TransportError,),
    )
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Dummy credentials for boto3's chain (the endpoint accepts any); restored after."""
    previous = {name: os.environ.get(name) for name in DUMMY_AWS}
    os.environ.update(DUMMY_AWS)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database per role (MLflow and Optuna both keep alembic tables)."""
    with fresh_databases(*ROLES) as urls:
        yield urls


@pytest.fixture(scope="module")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    yield client
    client.close()


@pytest.fixture(scope="module")
def prefect_on_postgres(
    databases: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`prefect server start` on the PostgreSQL database; flows of this module report to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": databases["prefect"].replace(
            "postgresql://", "postgresql+asyncpg://", 1
        ),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start"]
        + ["--host", "127.0.0.1", "--port", str(port), "--no-ui"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(
            lambda: server.poll() is None and _healthy(url),
            f"the Prefect server (log: {home / 'server.log'})",
            180,
            every=0.2,
            alive=lambda: server.poll() is None,
        )
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # send the runs' last log lines while the server still listens
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


@dataclass(frozen=True)
class ProductionRun:
    settings: Settings
    result: TrainingPipelineResult
    bucket: str
    databases: dict[str, str]
    wall_s: float
    data_dir: Path


@pytest.fixture(scope="module")
def production(
    s3_endpoint: str,
    aws_env: None,
    databases: dict[str, str],
    redis_client: redis.Redis,
    prefect_on_postgres: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProductionRun]:
    root = tmp_path_factory.mktemp("production")
    tag = uuid.uuid4().hex[:8]
    bucket = f"mlops-test-{tag}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    data = write_batch(generate(Scenario.BASELINE, 4_000, START, days=7), root / "baseline.parquet")
    overrides = {
        "MLOPS_PROFILE": "production",
        "MLOPS_DATABASE_URL": databases["app"],
        "MLOPS_TRACKING_URI": psycopg_url(databases["mlflow"]),
        "MLOPS_OPTUNA_STORAGE": psycopg_url(databases["optuna"]),
        "MLOPS_FEAST__REGISTRY_URL": psycopg_url(databases["feast"]),
        "MLOPS_FEAST__ONLINE_STORE": "redis",
        "MLOPS_FEAST__REDIS_CONNECTION": f"{REDIS_HOST}:{REDIS_PORT},db=0",
        "MLOPS_FEAST__PROJECT": f"prod_{tag}",
        "MLOPS_S3_ENDPOINT_URL": s3_endpoint,
        "MLOPS_S3_BUCKET": bucket,
        "MLOPS_ADMIN_TOKEN": f"test-token-{tag}",
        # Two trial processes on a local Dask cluster: they read the training set from S3.
        "MLOPS_TUNING__WORKERS": "2",
        "MLOPS_TUNING__N_TRIALS": "4",
    }
    with mlops_env(root / "state", **overrides) as settings:
        started = time.perf_counter()
        result = run_training_pipeline(
            TrainingPipelineParams(data=str(data), dataset_config=str(CARD_FRAUD))
        )
        wall = time.perf_counter() - started
        try:
            yield ProductionRun(settings, result, bucket, databases, wall, root)
        finally:
            from mlops.features.store import teardown_store

            teardown_store(settings)
    (root / "wall_s.json").write_text(json.dumps({"production_pipeline_s": wall}))


def test_pipeline_registers_a_model_in_the_production_profile(production: ProductionRun) -> None:
    result = production.result
    print(f"\nproduction-profile pipeline wall time: {production.wall_s:.1f} s")  # noqa: T201
    assert result.status is PipelineStatus.REGISTERED
    assert result.model is not None and set(result.model.aliases) == {"champion", "challenger"}
    prefix = f"s3://{production.bucket}/"
    assert result.batch.uri.startswith(prefix + "raw/card_fraud/")
    assert result.validation.report_json and result.validation.report_json.startswith(
        prefix + "ledger/card_fraud/"
    )
    assert result.features.offline_uri == prefix + "feast/offline/card_fraud"
    assert result.training_set.uri == (
        f"{prefix}training_sets/card_fraud/{result.training_set.sha256}.parquet"
    )
    assert result.training_set.rows == 4_000


def test_every_artifact_is_an_object_in_the_bucket(production: ProductionRun) -> None:
    result = production.result
    assert result.training is not None and result.quantization is not None
    keys = _bucket_keys(production)
    batch, accepted = result.batch.sha256, result.validation.accepted
    assert accepted is not None
    expected = {
        f"raw/card_fraud/{batch}.parquet",
        f"ledger/card_fraud/{batch}.json",
        f"ledger/card_fraud/{batch}.html",
        "references/card_fraud/profile.json",
        f"feast/offline/card_fraud/{accepted.sha256}.parquet",
        f"feast/labels/card_fraud/{accepted.sha256}.parquet",
        f"training_sets/card_fraud/{result.training_set.sha256}.parquet",
    }
    assert expected <= keys, f"missing: {sorted(expected - keys)}"

    experiment = "mlartifacts/training/card_fraud"
    run = f"{experiment}/{result.training.mlflow_run_id}/artifacts"
    for name in ("learning_curves_best_trial.png", "roc.png", "confusion_matrix.png"):
        assert f"{run}/evaluation/{name}" in keys
    assert f"{run}/quantization/comparison.md" in keys
    for variant in result.quantization.variants:
        assert any(k.startswith(f"{run}/quantization/{variant.scheme}/") for k in keys), variant
    models = [k for k in keys if k.startswith(f"{experiment}/models/") and k.endswith("/MLmodel")]
    assert models, "the logged models' files are in the bucket"
    assert f"{run}/{OPTIMIZATION_HISTORY}" in keys, "the study's plots are in the bucket"


def test_every_record_is_a_row_in_postgresql(production: ProductionRun) -> None:
    result = production.result
    assert result.training is not None and result.model is not None
    db = production.databases
    with psycopg.connect(db["mlflow"]) as conn:
        locations = [r[0] for r in conn.execute("SELECT artifact_location FROM experiments")]
        assert f"s3://{production.bucket}/mlartifacts/training/card_fraud" in locations
        runs = conn.execute(
            "SELECT count(*) FROM runs WHERE artifact_uri LIKE %s",
            (f"s3://{production.bucket}/%",),
        ).fetchone()
        assert runs is not None and runs[0] >= 1 + 4, "the parent run and one run per trial"
        version = conn.execute(
            "SELECT source FROM model_versions WHERE name = %s AND version = %s",
            ("card_fraud", int(result.model.version)),
        ).fetchone()
        assert version is not None
        aliases = {r[0] for r in conn.execute("SELECT alias FROM registered_model_aliases")}
        assert aliases == {"champion", "challenger"}
    with psycopg.connect(db["optuna"]) as conn:
        trials = conn.execute(
            "SELECT count(*) FROM trials t JOIN studies s USING (study_id) WHERE study_name = %s",
            (result.training.study_name,),
        ).fetchone()
        assert trials == (4,), "every trial of the study is a row of the shared storage"
    with psycopg.connect(db["feast"]) as conn:
        project = production.settings.feast.project
        for table in ("entities", "feature_views", "feature_services", "data_sources"):
            rows = conn.execute(
                f"SELECT count(*) FROM {table} WHERE project_id = %s", (project,)
            ).fetchone()
            assert rows is not None and rows[0] >= 1, f"no {table} of {project} in the registry"
    with psycopg.connect(db["prefect"]) as conn:
        runs = conn.execute(
            "SELECT f.name, r.state_type FROM flow_run r JOIN flow f ON f.id = r.flow_id"
        ).fetchall()
        assert ("training-pipeline", "COMPLETED") in runs
        assert ("tune-model", "COMPLETED") in runs


def test_online_features_are_redis_keys(
    production: ProductionRun, redis_client: redis.Redis
) -> None:
    project = production.settings.feast.project.encode()
    keys = list(redis_client.scan_iter(match=b"*" + project, count=1_000))
    assert len(keys) == production.result.features.rows_written > 0


def test_a_bad_batch_is_quarantined_in_the_bucket(production: ProductionRun) -> None:
    bad = generate(
        Scenario.BAD_BATCH, 1_000, datetime(2026, 1, 9, tzinfo=UTC), defects=[Defect.NULLS]
    )
    data = write_batch(bad, production.data_dir / "bad.parquet")
    before = _bucket_keys(production)
    with pytest.raises(DataValidationError) as refused:
        run_training_pipeline(
            TrainingPipelineParams(data=str(data), dataset_config=str(CARD_FRAUD))
        )
    report = refused.value.report
    folder = f"quarantine/card_fraud/{report.batch.sha256[:16]}"
    assert report.quarantine_dir == f"s3://{production.bucket}/{folder}"
    keys = _bucket_keys(production)
    names = {"batch.parquet", "result.json", "report.html", "spec.yaml", "manifest.json"}
    assert {f"{folder}/{name}" for name in names} <= keys
    s3 = boto3.client("s3", endpoint_url=production.settings.s3_endpoint_url)
    manifest = json.loads(
        s3.get_object(Bucket=production.bucket, Key=f"{folder}/manifest.json")["Body"].read()
    )
    assert manifest["data_file"] == f"s3://{production.bucket}/{folder}/batch.parquet"
    assert manifest["batch"]["uri"] == report.batch.uri
    added = keys - before
    assert not any(k.startswith(("feast/", "training_sets/", "ledger/")) for k in added), added


def test_a_file_in_the_bucket_is_scored_in_partitions_on_dask(production: ProductionRun) -> None:
    from flows.batch_scoring import BatchScoringParams, batch_scoring

    frame = generate(Scenario.BASELINE, 12_000, datetime(2026, 2, 1, tzinfo=UTC))
    local = production.data_dir / "to-score.parquet"
    table = pa.Table.from_pandas(frame.drop(columns=["is_fraud"]), preserve_index=False)
    pq.write_table(table, local, row_group_size=3_000)
    s3 = boto3.client("s3", endpoint_url=production.settings.s3_endpoint_url)
    s3.upload_file(str(local), production.bucket, "inbox/to-score.parquet")

    result = batch_scoring(
        BatchScoringParams(
            data=f"s3://{production.bucket}/inbox/to-score.parquet",
            model_name="card_fraud",
            rows_per_partition=6_000,
            workers=2,
        )
    )
    assert production.result.model is not None
    assert result.model.version == production.result.model.version
    folder = f"scores/card_fraud/v{result.model.version}/{result.input_sha256[:16]}"
    assert result.output_uri == f"s3://{production.bucket}/{folder}"
    keys = _bucket_keys(production)
    assert {f"{folder}/part-00000.parquet", f"{folder}/part-00001.parquet"} <= keys
    assert f"{folder}/_manifest.json" in keys
    scored = pd.concat(
        [
            pd.read_parquet(
                io.BytesIO(s3.get_object(Bucket=production.bucket, Key=k)["Body"].read())
            )
            for k in sorted(k for k in keys if k.startswith(f"{folder}/part-"))
        ],
        ignore_index=True,
    )
    assert scored["transaction_id"].tolist() == frame["transaction_id"].tolist()
    assert np.allclose(scored[["p_0", "p_1"]].sum(axis=1), 1.0, atol=1e-5)


def test_the_service_answers_by_entity_key_from_redis(
    production: ProductionRun, redis_client: redis.Redis
) -> None:
    from mlops.registry.client import CHAMPION, registry_client
    from tests.serving_support import ServerThread, wait_ready

    settings = production.settings
    assert settings.feast.online_store == "redis"
    champion = registry_client(settings).get_model_version_by_alias("card_fraud", CHAMPION)
    assert production.result.model is not None
    assert str(champion.version) == production.result.model.version
    batch = pd.read_parquet(production.data_dir / "baseline.parquet", columns=["card_id"])
    keys: list[str] = batch["card_id"].drop_duplicates().head(3).tolist()

    with (
        ServerThread(settings) as service,
        httpx.Client(base_url=service.url, timeout=60) as client,
    ):
        wait_ready(service.url, timeout_s=120)
        info = client.get("/v1/models").json()
        assert info["online_features"]["entity"] == "card_id"
        answer = client.post("/v1/predict", json={"entities": [{"card_id": k} for k in keys]})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert [p["entity"] for p in predictions] == keys
        assert {(p["variant"], p["model_version"]) for p in predictions} == {
            ("champion", str(champion.version))
        }
        for p in predictions:
            assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)

        # The features it used are what Redis holds: the same row sent as an instance
        # gets the same answer.
        service_name = info["online_features"]["feature_service"]
        key, held = _redis_features(settings, redis_client, service_name, keys[0])
        row = {f["name"]: held[f["name"]] for f in info["input_schema"]["features"]}
        direct = client.post("/v1/predict", json={"instances": [row]})
        assert direct.status_code == 200, direct.text
        assert direct.json()["predictions"][0]["probabilities"] == pytest.approx(
            predictions[0]["probabilities"], abs=1e-6
        )

        # Read at request time: without its Redis hash the entity is unknown at once.
        saved = redis_client.dump(key)
        assert saved is not None
        redis_client.delete(key)
        try:
            gone = client.post("/v1/predict", json={"entities": [{"card_id": keys[0]}]})
        finally:
            redis_client.restore(key, 0, saved)
        assert gone.status_code == 404, gone.text
        assert gone.json()["error"]["code"] == "unknown_entity"

        # A key never materialized: 404 naming the entity (documented in serving/app.py).
        unknown = client.post(
            "/v1/predict",
            json={"entities": [{"card_id": keys[1]}, {"card_id": "card_never_seen"}]},
        )
        assert unknown.status_code == 404, unknown.text
        error = unknown.json()["error"]
        assert (error["code"], error["field"]) == ("unknown_entity", "entities[1].card_id")
        again = client.post("/v1/predict", json={"entities": [{"card_id": keys[0]}]})
        assert again.status_code == 200, again.text


def _redis_features(
    settings: Settings, client: redis.Redis, service_name: str, entity: str
) -> tuple[bytes, dict[str, object]]:
    """The Redis key of an entity and its feature values, decoded from the hash itself
    (Feast's key and field encoding, not its online read path)."""
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.infra.online_stores.redis import _versioned_fv_name
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    from mlops.features.store import feature_store

    store = feature_store(settings)
    entity_key = EntityKey(join_keys=["card_id"], entity_values=[Value(string_val=entity)])
    key = _redis_key(
        settings.feast.project, entity_key, store.config.entity_key_serialization_version
    )
    stored = client.hgetall(key)
    assert stored, f"no Redis hash for {entity}"
    values: dict[str, object] = {}
    for projection in store.get_feature_service(service_name).feature_view_projections:
        view = _versioned_fv_name(store.get_feature_view(projection.name), store.config)
        for feature in projection.features:
            value = Value()
            value.ParseFromString(stored[_mmh3(f"{view}:{feature.name}")])
            decoded = feast_value_type_to_python_type(value)
            is_number = isinstance(decoded, int | float) and not isinstance(decoded, bool)
            values[feature.name] = float(decoded) if is_number else decoded
    return key, values


def test_nothing_is_written_under_the_state_dir_but_the_cache(production: ProductionRun) -> None:
    home = production.settings.home
    written = {p.relative_to(home).parts[0] for p in home.rglob("*") if p.is_file()}
    assert written <= {LOCAL_CACHE}, f"local state outside the cache: {sorted(written)}"


def _bucket_keys(run: ProductionRun) -> set[str]:
    s3 = boto3.client("s3", endpoint_url=run.settings.s3_endpoint_url)
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=run.bucket):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
