"""Quantized artifacts: each variant loads alone in a fresh process; tampering is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from mlops.dataset_spec import load_spec
from mlops.errors import ArtifactIntegrityError
from mlops.modeling import (
    ModelArtifact,
    TabularModel,
    TrainConfig,
    artifact_sha256,
    as_training_frame,
    fit,
    save_model,
    split_time_ordered,
)
from mlops.modeling.artifact import MODEL_JSON, WEIGHTS
from mlops.settings import QuantizationSettings
from mlops.synthetic import Scenario, generate
from quantization import (
    QuantizedModel,
    Scheme,
    artifact_files,
    linear_bytes,
    load_quantized,
    quantize,
    save_quantized,
)

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "datasets" / "card_fraud.yaml")
FAST = QuantizationSettings(qat_epochs=1)


@pytest.fixture(scope="module")
def trained() -> tuple[TabularModel, pd.DataFrame, pd.DataFrame]:
    raw = generate(Scenario.BASELINE, 3_000, datetime(2024, 3, 4, tzinfo=UTC), seed=9)
    schema = SPEC.resolve_schema(raw)
    splits = split_time_ordered(as_training_frame(raw, SPEC, schema), SPEC)
    config = TrainConfig(hidden_layers=2, width=32, max_epochs=3, learning_rate=3e-3)
    model = fit(config, splits.train, splits.valid, SPEC, schema).model
    return model, splits.train, splits.holdout


@pytest.fixture(scope="module")
def variants(
    trained: tuple[TabularModel, pd.DataFrame, pd.DataFrame],
) -> dict[Scheme, QuantizedModel]:
    model, train, _ = trained
    return {s: quantize(model, s, train, spec=SPEC, settings=FAST) for s in Scheme}


@pytest.fixture(scope="module")
def saved(
    variants: dict[Scheme, QuantizedModel], tmp_path_factory: pytest.TempPathFactory
) -> dict[Scheme, ModelArtifact]:
    root = tmp_path_factory.mktemp("variants")
    return {s: save_quantized(v, root / s.value) for s, v in variants.items()}


def test_every_variant_loads_alone_in_a_fresh_process_and_predicts_the_same(
    trained: tuple[TabularModel, pd.DataFrame, pd.DataFrame],
    variants: dict[Scheme, QuantizedModel],
    saved: dict[Scheme, ModelArtifact],
    tmp_path: Path,
) -> None:
    _, _, holdout = trained
    holdout_path = tmp_path / "holdout.parquet"
    holdout.to_parquet(holdout_path)
    jobs = {s.value: [str(a.directory), a.sha256] for s, a in saved.items()}
    # torch.load is booby-trapped: nothing may unpickle. Only the artifact directories,
    # their digests and raw rows cross the process boundary.
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        import numpy as np, pandas as pd, torch

        def forbidden(*args, **kwargs):
            raise AssertionError("torch.load must not be called")

        torch.load = forbidden
        from quantization import load_quantized

        jobs = json.loads(sys.argv[1])
        frame = pd.read_parquet(sys.argv[2])
        for scheme, (directory, digest) in jobs.items():
            model = load_quantized(Path(directory), digest)
            assert model.scheme.value == scheme, (model.scheme, scheme)
            np.save(Path(sys.argv[3]) / f"{scheme}.npy", model.predict_proba(frame))
        """
    )
    subprocess.run(
        [sys.executable, "-c", script, json.dumps(jobs), str(holdout_path), str(tmp_path)],
        check=True,
        cwd=tmp_path,
        timeout=120,
    )

    for scheme, variant in variants.items():
        in_memory = variant.predict_proba(holdout)
        loaded = np.load(tmp_path / f"{scheme.value}.npy")
        np.testing.assert_allclose(loaded, in_memory, rtol=0, atol=1e-6, err_msg=scheme.value)
        assert np.array_equal(loaded.argmax(axis=1), in_memory.argmax(axis=1))


def test_loading_in_process_restores_scheme_metadata_and_bytes(
    variants: dict[Scheme, QuantizedModel], saved: dict[Scheme, ModelArtifact]
) -> None:
    for scheme, artifact in saved.items():
        loaded = load_quantized(artifact.directory, artifact.sha256)
        assert loaded.scheme is scheme
        assert loaded.metadata == variants[scheme].metadata
        assert loaded.weight_bytes == variants[scheme].weight_bytes
        assert artifact_sha256(artifact.directory) == artifact.sha256
        on_disk = {n: (artifact.directory / n).read_bytes() for n in (MODEL_JSON, WEIGHTS)}
        assert on_disk == artifact_files(loaded), "saving is deterministic"
    assert variants[Scheme.TERNARY].metadata["qat_epochs"] == 1


