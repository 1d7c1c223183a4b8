"""Dynamic int8 Linear layers with torch's own tooling, and their pickle-free round trip.

`torch.ao.quantization.quantize_dynamic` stores each Linear's weight as int8 (per output
channel scale and zero point) and quantizes activations per batch at run time. torch
2.13 marks `torch.ao.quantization` deprecated in favour of torchao (not installed here,
and not checked against torch 2.13): the deprecation warning is silenced only around the
one call that raises it, so the rest of the process still hears about other warnings.

torch keeps the weights in an opaque "packed params" object that safetensors cannot
store, so the artifact holds the int8 weights, their scales and zero points as plain
tensors, and `rebuild_linear` repacks them into the same quantized layer at load: the
packed form is a deterministic function of those tensors, so a loaded layer computes
exactly what the in-memory one did.

Which kernels run is fixed when a weight is packed, by torch's process-wide
`torch.backends.quantized.engine` at that moment (the engine at call time does not
matter: measured). Measured on this machine (one thread, torch 2.13, AVX-512 VNNI;
`benchmarks/quantization.py`), time against fp32 on a model with four 1024-wide hidden
layers: "x86" (torch's default here; fbgemm kernels for Linear) 0.5-0.7x at batch 1 and
0.42x at batch 256; "onednn" 0.6-1.1x at batch 1 but 0.24-0.27x at batch 256;
"qnnpack" 1.5x and 3.6x (bare MLP). On the demo's 128-wide layers every engine is
slower than fp32 (x86 1.2-1.3x at batch 256, 1.4x at batch 1; onednn 1.6x and 2x):
quantizing the activations at every call dominates. So packing keeps the current
engine unless told otherwise, and `repack` switches a loaded network to another one
(batch scoring of wide models: "onednn"). Every engine reads the same stored tensors
and gives the same results up to float rounding (onednn against x86: 6e-8 on logits),
so the artifact does not depend on the engine.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

__all__ = [
    "DynamicLinear",
    "Int8Engine",
    "Int8Weights",
    "packing_engine",
    "quantize_mlp",
    "rebuild_linear",
    "repack",
]

Int8Engine = Literal["x86", "fbgemm", "onednn", "qnnpack"]
"""torch's quantized CPU engines that pack a dynamic int8 Linear (see the module docstring)."""

_DEPRECATIONS = (
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized"),
)
"""What torch 2.13 says on every use of its (still working) eager quantization stack."""


@dataclass(frozen=True)
class Int8Weights:
    """One quantized layer as plain tensors: what the artifact stores.

    ``weight ~ (values - zero_points) * scales`` per output channel (axis 0), or with
    one scale and zero point for the whole tensor when `axis` is None. Scales are
    float32, zero points int8 (see `of`).
    """

    values: torch.Tensor
    scales: torch.Tensor
    zero_points: torch.Tensor
    axis: int | None
    bias: torch.Tensor | None

    @classmethod
    def of(cls, layer: DynamicLinear) -> Int8Weights:
        """Unpack a dynamic quantized Linear's weight and bias."""
        weight = layer.weight()  # type: ignore[no-untyped-call]
        bias = layer.bias()  # type: ignore[no-untyped-call]
        detached_bias = None if bias is None else bias.detach().float().contiguous()
        if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            scales = weight.q_per_channel_scales()
            zero_points = weight.q_per_channel_zero_points()
            axis: int | None = int(weight.q_per_channel_axis())
        else:
            scales = torch.tensor([weight.q_scale()], dtype=torch.float64)
            zero_points = torch.tensor([weight.q_zero_point()], dtype=torch.int64)
            axis = None
        # torch keeps scales as float64 and zero points as int64, but its observers
        # compute scales in float32 and qint8 zero points lie in [-128, 127]: the narrow
        # types hold them exactly (checked), at a quarter and an eighth of the bytes.
        narrow_scales = scales.to(torch.float32)
        narrow_zero_points = zero_points.to(torch.int8)
        if not (
            torch.equal(narrow_scales.double(), scales)
            and torch.equal(narrow_zero_points.long(), zero_points)
        ):
            raise ValueError("int8 scales or zero points do not fit float32 / int8 exactly")
        return cls(
            values=weight.int_repr().contiguous(),
            scales=narrow_scales.contiguous(),
            zero_points=narrow_zero_points.contiguous(),
            axis=axis,
            bias=detached_bias,
        )

    @property
    def nbytes(self) -> int:
        """Bytes of the int8 weights, scales, zero points and bias."""
        tensors = [self.values, self.scales, self.zero_points]
        if self.bias is not None:
            tensors.append(self.bias)
        return sum(t.numel() * t.element_size() for t in tensors)


