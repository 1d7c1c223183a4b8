"""BitNet b1.58 ternary layers: 2-bit packing, the runtime layer, quantization-aware tuning.

Why ternary: a weight in {-1, 0, +1} needs log2(3) = 1.58 bits, so the Linear layers of
a model shrink ~16x against fp32 (we store 2 bits: four weights per byte). Each layer
keeps one fp32 scale, the mean absolute weight ("absmean"), and the layer computes

    y = (q(x) @ t(W).T) * absmax_row(x) / 127 * scale + bias

where t(W) = clamp(round(W / scale), -1, 1) and q(x) rounds each row of the input to
8-bit integers against the row's largest magnitude ("absmax"). Rounding the fp32
weights of a trained model this way (post-training) loses too much on a small MLP, so
`fine_tune` trains the model with the quantizers in the forward pass and the
straight-through estimator (identity gradient through the rounding), starting from
the fp32 weights: the latent fp32 weights learn to sit where their ternary image works.

Packing: codes 0 -> 0, 1 -> +1, 2 -> -1, four codes per byte (the first weight in the
lowest two bits), row-major, the last byte zero-padded. Code 3 is never written and a
reader refuses it, so a flipped bit in an artifact cannot pass as a weight.

Runtime: `TernaryLinear` unpacks once at construction (load time), either into an fp32
matrix of -1/0/+1 ("float" kernel, the default: 4 resident bytes per weight) or into an
int8 matrix upcast to fp32 at each call ("int8" kernel: 1 resident byte per weight, a
conversion per call). Both multiply the 8-bit activation codes by the ternary weights
exactly (sums of at most 128 * in_features stay far below 2**24), so they give
identical results. Measured on this machine (one thread), torch's integer matmul
`torch._int_mm` was 10-60x slower than fp32 on CPU at batch 256 (no optimized kernel),
so neither kernel uses it; unpacking the 2-bit codes at every call would cost more
than the upcast. The activation quantizer is what makes a ternary layer slower than an
fp32 one on CPU (about 1.1-1.5x for 128-wide layers): a CPU has no ternary arithmetic.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mlops.modeling.data import TabularArrays
from mlops.modeling.network import TabularNet
from mlops.modeling.train import DEFAULT_THREADS
from quantization.threads import torch_threads

__all__ = [
    "TernaryKernel",
    "TernaryLinear",
    "TernaryTrainingLinear",
    "fine_tune",
    "pack_ternary",
    "quantize_activations",
    "ternarize",
    "unpack_ternary",
]

logger = logging.getLogger(__name__)

TernaryKernel = Literal["float", "int8"]
"""What `TernaryLinear` keeps in memory: an fp32 -1/0/+1 matrix, or an int8 one upcast
per call (a quarter of the bytes, slower for wide layers)."""

ACTIVATION_LEVELS = 127.0
"""8-bit absmax: a row's largest magnitude maps to 127 (BitNet's `activation_quant`)."""
_EPS = 1e-5
"""Floor of a scale, so an all-zero row or layer does not divide by zero."""
_CODES_PER_BYTE = 4
_SHIFTS = (0, 2, 4, 6)
_DECODE = (0, 1, -1)
"""Value of each 2-bit code; code 3 is invalid."""


def pack_ternary(tensor: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Pack a tensor of -1/0/+1 values into bytes, four values per byte.

    Returns:
        The packed uint8 tensor (``ceil(numel / 4)`` bytes) and the shape to unpack to.

    Raises:
        ValueError: a value is not -1, 0 or +1.
    """
    shape = tuple(int(d) for d in tensor.shape)
    flat = tensor.detach().reshape(-1).cpu()
    if not _is_ternary(flat):
        raise ValueError("pack_ternary takes only -1, 0 and +1 values")
    values = flat.to(torch.int8)
    codes = torch.where(values < 0, 2, values).to(torch.uint8)
    padding = -codes.numel() % _CODES_PER_BYTE
    if padding:
        codes = torch.cat([codes, torch.zeros(padding, dtype=torch.uint8)])
    groups = codes.view(-1, _CODES_PER_BYTE)
    packed = groups[:, 0].clone()
    for position, shift in enumerate(_SHIFTS[1:], start=1):
        packed |= groups[:, position] << shift
    return packed, shape


def _is_ternary(values: torch.Tensor) -> bool:
    return bool(((values == -1) | (values == 0) | (values == 1)).all())


