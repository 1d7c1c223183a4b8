"""Ternary weights: exact 2-bit packing, absmean/absmax quantizers, the runtime layer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantization import (
    TernaryLinear,
    pack_ternary,
    quantize_activations,
    ternarize,
    unpack_ternary,
)
from quantization.ternary import TernaryTrainingLinear


def _random_ternary(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 2, shape, generator=generator, dtype=torch.int8)


@pytest.mark.parametrize(
    "shape", [(1,), (3,), (4,), (5, 7), (2, 3, 5), (127, 129), (0,), (33, 1), (1, 1023)]
)
def test_pack_unpack_round_trips_exactly(shape: tuple[int, ...]) -> None:
    values = _random_ternary(shape, seed=sum(shape) + len(shape))

    packed, packed_shape = pack_ternary(values)
    restored = unpack_ternary(packed, packed_shape)

    assert packed.dtype == torch.uint8 and packed.dim() == 1
    assert packed.numel() == math.ceil(values.numel() / 4)
    assert packed_shape == shape
    assert restored.dtype == torch.int8
    assert torch.equal(restored, values)


def test_pack_accepts_float_values_and_unpacks_to_any_dtype() -> None:
    values = _random_ternary((9, 11), seed=3).float()

    packed, shape = pack_ternary(values)

    assert torch.equal(unpack_ternary(packed, shape, dtype=torch.float32), values)


def test_codes_are_zero_plus_one_minus_one_four_per_byte_low_bits_first() -> None:
    packed, _ = pack_ternary(torch.tensor([1, -1, 0, 1, -1]))

    # byte 0: 01 | 10 << 2 | 00 << 4 | 01 << 6; byte 1: 10, then zero padding
    assert packed.tolist() == [0b01_00_10_01, 0b10]


def test_pack_refuses_values_other_than_minus_one_zero_one() -> None:
    with pytest.raises(ValueError, match="-1, 0 and \\+1"):
        pack_ternary(torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="only -1, 0 and \\+1"):
        pack_ternary(torch.tensor([2, 0, 0, 0]))


def test_unpack_refuses_invalid_codes_padding_and_lengths() -> None:
    with pytest.raises(ValueError, match="invalid code"):
        unpack_ternary(torch.tensor([0b11], dtype=torch.uint8), (1,))
    with pytest.raises(ValueError, match="invalid code"):
        unpack_ternary(torch.tensor([0b01_00_00_00], dtype=torch.uint8), (3,))
    with pytest.raises(ValueError, match="cannot hold"):
        unpack_ternary(torch.zeros(2, dtype=torch.uint8), (3,))
    with pytest.raises(ValueError, match="uint8"):
        unpack_ternary(torch.zeros(1, dtype=torch.int8), (3,))


def test_ternarize_uses_the_absmean_scale() -> None:
    weight = torch.randn(16, 24, generator=torch.Generator().manual_seed(0))

    values, scale = ternarize(weight)

    assert scale == pytest.approx(float(weight.abs().mean()), rel=1e-6)
    assert set(values.flatten().tolist()) <= {-1, 0, 1}
    expected = (weight / scale).round().clamp(-1, 1).to(torch.int8)
    assert torch.equal(values, expected)


def test_activations_are_8_bit_absmax_per_row() -> None:
    x = torch.randn(6, 10, generator=torch.Generator().manual_seed(1)) * torch.arange(1, 7)[:, None]
    x[5] = 0.0

    codes, step = quantize_activations(x)

    assert torch.equal(codes, codes.round())
    assert float(codes.abs().max()) <= 127
    assert codes[:5].abs().amax(dim=1).tolist() == [127.0] * 5
    assert torch.all((codes * step - x).abs() <= step / 2 + 1e-6)
    assert torch.equal(codes[5], torch.zeros(10))


@pytest.mark.parametrize("kernel", ["float", "int8"])
def test_runtime_layer_matches_the_dequantized_fp32_reference(kernel: str) -> None:
    generator = torch.Generator().manual_seed(2)
    linear = nn.Linear(37, 19)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(19, 37, generator=generator) * 0.2)
    x = torch.randn(64, 37, generator=generator) * 3.0
    layer = TernaryLinear.from_linear(linear, kernel=kernel)  # type: ignore[arg-type]

    codes, step = quantize_activations(x)
    reference = F.linear(codes * step, layer.dequantized_weight(), linear.bias)

    torch.testing.assert_close(layer(x), reference, rtol=1e-5, atol=1e-5)
    assert layer(x[:0]).shape == (0, 19)


def test_both_kernels_and_the_packed_form_compute_identically() -> None:
    generator = torch.Generator().manual_seed(4)
    linear = nn.Linear(50, 31)
    x = torch.randn(40, 50, generator=generator)
    as_float = TernaryLinear.from_linear(linear, kernel="float")
    as_int8 = TernaryLinear.from_linear(linear, kernel="int8")
    packed, shape = as_float.packed()
    restored = TernaryLinear.from_packed(packed, shape, float(as_float.scale), linear.bias)

    torch.testing.assert_close(as_int8(x), as_float(x), rtol=1e-6, atol=1e-6)
    assert torch.equal(restored(x), as_float(x))
    assert torch.equal(as_int8.ternary_values(), as_float.ternary_values())


def test_resident_weights_are_one_byte_with_int8_kernel() -> None:
    layer = TernaryLinear.from_linear(nn.Linear(64, 32), kernel="int8")

    assert layer.weight_t.dtype == torch.int8
    assert layer.weight_t.numel() * layer.weight_t.element_size() == 64 * 32
    assert TernaryLinear.from_linear(nn.Linear(64, 32)).weight_t.dtype == torch.float32


def test_training_layer_forward_equals_the_runtime_layer_and_passes_gradients() -> None:
    generator = torch.Generator().manual_seed(5)
    linear = nn.Linear(20, 8)
    x = torch.randn(16, 20, generator=generator)
    training = TernaryTrainingLinear.from_linear(linear)

    out = training(x)
    out.sum().backward()

    torch.testing.assert_close(
        out.detach(), TernaryLinear.from_linear(linear)(x), rtol=1e-5, atol=1e-5
    )
    assert training.weight.grad is not None and bool(training.weight.grad.abs().sum() > 0)
    assert torch.equal(training.to_plain().weight, training.weight.detach())
