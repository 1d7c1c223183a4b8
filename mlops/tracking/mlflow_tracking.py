"""MLflow set-up from settings: where runs go, one experiment per dataset, the parent run.

Everything goes through an `MlflowClient` bound to an explicit URI rather than MLflow's
process-global active run, so the same code works in the flow process, in a Dask
worker and in a thread, and nothing depends on which process called what first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache

import mlflow
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from sqlalchemy.engine import make_url

from mlops.settings import Settings
from mlops.storage import locate

logger = logging.getLogger(__name__)

# Lineage tags on the parent run; the registry and serving read them back by these names.
TAG_DATASET = "mlops.dataset"
TAG_DATASET_SHA256 = "mlops.dataset_sha256"
TAG_VALIDATION_VERDICT = "mlops.validation_verdict"
TAG_FEATURE_SERVICE = "mlops.feature_service"
TAG_FLOW_RUN_ID = "mlops.prefect_flow_run_id"
TAG_STUDY_NAME = "optuna.study_name"
TAG_RUN_KIND = "mlops.run_kind"


def experiment_name(dataset: str) -> str:
    """One experiment per dataset, so every training of it compares in one table."""
    return f"training/{dataset}"


def configure_tracking(settings: Settings) -> str:
    """Point this process's MLflow (tracking and registry) at the configured store.

    Telemetry is off unless `MLFLOW_DISABLE_TELEMETRY` is set explicitly: the pipeline
    runs unattended and often without internet access. Returns the tracking URI.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    configure_artifact_access(settings)
    uri = settings.resolved_tracking_uri
    _prepare_local_store(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def configure_artifact_access(settings: Settings) -> None:
    """Let this process's MLflow reach artifacts in the configured S3 endpoint.

    MLflow's S3 artifact repository takes its endpoint from `MLFLOW_S3_ENDPOINT_URL`
    only (credentials follow boto3's chain), so it is set here from
    `settings.s3_endpoint_url`: the one place that writes it. Processes started
    afterwards (Dask workers of a local cluster) inherit it. Without an endpoint setting
    (AWS itself) the environment is left as it is.
    """
    if settings.s3_endpoint_url:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.s3_region:
        os.environ.setdefault("AWS_DEFAULT_REGION", settings.s3_region)


def tracking_client(uri: str) -> MlflowClient:
    """A client bound to one store, cached per process (opening a DB store is slow)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    _prepare_local_store(uri)
    return _cached_client(uri)


@lru_cache(maxsize=8)
def _cached_client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(settings: Settings, dataset: str) -> str:
    """The id of the dataset's experiment, created on first use (safe under races)."""
    configure_artifact_access(settings)
    client = tracking_client(settings.resolved_tracking_uri)
    name = experiment_name(dataset)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    location = artifact_location(settings, dataset)
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:
        again = client.get_experiment_by_name(name)  # another process created it first
        if again is None:
            raise
        return str(again.experiment_id)


def artifact_location(settings: Settings, dataset: str) -> str | None:
    """Where the experiment's artifacts live.

    A tracking server decides itself (it proxies artifacts, clients need no storage
    credentials); a database store without a server writes to S3 when a bucket is
    configured (`s3://<bucket>/<prefix>mlartifacts/training/<dataset>`, the key the
    state directory's artifact root has), else under that artifact root.
    """
    uri = settings.resolved_tracking_uri
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    folder = settings.artifacts_dir / "training" / dataset
    if settings.s3_bucket:
        return str(locate(settings, folder))
    return folder.as_uri()


@contextmanager
def start_parent_run(
    settings: Settings,
    dataset: str,
    *,
    dataset_sha256: str,
    validation_verdict: str,
    feature_service: str,
    flow_run_id: str | None = None,
    study_name: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Open the training run that every trial run hangs under; yields its run id.

    The run ends FINISHED when the block exits normally and FAILED when it raises, so
    the MLflow UI never shows a crashed training as still running.
    """
    configure_artifact_access(settings)
    client = tracking_client(settings.resolved_tracking_uri)
    experiment_id = ensure_experiment(settings, dataset)
    all_tags: dict[str, str] = {
        TAG_RUN_KIND: "training",
        TAG_DATASET: dataset,
        TAG_DATASET_SHA256: dataset_sha256,
        TAG_VALIDATION_VERDICT: validation_verdict,
        TAG_FEATURE_SERVICE: feature_service,
        MLFLOW_RUN_NAME: run_name or f"train-{dataset}-{dataset_sha256[:8]}",
    }
    if flow_run_id:
        all_tags[TAG_FLOW_RUN_ID] = flow_run_id
    if study_name:
        all_tags[TAG_STUDY_NAME] = study_name
    all_tags.update(tags or {})
    run = client.create_run(experiment_id, tags=all_tags)
    run_id = str(run.info.run_id)
    logger.info("MLflow parent run %s in experiment %s", run_id, experiment_id)
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FINISHED))


def _prepare_local_store(uri: str) -> None:
    """SQLite creates its file but not the folder around it."""
    if not uri.startswith("sqlite:"):
        return
    database = make_url(uri).database
    if database and database != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