def unpack_ternary(
    packed: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype = torch.int8
) -> torch.Tensor:
    """Invert `pack_ternary`: a tensor of `shape` holding -1/0/+1 as `dtype`.

    Raises:
        ValueError: `packed` is not uint8, its length does not fit `shape`, or it holds
            the invalid code 3 (or nonzero padding).
    """
    if packed.dtype != torch.uint8 or packed.dim() != 1:
        raise ValueError(f"packed ternary weights must be 1-D uint8, got {packed.dtype}")
    numel = math.prod(shape)
    if packed.numel() != -(-numel // _CODES_PER_BYTE):
        raise ValueError(f"{packed.numel()} packed bytes cannot hold shape {list(shape)}")
    shifts = torch.tensor(_SHIFTS, dtype=torch.uint8)
    codes = ((packed.unsqueeze(1) >> shifts) & 3).reshape(-1)
    if bool((codes == 3).any()) or bool(codes[numel:].any()):
        raise ValueError("packed ternary weights hold an invalid code")
    table = torch.tensor(_DECODE, dtype=dtype)
    return table[codes[:numel].long()].reshape(shape)


def ternarize(weight: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Absmean ternarization: (-1/0/+1 as int8, scale) with weight ~ values * scale."""
    w = weight.detach().float()
    scale = w.abs().mean().clamp(min=_EPS)
    values = (w / scale).round().clamp(-1, 1).to(torch.int8)
    return values, float(scale)


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit absmax per row: (integer-valued codes in x's dtype, per-row step [rows, 1]).

    ``codes * step`` approximates `x`; codes lie in [-127, 127].
    """
    # In-place steps on fresh tensors (no autograd through here: fine-tuning passes
    # a detached input) save allocations on the serving path.
    step = x.abs().amax(dim=-1, keepdim=True).clamp_(min=_EPS).div_(ACTIVATION_LEVELS)
    codes = (x / step).round_().clamp_(-ACTIVATION_LEVELS - 1, ACTIVATION_LEVELS)
    return codes, step


class TernaryLinear(nn.Module):
    """A Linear layer computed from ternary weights, unpacked once at construction.

    Inference only (no gradients flow to the weights): `fine_tune` trains, this serves.
    Takes inputs of shape [rows, in_features].
    """

    weight_t: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        values: torch.Tensor,
        scale: float,
        bias: torch.Tensor | None,
        kernel: TernaryKernel = "float",
    ) -> None:
        super().__init__()
        if values.dim() != 2:
            raise ValueError(f"ternary weights must be 2-D, got shape {list(values.shape)}")
        if not _is_ternary(values):
            raise ValueError("ternary weights must be -1, 0 or +1")
        if kernel not in ("int8", "float"):
            raise ValueError(f"unknown ternary kernel {kernel!r}")
        if not (math.isfinite(scale) and scale > 0.0):
            raise ValueError(f"a ternary scale must be positive and finite, got {scale}")
        self.out_features, self.in_features = (int(d) for d in values.shape)
        if bias is not None and tuple(bias.shape) != (self.out_features,):
            raise ValueError(f"bias of shape {list(bias.shape)} for {self.out_features} outputs")
        self.kernel: TernaryKernel = kernel
        # Transposed, [in, out] contiguous: [rows, in] @ [in, out] runs without a copy.
        ternary = values.detach().to(torch.int8).t().contiguous()
        self.register_buffer("weight_t", ternary if kernel == "int8" else ternary.float())
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer(
            "bias", None if bias is None else bias.detach().float().clone().contiguous()
        )

    @classmethod
    def from_packed(
        cls,
        packed: torch.Tensor,
        shape: tuple[int, ...],
        scale: float,
        bias: torch.Tensor | None,
        kernel: TernaryKernel = "float",
    ) -> TernaryLinear:
        """The runtime layer of a stored one: unpack once, here (load time)."""
        return cls(unpack_ternary(packed, shape), scale, bias, kernel)

    @classmethod
    def from_linear(cls, linear: nn.Linear, kernel: TernaryKernel = "float") -> TernaryLinear:
        """Ternarize an fp32 layer (absmean), as post-training or after `fine_tune`."""
        values, scale = ternarize(linear.weight)
        bias = None if linear.bias is None else linear.bias.detach()
        return cls(values, scale, bias, kernel)

    def ternary_values(self) -> torch.Tensor:
        """The weights as -1/0/+1 int8 [out, in]."""
        return self.weight_t.t().to(torch.int8).contiguous()

    def packed(self) -> tuple[torch.Tensor, tuple[int, ...]]:
        """The 2-bit packed form stored in artifacts (see `pack_ternary`)."""
        return pack_ternary(self.ternary_values())

    def dequantized_weight(self) -> torch.Tensor:
        """The fp32 weight this layer stands for: values * scale (the reference)."""
        return self.ternary_values().float() * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes, step = quantize_activations(x.float())
        weight = self.weight_t if self.kernel == "float" else self.weight_t.float()
        products = codes @ weight
        row_scale = step.mul_(self.scale)
        if self.bias is None:
            return products.mul_(row_scale).to(x.dtype)
        return torch.addcmul(self.bias, products, row_scale).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"scale={float(self.scale):.6g}, kernel={self.kernel}"
        )


