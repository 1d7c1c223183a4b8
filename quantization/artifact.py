"""Pickle-free artifacts of quantized variants, in the layout and digest of model artifacts.

A variant is served from its directory alone, in a process that never saw the training
code or the parent: `model.json` carries everything `mlops.modeling.artifact` writes
(roles, schema, TrainConfig, preprocessing, labels, network shape) plus a
`quantization` section; `weights.safetensors` carries plain tensors only (safetensors
cannot hold code, and nothing here calls `torch.load`). The two file names, the atomic
writes and the digest are those of `mlops.modeling.artifact` (its helpers are imported,
not copied), so `artifact_sha256` and the registry's integrity checks work unchanged.

Tensors in ``weights.safetensors``, besides the parent's non-MLP state (``mean``,
``std``, ``log_mask``, ``embeddings.<k>.weight``, fp32), for MLP weight layer ``<i>``
(its position in ``net.mlp``):

=========  ===============================================================================
scheme     tensors
=========  ===============================================================================
fp32       ``mlp.<i>.weight`` f32 [out, in], ``mlp.<i>.bias`` f32
fp16       ``mlp.<i>.weight`` f16 [out, in], ``mlp.<i>.bias`` f16 (upcast to f32 at load)
int8       ``mlp.<i>.weight_int8`` i8 [out, in], ``mlp.<i>.weight_scales`` f32 [out],
           ``mlp.<i>.weight_zero_points`` i8 [out], ``mlp.<i>.bias`` f32
ternary    ``mlp.<i>.weight_packed`` u8 [ceil(out * in / 4)] (see `pack_ternary`),
           ``mlp.<i>.bias`` f16 (rounded before serving, so memory and disk agree);
           the layer's absmean scale is in ``model.json``
=========  ===============================================================================

``model.json`` is written compact (no indentation): on the demo model its whitespace
alone weighed a third of the ternary weights. Its ``quantization`` section: ``scheme``,
``layers`` (one entry per weight layer: ``index``, ``in_features``, ``out_features``,
and for ternary ``scale``, for int8 ``axis``) and ``metadata`` (how the variant was
made: QAT epochs and losses, ...).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from mlops.errors import ArtifactIntegrityError
from mlops.modeling.artifact import (
    MODEL_JSON,
    WEIGHTS,
    ModelArtifact,
    check_document,
    files_digest,
    model_document,
    network_of,
    read_artifact_files,
    weights_bytes,
)
from mlops.modeling.config import TrainConfig
from mlops.modeling.data import LabelEncoding
from mlops.modeling.network import DatasetRoles, TabularModel
from quantization.int8 import DynamicLinear, Int8Weights, rebuild_linear
from quantization.model import DEFAULT_TERNARY_KERNEL, QuantizedModel, linear_layers
from quantization.schemes import Scheme
from quantization.ternary import TernaryKernel, TernaryLinear

__all__ = [
    "QUANTIZED_FORMAT",
    "artifact_files",
    "linear_bytes",
    "load_quantized",
    "parent_artifact_bytes",
    "save_quantized",
]

logger = logging.getLogger(__name__)

QUANTIZED_FORMAT = "mlops-quantized-model"
QUANTIZED_FORMAT_VERSION = 1


def artifact_files(variant: QuantizedModel) -> dict[str, bytes]:
    """The artifact's files as bytes, exactly as `save_quantized` writes them.

    The bytes depend only on the variant, so the same variant always has the same
    digest, and its size can be measured without touching the disk.
    """
    tensors = {k: v for k, v in variant.net.state_dict().items() if not k.startswith("mlp.")}
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    layers: list[dict[str, Any]] = []
    for index, layer in linear_layers(variant.net):
        entry, layer_tensors = _stored_layer(variant.scheme, index, layer)
        layers.append(entry)
        tensors.update(layer_tensors)
    document = json.loads(model_document(variant.model))
    document["format"] = QUANTIZED_FORMAT
    document["format_version"] = QUANTIZED_FORMAT_VERSION
    document["quantization"] = {
        "scheme": variant.scheme.value,
        "layers": layers,
        "metadata": variant.metadata,
    }
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
    )
    # One metadata key only: safetensors writes its metadata map in no fixed order, and
    # the bytes (hence the digest) must not vary between two saves of one variant.
    weights: bytes = save_safetensors(tensors, metadata={"format": QUANTIZED_FORMAT})
    return {MODEL_JSON: (text + "\n").encode("utf-8"), WEIGHTS: weights}


def save_quantized(variant: QuantizedModel, directory: Path) -> ModelArtifact:
    """Write the variant's `model.json` and `weights.safetensors` into `directory`.

    Each file appears atomically (written beside it, then renamed); the digest is the
    one `mlops.modeling.artifact` defines, to record and pass to `load_quantized`.
    """
    files = artifact_files(variant)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        partial = directory / f".{name}.{uuid.uuid4().hex}.partial"
        partial.write_bytes(data)
        os.replace(partial, directory / name)
    digest = files_digest(files)
    logger.info(
        "saved %s variant %s (%d bytes, sha256 %s)",
        variant.scheme.value,
        directory,
        sum(len(b) for b in files.values()),
        digest[:12],
    )
    return ModelArtifact(directory=directory, sha256=digest)


def load_quantized(
    directory: Path,
    expected_sha256: str | None,
    *,
    ternary_kernel: TernaryKernel = DEFAULT_TERNARY_KERNEL,
) -> QuantizedModel:
    """Load a variant saved by `save_quantized`, after checking its digest.

    The files are read once and their digest compared before any byte is parsed (as
    `mlops.modeling.load_model` does). Pass None only for an artifact you just wrote.

    Raises:
        ArtifactIntegrityError: a missing file, a digest other than `expected_sha256`,
            or malformed content (unknown format or scheme, missing or extra tensors,
            wrong dtypes or shapes, invalid ternary codes).
    """
    files = read_artifact_files(directory)
    actual = files_digest(files)
    if expected_sha256 is not None and actual != expected_sha256.strip().lower():
        raise ArtifactIntegrityError(
            f"quantized artifact {directory} has sha256 {actual} but {expected_sha256} was "
            "expected: its files changed since it was recorded; refusing to load it"
        )
    try:
        return _build(json.loads(files[MODEL_JSON]), files[WEIGHTS], ternary_kernel)
    except ArtifactIntegrityError:
        raise
    except (ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise ArtifactIntegrityError(f"quantized artifact {directory} is malformed: {exc}") from exc


def parent_artifact_bytes(model: TabularModel) -> int:
    """Size of the fp32 model's own artifact (`mlops.modeling.save_model`), for ratios."""
    return len(model_document(model)) + len(weights_bytes(model))