def test_ternary_linear_layers_are_stored_at_two_bits_per_weight(
    variants: dict[Scheme, QuantizedModel], saved: dict[Scheme, ModelArtifact]
) -> None:
    fp32, ternary = variants[Scheme.FP32], variants[Scheme.TERNARY]
    tensors = load_safetensors((saved[Scheme.TERNARY].directory / WEIGHTS).read_bytes())
    packed = {k: v for k, v in tensors.items() if k.endswith("weight_packed")}

    state = fp32.net.state_dict()
    mlp_weights = sum(v.numel() for k, v in state.items() if k.startswith("mlp.") and "weight" in k)
    assert sum(v.numel() for v in packed.values()) == pytest.approx(
        mlp_weights / 4, abs=len(packed)
    )
    assert {str(v.dtype) for v in packed.values()} == {"torch.uint8"}
    # 2 bits per weight plus one fp32 bias per output: well under 1/8 of fp32.
    assert linear_bytes(ternary) < linear_bytes(fp32) / 8
    assert linear_bytes(variants[Scheme.INT8]) < linear_bytes(fp32) / 3
    assert linear_bytes(variants[Scheme.FP16]) == linear_bytes(fp32) / 2


@pytest.mark.parametrize("scheme", list(Scheme))
def test_a_corrupted_artifact_is_refused(
    variants: dict[Scheme, QuantizedModel], scheme: Scheme, tmp_path: Path
) -> None:
    artifact = save_quantized(variants[scheme], tmp_path / "variant")
    weights = artifact.directory / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))

    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        load_quantized(artifact.directory, artifact.sha256)


def test_a_missing_file_is_refused(variants: dict[Scheme, QuantizedModel], tmp_path: Path) -> None:
    artifact = save_quantized(variants[Scheme.INT8], tmp_path / "variant")
    (artifact.directory / MODEL_JSON).unlink()

    with pytest.raises(ArtifactIntegrityError, match="lacks"):
        load_quantized(artifact.directory, artifact.sha256)


def _rewrite_tensors(directory: Path, edit: dict[str, torch.Tensor | None]) -> None:
    tensors = dict(load_safetensors((directory / WEIGHTS).read_bytes()))
    for name, value in edit.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    (directory / WEIGHTS).write_bytes(save_safetensors(tensors))


def test_malformed_content_is_refused_even_without_a_digest(
    variants: dict[Scheme, QuantizedModel], tmp_path: Path
) -> None:
    ternary = save_quantized(variants[Scheme.TERNARY], tmp_path / "ternary").directory
    packed = load_safetensors((ternary / WEIGHTS).read_bytes())["mlp.0.weight_packed"]
    _rewrite_tensors(ternary, {"mlp.0.weight_packed": torch.full_like(packed, 0xFF)})
    with pytest.raises(ArtifactIntegrityError, match="invalid code"):
        load_quantized(ternary, None)

    int8 = save_quantized(variants[Scheme.INT8], tmp_path / "int8").directory
    _rewrite_tensors(int8, {"mlp.3.weight_scales": None})
    with pytest.raises(ArtifactIntegrityError, match="lack tensor 'mlp.3.weight_scales'"):
        load_quantized(int8, None)

    fp16 = save_quantized(variants[Scheme.FP16], tmp_path / "fp16").directory
    _rewrite_tensors(fp16, {"mlp.0.extra": torch.zeros(2)})
    with pytest.raises(ArtifactIntegrityError, match="unexpected tensors"):
        load_quantized(fp16, None)

    fp32 = save_quantized(variants[Scheme.FP32], tmp_path / "fp32").directory
    document = json.loads((fp32 / MODEL_JSON).read_text())
    document["quantization"]["scheme"] = "int4"
    (fp32 / MODEL_JSON).write_text(json.dumps(document))
    with pytest.raises(ArtifactIntegrityError, match="int4"):
        load_quantized(fp32, None)


def test_a_plain_model_artifact_is_not_taken_for_a_variant(
    trained: tuple[TabularModel, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    artifact = save_model(trained[0], tmp_path / "model")

    with pytest.raises(ArtifactIntegrityError, match="not a mlops-quantized-model"):
        load_quantized(artifact.directory, artifact.sha256)


def test_quantizing_leaves_the_parent_untouched(
    trained: tuple[TabularModel, pd.DataFrame, pd.DataFrame],
    variants: dict[Scheme, QuantizedModel],
) -> None:
    model, _, holdout = trained
    again = quantize(model, Scheme.FP32, holdout, spec=SPEC)

    np.testing.assert_array_equal(again.predict_proba(holdout), model.predict_proba(holdout))
    assert variants[Scheme.FP32].net is not model.net
    assert variants[Scheme.INT8].classes == model.classes