class TernaryTrainingLinear(nn.Linear):
    """A Linear whose forward sees ternary weights and 8-bit activations (fake-quantized).

    The rounding is skipped in the backward pass (straight-through estimator): gradients
    reach the latent fp32 weights as if no rounding happened, so they keep learning.
    """

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> TernaryTrainingLinear:
        """A trainable copy of an fp32 layer's weights and bias."""
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            layer.weight.copy_(linear.weight)
            if linear.bias is not None and layer.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight.abs().mean().clamp(min=_EPS)
        w_ternary = (self.weight / scale).round().clamp(-1, 1) * scale
        weight = self.weight + (w_ternary - self.weight).detach()
        codes, step = quantize_activations(x.detach())
        x_quantized = x + (codes * step - x).detach()
        return F.linear(x_quantized, weight, self.bias)

    def to_plain(self) -> nn.Linear:
        """The latent fp32 weights as an ordinary Linear (to ternarize for serving)."""
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        plain.load_state_dict(self.state_dict())
        return plain


def fine_tune(
    net: TabularNet,
    data: TabularArrays,
    *,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
) -> tuple[TabularNet, list[float]]:
    """Quantization-aware fine-tuning of a copy of `net`'s MLP; `net` is not changed.

    Only the MLP's Linear layers learn: the embeddings and standardization stay the
    parent's, so the variant differs from its parent only where it is quantized.
    Shuffling and dropout draw from a generator seeded by `seed` (reproducible).

    Returns:
        The copy, its MLP's Linear layers still fp32 latent weights (ready for
        `TernaryLinear.from_linear`), and the mean training loss of each epoch.

    Raises:
        ValueError: `data` has no labels or no rows, or the loss stops being finite.
    """
    if data.labels is None or len(data) == 0:
        raise ValueError("quantization-aware fine-tuning needs labelled rows")
    tuned = copy.deepcopy(net)
    for index, module in enumerate(tuned.mlp):
        if isinstance(module, nn.Linear):
            tuned.mlp[index] = TernaryTrainingLinear.from_linear(module)
    for name, parameter in tuned.named_parameters():
        parameter.requires_grad_(name.startswith("mlp."))
    generator = torch.Generator().manual_seed(seed)
    numeric = torch.from_numpy(data.numeric)
    categorical = torch.from_numpy(data.categorical)
    labels = torch.from_numpy(data.labels)
    losses: list[float] = []
    with torch_threads(DEFAULT_THREADS):
        optimizer = torch.optim.AdamW(
            tuned.mlp.parameters(), lr=learning_rate, weight_decay=weight_decay
        )
        # Cosine decay to zero: late steps barely move the latent weights, so the final
        # ternary image settles instead of flipping weights at full learning rate.
        steps = epochs * -(-len(data) // batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
        tuned.set_dropout_generator(generator)
        tuned.train()
        rows = len(data)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(rows, generator=generator)
            total = 0.0
            for start in range(0, rows, batch_size):
                batch = order[start : start + batch_size]
                logits = tuned(numeric[batch], categorical[batch])
                loss = F.cross_entropy(logits, labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / rows)
            logger.debug("ternary fine-tuning epoch %d: loss %.5f", epoch, losses[-1])
            if not math.isfinite(losses[-1]):
                raise ValueError(f"ternary fine-tuning diverged at epoch {epoch}")
    tuned.set_dropout_generator(None)
    tuned.eval()
    for index, module in enumerate(tuned.mlp):
        if isinstance(module, TernaryTrainingLinear):
            tuned.mlp[index] = module.to_plain()
    for parameter in tuned.parameters():
        parameter.requires_grad_(True)
    return tuned, losses
