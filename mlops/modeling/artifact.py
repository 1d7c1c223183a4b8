"""A self-contained model artifact without pickle: JSON for structure, safetensors for weights.

Pickle runs code on load, so an artifact fetched from a registry could execute anything;
these two files carry only data. The digest over both is recorded at registration, and
`load_model` refuses an artifact whose bytes changed before parsing a single one of them.

Layout of an artifact directory::

    model.json            format, versions, dataset roles, feature schema, TrainConfig,
                          preprocessing statistics and vocabularies, label classes (typed),
                          network shape
    weights.safetensors   the network's state dict (parameters and the standardization
                          buffers `mean` and `std`), float32

Digest (`ModelArtifact.sha256`): SHA-256 over, for each file in the order
``model.json``, ``weights.safetensors``: the file name in UTF-8, one 0x00 byte, the
file's size as 8 bytes big-endian, then the file's bytes. Framing each file by name and
size means no bytes can move from one file to the other without changing the digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from mlops.dataset_spec import FeatureSchema
from mlops.errors import ArtifactIntegrityError
from mlops.modeling.config import TrainConfig
from mlops.modeling.data import LabelEncoding
from mlops.modeling.network import DatasetRoles, NetSpec, TabularModel, TabularNet
from mlops.modeling.preprocessing import Preprocessor

logger = logging.getLogger(__name__)

FORMAT = "mlops-tabular-model"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
ARTIFACT_FILES = (MODEL_JSON, WEIGHTS)
"""The files of an artifact, in digest order."""


class ModelArtifact(BaseModel):
    """Where a saved model lies and the digest that pins its exact bytes."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    sha256: str


def save_model(model: TabularModel, directory: Path) -> ModelArtifact:
    """Write `model.json` and `weights.safetensors` into `directory` (created if needed).

    The bytes depend only on the model, never on the time or place of saving, so the
    same model always gets the same digest. Each file appears atomically (written beside
    it, then renamed).
    """
    files = {MODEL_JSON: model_document(model), WEIGHTS: weights_bytes(model)}
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        partial = directory / f".{name}.{uuid.uuid4().hex}.partial"
        partial.write_bytes(data)
        os.replace(partial, directory / name)
    digest = files_digest(files)
    logger.info("saved model artifact %s (sha256 %s)", directory, digest[:12])
    return ModelArtifact(directory=directory, sha256=digest)


def artifact_sha256(directory: Path) -> str:
    """The digest of an artifact directory as it is on disk (see the module docstring).

    Raises:
        ArtifactIntegrityError: one of the artifact's files is missing.
    """
    return files_digest(read_artifact_files(directory))


def load_model(directory: Path, expected_sha256: str | None) -> TabularModel:
    """Load a model saved by `save_model`, after checking its digest.

    The files are read once; the digest is computed over those bytes and compared
    before any of them is parsed, and the same bytes are then parsed, so nothing can
    swap a file in between. Pass None only for an artifact you just wrote yourself.

    Raises:
        ArtifactIntegrityError: a file is missing, the digest differs from
            `expected_sha256` (both digests are named), or the content is malformed.
    """
    files = read_artifact_files(directory)
    actual = files_digest(files)
    if expected_sha256 is not None and actual != expected_sha256.strip().lower():
        raise ArtifactIntegrityError(
            f"model artifact {directory} has sha256 {actual} but {expected_sha256} was "
            "expected: its files changed since it was recorded; refusing to load it"
        )
    try:
        return _build(json.loads(files[MODEL_JSON]), files[WEIGHTS])
    except ArtifactIntegrityError:
        raise
    except (ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise ArtifactIntegrityError(f"model artifact {directory} is malformed: {exc}") from exc


def model_document(model: TabularModel) -> bytes:
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torch_version": torch.__version__,
        "roles": model.roles.model_dump(mode="json"),
        "schema": {
            "numeric": list(model.schema.numeric),
            "categorical": list(model.schema.categorical),
        },
        "config": model.config.model_dump(mode="json"),
        "preprocessor": model.preprocessor.to_json(),
        "labels": model.labels.to_json(),
        "network": model.net.spec.to_json(),
    }
    text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def weights_bytes(model: TabularModel) -> bytes:
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    data: bytes = save_safetensors(state, metadata={"format": FORMAT})
    return data


def _build(document: dict[str, Any], weights: bytes) -> TabularModel:
    check_document(document, FORMAT, FORMAT_VERSION)
    preprocessor, net = network_of(document)
    net.load_state_dict(load_safetensors(weights), strict=True)
    return TabularModel(
        net=net,
        preprocessor=preprocessor,
        labels=LabelEncoding.from_json(document["labels"]),
        config=TrainConfig.model_validate(document["config"]),
        roles=DatasetRoles.model_validate(document["roles"]),
    )


def check_document(document: dict[str, Any], fmt: str, version: int) -> None:
    """Refuse a document of another format or version; warn on another torch version.

    Raises:
        ArtifactIntegrityError: the format or its version is not the expected one.
    """
    if document.get("format") != fmt:
        raise ArtifactIntegrityError(f"not a {fmt} artifact (format {document.get('format')!r})")
    found = document.get("format_version")
    if found != version:
        raise ArtifactIntegrityError(
            f"{fmt} format version {found!r} is not supported (this code reads {version})"
        )
    if document.get("torch_version") != torch.__version__:
        logger.warning(
            "artifact saved with torch %s, loading with %s",
            document.get("torch_version"),
            torch.__version__,
        )


def network_of(document: dict[str, Any]) -> tuple[Preprocessor, TabularNet]:
    """The preprocessor and an untrained network of the shape the document describes.

    Raises:
        ArtifactIntegrityError: the feature schema and the preprocessor disagree.
    """
    preprocessor = Preprocessor.from_json(document["preprocessor"])
    if FeatureSchema.model_validate(document["schema"]) != preprocessor.schema:
        raise ArtifactIntegrityError("the feature schema and the preprocessor disagree")
    spec = NetSpec.from_json(document["network"])
    net = TabularNet(spec, preprocessor.means, preprocessor.stds, preprocessor.log_scaled)
    return preprocessor, net


def read_artifact_files(directory: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in ARTIFACT_FILES:
        try:
            files[name] = (directory / name).read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(f"model artifact {directory} lacks {name}") from exc
    return files


def files_digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in ARTIFACT_FILES:
        data = files[name]
        digest.update(name.encode("utf-8") + b"\x00" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
