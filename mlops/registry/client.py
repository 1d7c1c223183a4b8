"""Registering model versions with lineage and moving the `champion`/`challenger` aliases.

Aliases, not the deprecated stages. Registration is idempotent on a lineage key (the
training set's hash and the chosen hyperparameters): re-running a flow on the same
data finds the version it registered before instead of adding a duplicate.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from mlops.contracts import ModelVersionRef
from mlops.errors import ArtifactIntegrityError
from mlops.settings import Settings
from mlops.tracking.mlflow_tracking import configure_artifact_access

if TYPE_CHECKING:  # loading a model needs torch: imported where a model is loaded
    from quantization.served import ServedModel

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
SHA_TAG = "artifact.sha256"
LINEAGE_KEY_TAG = "lineage.key"


def registry_client(settings: Settings) -> MlflowClient:
    """An MLflow client on the tracking store named by settings (registry in the same place)."""
    configure_artifact_access(settings)  # artifacts in S3: the endpoint from settings
    uri = settings.resolved_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version holding `alias`, or None when the alias (or the model) does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def aliases_of(client: MlflowClient, name: str, version: str) -> tuple[str, ...]:
    """The aliases a version holds (`search_model_versions` leaves them empty)."""
    return tuple(sorted(client.get_model_version(name, version).aliases))


def as_ref(client: MlflowClient, version: ModelVersion) -> ModelVersionRef:
    """A typed reference to a registered version, with its current aliases."""
    number = str(version.version)
    return ModelVersionRef(
        name=version.name,
        version=number,
        aliases=aliases_of(client, version.name, number),
        model_uri=f"models:/{version.name}/{number}",
        run_id=version.run_id or "",
        artifact_sha256=(version.tags or {}).get(SHA_TAG, ""),
    )


def register_challenger(
    client: MlflowClient,
    name: str,
    source: str,
    run_id: str,
    artifact_sha256: str,
    lineage_key: str,
    tags: dict[str, str],
) -> ModelVersionRef:
    """Register `source` as a new version holding `challenger` (and `champion` if none).

    If a version with the same lineage key exists it is returned as it is: same data
    and same parameters give the same model, so a re-run adds no version and moves no
    alias (a rollout of a newer challenger is not disturbed).
    """
    _ensure_registered_model(client, name)
    existing = client.search_model_versions(
        f"name='{name}' and tags.`{LINEAGE_KEY_TAG}`='{lineage_key}'"
    )
    if existing:
        version = max(existing, key=lambda v: int(v.version))
        logger.info("model %s v%s already registered for this lineage", name, version.version)
        return as_ref(client, version)
    version = client.create_model_version(
        name,
        source=source,
        run_id=run_id,
        tags={**tags, SHA_TAG: artifact_sha256, LINEAGE_KEY_TAG: lineage_key},
        model_id=source.removeprefix("models:/") if source.startswith("models:/") else None,
    )
    number = str(version.version)
    client.set_registered_model_alias(name, CHALLENGER, number)
    if version_by_alias(client, name, CHAMPION) is None:
        client.set_registered_model_alias(name, CHAMPION, number)
        logger.info("model %s v%s is the first version: champion too", name, number)
    return as_ref(client, client.get_model_version(name, number))


def download_artifact(client: MlflowClient, name: str, version: str, destination: Path) -> Path:
    """Download a registered version and return the folder of our own artifact inside it.

    Raises:
        ArtifactIntegrityError: the version holds no model artifact of ours.
    """
    return download_model(client.get_model_version_download_uri(name, version), destination)


def download_model(uri: str, destination: Path) -> Path:
    """Download a logged model (`models:/...`, `runs:/...`) and return our artifact's folder.

    Raises:
        ArtifactIntegrityError: the model holds no model artifact of ours.
    """
    from mlflow.artifacts import download_artifacts

    from mlops.modeling.artifact import MODEL_JSON

    destination.mkdir(parents=True, exist_ok=True)
    root = Path(download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    found = sorted(root.rglob(MODEL_JSON))
    if not found:
        raise ArtifactIntegrityError(f"{uri} holds no {MODEL_JSON}: not a model of ours")
    return found[0].parent


def load_logged_model(uri: str, sha256: str | None) -> ServedModel:
    """Download a logged model (`models:/...`, `runs:/...`, a version's download URI, a
    local folder), check its artifact against `sha256` and load it (fp32 or quantized).

    The files are read into memory from a temporary folder, removed on return.

    Raises:
        ArtifactIntegrityError: no digest to check (`sha256` missing or empty), no model
            artifact of ours at `uri`, a digest other than `sha256`, or malformed content.
    """
    from quantization.served import load_served_model

    if not sha256:
        raise ArtifactIntegrityError(f"{uri} has no {SHA_TAG} to verify: refusing to load it")
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
        return load_served_model(download_model(uri, Path(tmp)), sha256)


def load_registered_model(
    client: MlflowClient, name: str, version: str, sha256: str | None
) -> ServedModel:
    """Download registered version `version` of `name`, check it against `sha256` (its
    `artifact.sha256` tag) and load it.

    Raises:
        ArtifactIntegrityError: as `load_logged_model`.
    """
    if not sha256:
        raise ArtifactIntegrityError(f"{name} v{version} has no {SHA_TAG} tag to verify")
    return load_logged_model(client.get_model_version_download_uri(name, version), sha256)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(
            name,
            description="Registered by the training-pipeline flow; one model per dataset spec.",
        )
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
