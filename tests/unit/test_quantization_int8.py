"""Dynamic int8 layers: the packing engine changes the kernels, never the stored tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quantization.int8 import (
    DynamicLinear,
    Int8Engine,
    Int8Weights,
    packing_engine,
    quantize_mlp,
    rebuild_linear,
    repack,
)

SUPPORTED = torch.backends.quantized.supported_engines
needs_onednn = pytest.mark.skipif("onednn" not in SUPPORTED, reason="no onednn engine here")


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)
    )


def _inputs(rows: int = 32) -> torch.Tensor:
    return torch.randn(rows, 12, generator=torch.Generator().manual_seed(1)) * 3.0


def _stored(mlp: nn.Module) -> list[Int8Weights]:
    return [Int8Weights.of(m) for m in mlp.modules() if isinstance(m, DynamicLinear)]


def _assert_same_weights(left: list[Int8Weights], right: list[Int8Weights]) -> None:
    assert len(left) == len(right) > 0
    for a, b in zip(left, right, strict=True):
        assert torch.equal(a.values, b.values)
        assert torch.equal(a.scales, b.scales)
        assert torch.equal(a.zero_points, b.zero_points)
        assert a.axis == b.axis
        assert a.bias is not None and b.bias is not None and torch.equal(a.bias, b.bias)


@needs_onednn
def test_engine_choice_keeps_the_stored_tensors_and_the_results() -> None:
    mlp = _mlp()
    default = quantize_mlp(mlp)
    onednn = quantize_mlp(mlp, engine="onednn")

    _assert_same_weights(_stored(default), _stored(onednn))
    with torch.inference_mode():
        torch.testing.assert_close(onednn(_inputs()), default(_inputs()), atol=1e-5, rtol=1e-5)


@needs_onednn
def test_repack_switches_engine_in_place_without_touching_the_weights() -> None:
    quantized = quantize_mlp(_mlp())
    before = _stored(quantized)
    with torch.inference_mode():
        expected = quantized(_inputs())

    assert repack(quantized, "onednn") == 3

    _assert_same_weights(_stored(quantized), before)
    with torch.inference_mode():
        torch.testing.assert_close(quantized(_inputs()), expected, atol=1e-5, rtol=1e-5)


@needs_onednn
def test_rebuild_for_an_engine_reproduces_the_layer() -> None:
    layer = quantize_mlp(_mlp())[2]
    assert isinstance(layer, DynamicLinear)
    rebuilt = rebuild_linear(Int8Weights.of(layer), engine="onednn")

    _assert_same_weights([Int8Weights.of(rebuilt)], [Int8Weights.of(layer)])
    x = torch.relu(torch.randn(8, 64, generator=torch.Generator().manual_seed(2)))
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(x), layer(x), atol=1e-5, rtol=1e-5)


def test_repack_leaves_other_layers_alone_and_counts_none() -> None:
    mlp = _mlp()
    state = {k: v.clone() for k, v in mlp.state_dict().items()}

    assert repack(mlp, torch.backends.quantized.engine) == 0  # type: ignore[arg-type]
    assert all(torch.equal(v, mlp.state_dict()[k]) for k, v in state.items())


def test_packing_engine_is_put_back_even_on_error() -> None:
    previous = torch.backends.quantized.engine
    engines: tuple[Int8Engine, ...] = ("onednn", "qnnpack", "x86", "fbgemm")
    other = next(e for e in engines if e in SUPPORTED and e != previous)

    with pytest.raises(RuntimeError, match="inside"), packing_engine(other):
        assert torch.backends.quantized.engine == other
        raise RuntimeError("inside")
    assert torch.backends.quantized.engine == previous

    with packing_engine(None):
        assert torch.backends.quantized.engine == previous
    quantize_mlp(_mlp(), engine=other)
    assert torch.backends.quantized.engine == previous


@pytest.mark.parametrize("engine", ["bogus", "none", "mkldnn"])
def test_unknown_engines_are_refused(engine: str) -> None:
    quantized = quantize_mlp(_mlp())

    with pytest.raises(ValueError, match="not available"):
        repack(quantized, engine)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not available"):
        quantize_mlp(_mlp(), engine=engine)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not available"):
        rebuild_linear(_stored(quantized)[0], engine=engine)  # type: ignore[arg-type]
