"""Model compression (int8, fp16, ternary 1.58-bit) behind an accuracy-retention gate.

Serving cost is mostly memory and compute per prediction, so every trained model gets
compressed variants; none ships without proof, on the parent's own holdout, of how much
quality it kept. Pure torch: no Prefect, no MLflow (the training flow wires this in).

Typical use::

    q = settings.quantization
    variants = {s: quantize(model, s, train_frame, spec=spec, settings=q) for s in Scheme}
    reports = [evaluate_variant(model, v, holdout, spec) for v in variants.values()]
    chosen = select_variant(reports, q.policy, threshold=q.min_retention)
    artifact = save_quantized(variants[chosen.scheme], directory)
    served = load_quantized(artifact.directory, artifact.sha256)   # in any process

Modules: `schemes` (the `Scheme` names), `model` (`quantize`, `QuantizedModel`),
`ternary` (2-bit packing, `TernaryLinear`, quantization-aware fine-tuning), `int8`
(torch's dynamic int8 and its pickle-free round trip), `artifact` (save / load with the
model artifact's digest), `retention` (`evaluate_variant`, the gate, the selection).
"""

from __future__ import annotations

from mlops.settings import QuantizationSettings, SelectionPolicy
from quantization.artifact import (
    QUANTIZED_FORMAT,
    artifact_files,
    linear_bytes,
    load_quantized,
    parent_artifact_bytes,
    save_quantized,
)
from quantization.model import QuantizedModel, linear_layers, quantize, resident_bytes
from quantization.retention import (
    VariantReport,
    evaluate_variant,
    passes,
    require_retention,
    select_variant,
)
from quantization.schemes import Scheme
from quantization.ternary import (
    TernaryKernel,
    TernaryLinear,
    pack_ternary,
    quantize_activations,
    ternarize,
    unpack_ternary,
)

__all__ = [
    "QUANTIZED_FORMAT",
    "QuantizationSettings",
    "QuantizedModel",
    "Scheme",
    "SelectionPolicy",
    "TernaryKernel",
    "TernaryLinear",
    "VariantReport",
    "artifact_files",
    "evaluate_variant",
    "linear_bytes",
    "linear_layers",
    "load_quantized",
    "pack_ternary",
    "parent_artifact_bytes",
    "passes",
    "quantize",
    "quantize_activations",
    "require_retention",
    "resident_bytes",
    "save_quantized",
    "select_variant",
    "ternarize",
    "unpack_ternary",
]
