"""The compression schemes a model can be served in, named once for code, JSON and settings.

The values are the strings `QuantizationSettings.schemes` and the artifacts' `model.json`
use, so a scheme read from either place is a `Scheme` without translation tables.
"""

from __future__ import annotations

from enum import StrEnum


class Scheme(StrEnum):
    """How the Linear layers of a model's MLP are stored and computed.

    fp32: unchanged, the reference every other variant is measured against.
    int8: torch's dynamic int8 (int8 weights, activations quantized per batch at run time).
    fp16: half-precision weights on disk, upcast to fp32 once at load (CPUs compute fp32).
    ternary: BitNet b1.58 weights in {-1, 0, +1} times a per-layer scale, packed at 2 bits
        per weight, with 8-bit per-row activations; fine-tuned with quantization in the loop.
    """

    FP32 = "fp32"
    INT8 = "int8"
    FP16 = "fp16"
    TERNARY = "ternary"


BATCH_DEPENDENT: frozenset[Scheme] = frozenset({Scheme.INT8})
"""Schemes whose scores for a row depend on the other rows of its batch.

Dynamic int8 quantizes activations with one scale per batch, so one outlier row coarsens
every neighbour's scores: measured up to 0.008 in probability on the demo network across
random batches of 8 to 256 rows, and over 0.02 with an all-null row among them. The
service micro-batches concurrent requests and refuses such a model (a user's answer
must not depend on who else asked), so the pipeline measures int8 but does not register
it unless `quantization.register_batch_dependent` is set (batch scoring only). Ternary
quantizes activations per row and is unaffected.
"""