def linear_bytes(variant: QuantizedModel) -> int:
    """Stored bytes of the MLP's Linear layers alone: weights, scales, zero points, biases.

    The figure the 2-bit target is about (the rest of an artifact, embeddings and JSON,
    does not shrink with the scheme).
    """
    total = 0
    for index, layer in linear_layers(variant.net):
        _, tensors = _stored_layer(variant.scheme, index, layer)
        total += sum(t.numel() * t.element_size() for t in tensors.values())
    return total


def _stored_layer(
    scheme: Scheme, index: int, layer: nn.Module
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    prefix = f"mlp.{index}."
    tensors: dict[str, torch.Tensor] = {}
    entry: dict[str, Any]
    if scheme in (Scheme.FP32, Scheme.FP16) and isinstance(layer, nn.Linear):
        dtype = torch.float16 if scheme is Scheme.FP16 else torch.float32
        entry = {
            "index": index,
            "in_features": layer.in_features,
            "out_features": layer.out_features,
        }
        tensors[prefix + "weight"] = layer.weight.detach().to(dtype).contiguous()
        if layer.bias is not None:
            tensors[prefix + "bias"] = layer.bias.detach().to(dtype).contiguous()
    elif scheme is Scheme.INT8 and isinstance(layer, DynamicLinear):
        weights = Int8Weights.of(layer)
        entry = {
            "index": index,
            "in_features": int(layer.in_features),
            "out_features": int(layer.out_features),
            "axis": weights.axis,
        }
        tensors[prefix + "weight_int8"] = weights.values
        tensors[prefix + "weight_scales"] = weights.scales
        tensors[prefix + "weight_zero_points"] = weights.zero_points
        if weights.bias is not None:
            tensors[prefix + "bias"] = weights.bias
    elif scheme is Scheme.TERNARY and isinstance(layer, TernaryLinear):
        packed, _ = layer.packed()
        entry = {
            "index": index,
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "scale": float(layer.scale),
        }
        tensors[prefix + "weight_packed"] = packed
        if layer.bias is not None:
            tensors[prefix + "bias"] = layer.bias.detach().half().contiguous()
    else:
        raise TypeError(f"a {type(layer).__name__} layer in a {scheme.value} variant")
    return entry, tensors


def _build(document: dict[str, Any], weights: bytes, kernel: TernaryKernel) -> QuantizedModel:
    check_document(document, QUANTIZED_FORMAT, QUANTIZED_FORMAT_VERSION)
    section = document["quantization"]
    scheme = Scheme(section["scheme"])
    preprocessor, net = network_of(document)
    tensors = dict(load_safetensors(weights))
    # The parent's state outside the MLP first, into the plain network; then each MLP
    # layer is built from its own tensors, and no tensor may be left over.
    base = {k: v for k, v in tensors.items() if not k.startswith("mlp.")}
    tensors = {k: v for k, v in tensors.items() if k.startswith("mlp.")}
    result = net.load_state_dict(base, strict=False)
    outside = [k for k in result.missing_keys if not k.startswith("mlp.")]
    if result.unexpected_keys or outside:
        raise ArtifactIntegrityError(
            f"weights do not fit the network: unexpected {sorted(result.unexpected_keys)}, "
            f"missing {sorted(outside)}"
        )
    positions = [index for index, _ in linear_layers(net)]
    layers = section["layers"]
    if [int(entry["index"]) for entry in layers] != positions:
        raise ArtifactIntegrityError(
            f"the quantization layers {[e.get('index') for e in layers]} do not match the "
            f"network's weight layers {positions}"
        )
    for entry in layers:
        index = int(entry["index"])
        expected = net.mlp[index]
        if not isinstance(expected, nn.Linear):  # pragma: no cover - positions checked
            raise TypeError(type(expected).__name__)
        shape = (expected.out_features, expected.in_features)
        if (int(entry["out_features"]), int(entry["in_features"])) != shape:
            raise ArtifactIntegrityError(f"layer {index} is not of shape {list(shape)}")
        net.mlp[index] = _runtime_layer(scheme, entry, shape, tensors, kernel)
    if tensors:
        raise ArtifactIntegrityError(f"the weights hold unexpected tensors {sorted(tensors)}")
    net.eval()
    model = TabularModel(
        net=net,
        preprocessor=preprocessor,
        labels=LabelEncoding.from_json(document["labels"]),
        config=TrainConfig.model_validate(document["config"]),
        roles=DatasetRoles.model_validate(document["roles"]),
    )
    metadata = section.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ArtifactIntegrityError("the quantization metadata is not an object")
    return QuantizedModel(model, scheme, metadata)


def _runtime_layer(
    scheme: Scheme,
    entry: dict[str, Any],
    shape: tuple[int, int],
    tensors: dict[str, torch.Tensor],
    kernel: TernaryKernel,
) -> nn.Module:
    """Build one layer, consuming (popping) its tensors so leftovers can be detected."""
    prefix = f"mlp.{int(entry['index'])}."
    bias = _take(tensors, prefix + "bias", _FLOAT_DTYPE[scheme], (shape[0],))
    if scheme in (Scheme.FP32, Scheme.FP16):
        layer = nn.Linear(shape[1], shape[0])
        weight = _take(tensors, prefix + "weight", _FLOAT_DTYPE[scheme], shape)
        with torch.no_grad():
            layer.weight.copy_(weight.float())
            layer.bias.copy_(bias.float())
        return layer
    if scheme is Scheme.INT8:
        axis = entry["axis"]
        channels = shape[0] if axis == 0 else 1
        return rebuild_linear(
            Int8Weights(
                values=_take(tensors, prefix + "weight_int8", torch.int8, shape),
                scales=_take(tensors, prefix + "weight_scales", torch.float32, (channels,)),
                zero_points=_take(tensors, prefix + "weight_zero_points", torch.int8, (channels,)),
                axis=None if axis is None else int(axis),
                bias=bias,
            )
        )
    packed_bytes = -(-shape[0] * shape[1] // 4)
    packed = _take(tensors, prefix + "weight_packed", torch.uint8, (packed_bytes,))
    return TernaryLinear.from_packed(packed, shape, float(entry["scale"]), bias, kernel)


_FLOAT_DTYPE = {
    Scheme.FP32: torch.float32,
    Scheme.FP16: torch.float16,
    Scheme.INT8: torch.float32,
    Scheme.TERNARY: torch.float16,
}
"""The dtype of each scheme's stored biases (and fp32/fp16 weights)."""


def _take(
    tensors: dict[str, torch.Tensor], name: str, dtype: torch.dtype, shape: tuple[int, ...]
) -> torch.Tensor:
    try:
        tensor = tensors.pop(name)
    except KeyError as exc:
        raise ArtifactIntegrityError(f"the weights lack tensor {name!r}") from exc
    if tensor.dtype != dtype or tuple(tensor.shape) != shape:
        raise ArtifactIntegrityError(
            f"tensor {name!r} is {tensor.dtype} {list(tensor.shape)}, expected {dtype} "
            f"{list(shape)}"
        )
    return tensor
