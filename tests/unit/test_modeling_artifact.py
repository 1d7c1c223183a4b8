"""The pickle-free artifact: round trips, fresh-process loading, tamper detection."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.dataset_spec import load_spec
from mlops.errors import ArtifactIntegrityError
from mlops.modeling import (
    ModelArtifact,
    TabularModel,
    TrainConfig,
    artifact_sha256,
    as_training_frame,
    fit,
    load_model,
    save_model,
    split_time_ordered,
)
from mlops.modeling.artifact import MODEL_JSON, WEIGHTS
from mlops.synthetic import Scenario, generate

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "datasets" / "card_fraud.yaml")


@pytest.fixture(scope="module")
def trained() -> tuple[TabularModel, pd.DataFrame]:
    raw = generate(Scenario.BASELINE, 3_000, datetime(2024, 3, 4, tzinfo=UTC), seed=9)
    schema = SPEC.resolve_schema(raw)
    splits = split_time_ordered(as_training_frame(raw, SPEC, schema), SPEC)
    config = TrainConfig(hidden_layers=2, width=32, max_epochs=3, learning_rate=3e-3)
    return fit(config, splits.train, splits.valid, SPEC, schema).model, splits.holdout


@pytest.fixture
def artifact(trained: tuple[TabularModel, pd.DataFrame], tmp_path: Path) -> ModelArtifact:
    return save_model(trained[0], tmp_path / "model")


def test_round_trip_gives_identical_probabilities(
    trained: tuple[TabularModel, pd.DataFrame], artifact: ModelArtifact
) -> None:
    model, holdout = trained
    loaded = load_model(artifact.directory, artifact.sha256)

    np.testing.assert_array_equal(loaded.predict_proba(holdout), model.predict_proba(holdout))
    assert loaded.classes == model.classes and isinstance(loaded.classes[0], int)
    assert loaded.config == model.config
    assert loaded.roles == model.roles
    assert loaded.schema == model.schema
    assert loaded.preprocessor == model.preprocessor


def test_artifact_holds_only_json_and_safetensors(artifact: ModelArtifact) -> None:
    assert sorted(p.name for p in artifact.directory.iterdir()) == [MODEL_JSON, WEIGHTS]
    document = json.loads((artifact.directory / MODEL_JSON).read_text())
    assert document["format"] == "mlops-tabular-model" and document["format_version"] == 1
    assert document["labels"] == {"type": "int", "classes": [0, 1]}
    assert document["roles"]["label"] == "is_fraud" and document["roles"]["task"] == "binary"
    assert set(document) >= {"config", "preprocessor", "schema", "network", "torch_version"}
    weights = (artifact.directory / WEIGHTS).read_bytes()
    header_size = int.from_bytes(weights[:8], "little")  # safetensors: size, JSON header, data
    header = json.loads(weights[8 : 8 + header_size])
    assert {"mlp.0.weight", "mean", "std", "log_mask", "embeddings.0.weight"} <= set(header)


def test_digest_is_defined_over_both_files_and_stable(
    trained: tuple[TabularModel, pd.DataFrame], artifact: ModelArtifact, tmp_path: Path
) -> None:
    expected = hashlib.sha256()
    for name in (MODEL_JSON, WEIGHTS):
        data = (artifact.directory / name).read_bytes()
        expected.update(name.encode() + b"\x00" + len(data).to_bytes(8, "big") + data)

    assert artifact.sha256 == expected.hexdigest() == artifact_sha256(artifact.directory)
    assert save_model(trained[0], tmp_path / "again").sha256 == artifact.sha256


def test_loads_in_a_fresh_process(
    trained: tuple[TabularModel, pd.DataFrame], artifact: ModelArtifact, tmp_path: Path
) -> None:
    model, holdout = trained
    holdout.to_parquet(tmp_path / "holdout.parquet")
    script = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from pathlib import Path
        from mlops.modeling import load_model
        model = load_model(Path({str(artifact.directory)!r}), {artifact.sha256!r})
        frame = pd.read_parquet({str(tmp_path / "holdout.parquet")!r})
        np.save({str(tmp_path / "proba.npy")!r}, model.predict_proba(frame))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=REPO, capture_output=True)

    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), model.predict_proba(holdout))


@pytest.mark.parametrize("name", [WEIGHTS, MODEL_JSON])
def test_tampered_file_is_refused_naming_both_digests(artifact: ModelArtifact, name: str) -> None:
    path = artifact.directory / name
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one flipped bit deep in the file (a weight, or JSON whitespace)
    path.write_bytes(bytes(data))
    tampered = artifact_sha256(artifact.directory)

    with pytest.raises(ArtifactIntegrityError) as caught:
        load_model(artifact.directory, artifact.sha256)
    assert artifact.sha256 in str(caught.value) and tampered in str(caught.value)


def test_weights_moved_into_json_change_the_digest(artifact: ModelArtifact) -> None:
    json_path, weights_path = artifact.directory / MODEL_JSON, artifact.directory / WEIGHTS
    weights = weights_path.read_bytes()
    json_path.write_bytes(json_path.read_bytes() + weights[:1])
    weights_path.write_bytes(weights[1:])

    with pytest.raises(ArtifactIntegrityError, match="expected"):
        load_model(artifact.directory, artifact.sha256)


def test_missing_file_is_an_integrity_error(artifact: ModelArtifact) -> None:
    (artifact.directory / WEIGHTS).unlink()
    with pytest.raises(ArtifactIntegrityError, match="lacks weights.safetensors"):
        load_model(artifact.directory, artifact.sha256)


def test_malformed_content_is_an_integrity_error_even_without_a_digest(
    artifact: ModelArtifact,
) -> None:
    json_path = artifact.directory / MODEL_JSON
    document = json.loads(json_path.read_text())
    document["network"]["width"] = 7
    json_path.write_text(json.dumps(document))
    with pytest.raises(ArtifactIntegrityError, match="malformed"):
        load_model(artifact.directory, None)

    document["format_version"] = 99
    json_path.write_text(json.dumps(document))
    with pytest.raises(ArtifactIntegrityError, match="format version 99"):
        load_model(artifact.directory, None)