def quantize_mlp(mlp: nn.Sequential, *, engine: Int8Engine | None = None) -> nn.Sequential:
    """A copy of `mlp` with every Linear replaced by a dynamic int8 Linear (per channel).

    Args:
        engine: the engine whose kernels the layers are packed for; None: torch's current
            one. The int8 weights, scales and zero points do not depend on it.

    Raises:
        ValueError: an engine this torch build does not support.
    """
    with packing_engine(engine), _quiet_deprecations():
        quantized = quantize_dynamic(  # type: ignore[no-untyped-call]
            mlp, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=False
        )
    if not isinstance(quantized, nn.Sequential):  # pragma: no cover - torch's contract
        raise TypeError(f"quantize_dynamic returned {type(quantized).__name__}")
    return quantized


def rebuild_linear(weights: Int8Weights, *, engine: Int8Engine | None = None) -> DynamicLinear:
    """The dynamic quantized Linear that `Int8Weights.of` unpacked.

    Args:
        engine: the engine to pack for (see `quantize_mlp`); None: torch's current one.

    Raises:
        ValueError: dtypes or shapes that a quantized Linear cannot hold, or an engine
            this torch build does not support.
    """
    values = weights.values
    if values.dtype != torch.int8 or values.dim() != 2:
        raise ValueError(f"int8 weights must be a 2-D int8 tensor, got {values.dtype}")
    out_features, in_features = (int(d) for d in values.shape)
    if weights.scales.dtype != torch.float32 or weights.zero_points.dtype != torch.int8:
        raise ValueError("int8 scales must be float32 and zero points int8")
    scales = weights.scales.to(torch.float64)
    zero_points = weights.zero_points.to(torch.int64)
    if weights.axis is None:
        if scales.numel() != 1 or zero_points.numel() != 1:
            raise ValueError("a per-tensor int8 weight needs one scale and one zero point")
        with _quiet_deprecations():
            qweight = torch._make_per_tensor_quantized_tensor(
                values, float(scales[0]), int(zero_points[0])
            )
    else:
        channels = int(values.shape[weights.axis])
        if scales.shape != (channels,) or zero_points.shape != (channels,):
            raise ValueError(f"per-channel int8 weights need {channels} scales and zero points")
        with _quiet_deprecations():
            qweight = torch._make_per_channel_quantized_tensor(
                values, scales, zero_points, weights.axis
            )
    if weights.bias is not None and tuple(weights.bias.shape) != (out_features,):
        raise ValueError(f"bias of shape {list(weights.bias.shape)} for {out_features} outputs")
    with packing_engine(engine), _quiet_deprecations():
        layer = DynamicLinear(  # type: ignore[no-untyped-call]
            in_features, out_features, bias_=weights.bias is not None
        )
        layer.set_weight_bias(qweight, weights.bias)
    return layer


def repack(module: nn.Module, engine: Int8Engine) -> int:
    """Re-pack, in place, every dynamic int8 Linear inside `module` for `engine`'s kernels.

    For a loaded variant (``repack(variant.net, "onednn")``): the int8 weights, scales,
    zero points and bias stay exactly as they are (so do the artifact and the resident
    bytes); only the kernels that compute with them change.

    Returns:
        How many layers were re-packed.

    Raises:
        ValueError: an engine this torch build does not support.
    """
    _check_engine(engine)
    count = 0
    for layer in module.modules():
        if isinstance(layer, DynamicLinear):
            weight = layer.weight()  # type: ignore[no-untyped-call]
            bias = layer.bias()  # type: ignore[no-untyped-call]
            with packing_engine(engine), _quiet_deprecations():
                layer.set_weight_bias(weight, bias)
            count += 1
    return count


@contextmanager
def packing_engine(engine: Int8Engine | None) -> Iterator[None]:
    """Run the block with torch's quantized engine set to `engine` (None: unchanged).

    The engine is process-wide: it is put back afterwards, even on error.

    Raises:
        ValueError: an engine this torch build does not support.
    """
    if engine is None:
        yield
        return
    _check_engine(engine)
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def _check_engine(engine: str) -> None:
    supported = torch.backends.quantized.supported_engines
    if engine not in get_args(Int8Engine) or engine not in supported:
        raise ValueError(
            f"int8 engine {engine!r} is not available here; choose from "
            f"{sorted(e for e in supported if e in get_args(Int8Engine))}"
        )


@contextmanager
def _quiet_deprecations() -> Iterator[None]:
    """Silence torch's quantization deprecation notices, here only (see module docstring)."""
    with warnings.catch_warnings():
        for category, message in _DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield
