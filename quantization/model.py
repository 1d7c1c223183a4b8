"""One entry point, `quantize`, from a trained fp32 model to a servable compressed variant.

Only the MLP's Linear layers change: they hold nearly all the weights and all the
multiply-adds. The preprocessing, the embedding tables (read directly, not through a
Linear) and the label classes are the parent's, so a variant scores the same raw frames
and records as its parent and differs from it only where it was quantized.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from torch import nn

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import ConfigError
from mlops.modeling.data import LabelEncoding, TabularArrays
from mlops.modeling.network import TabularModel, TabularNet
from mlops.modeling.preprocessing import Preprocessor
from mlops.settings import QuantizationSettings
from quantization.int8 import DynamicLinear, Int8Weights, quantize_mlp
from quantization.schemes import Scheme
from quantization.ternary import TernaryKernel, TernaryLinear, fine_tune

__all__ = ["QuantizedModel", "linear_layers", "quantize", "resident_bytes"]

logger = logging.getLogger(__name__)

DEFAULT_TERNARY_KERNEL: TernaryKernel = "float"
"""Speed first: the fp32 -1/0/+1 matrix needs no conversion per call; "int8" keeps a
quarter of the resident bytes (see `quantization.ternary`)."""


class QuantizedModel:
    """A compressed variant of a `TabularModel`, scoring frames exactly as its parent does.

    `predict_proba`, `predict_proba_records`, `predict_proba_arrays` and `predict` behave
    like `TabularModel`'s (they are its code, on the variant's network).
    """

    def __init__(
        self, model: TabularModel, scheme: Scheme, metadata: Mapping[str, Any] | None = None
    ) -> None:
        self.model = model
        self.scheme = Scheme(scheme)
        self.metadata: dict[str, Any] = dict(metadata or {})

    @property
    def net(self) -> TabularNet:
        """The network, its MLP's Linear layers replaced by the scheme's runtime layers."""
        return self.model.net

    @property
    def preprocessor(self) -> Preprocessor:
        """The parent's preprocessing."""
        return self.model.preprocessor

    @property
    def labels(self) -> LabelEncoding:
        """The parent's label classes."""
        return self.model.labels

    @property
    def schema(self) -> FeatureSchema:
        """The feature columns the model reads."""
        return self.model.schema

    @property
    def classes(self) -> tuple[int | str, ...]:
        """Class values in the order of `predict_proba`'s columns."""
        return self.model.classes

    @property
    def weight_bytes(self) -> int:
        """Bytes the network's weights occupy in memory once loaded (see `resident_bytes`)."""
        return resident_bytes(self.net)

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Class probabilities [rows, classes] (see `TabularModel.predict_proba`)."""
        return self.model.predict_proba(frame)

    def predict_proba_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> npt.NDArray[np.float64]:
        """Class probabilities of JSON-like rows (serving's request path)."""
        return self.model.predict_proba_records(records)

    def predict_proba_arrays(self, arrays: TabularArrays) -> npt.NDArray[np.float64]:
        """Class probabilities of already-encoded features."""
        return self.model.predict_proba_arrays(arrays)

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[Any]:
        """The most probable class of each row, as the data spells it."""
        return self.model.predict(frame)

    def __repr__(self) -> str:
        return f"QuantizedModel(scheme={self.scheme.value}, weight_bytes={self.weight_bytes})"


def quantize(
    model: TabularModel,
    scheme: Scheme | str,
    calibration: pd.DataFrame,
    *,
    spec: DatasetSpec,
    settings: QuantizationSettings | None = None,
    ternary_kernel: TernaryKernel = DEFAULT_TERNARY_KERNEL,
) -> QuantizedModel:
    """A variant of `model` whose MLP Linear layers are stored and computed per `scheme`.

    `model` is never modified. `calibration` is used by the ternary scheme only: its
    labelled rows (normally the training frame) drive quantization-aware fine-tuning for
    `settings.qat_epochs` epochs (0: post-training ternarization, kept for comparison).
    Dynamic int8 needs no calibration (activation ranges are measured per batch at run
    time) and fp16 is a rounding of the weights.

    Raises:
        ConfigError: an unknown scheme, or a calibration frame without labels or rows
            when fine-tuning needs them.
    """
    try:
        chosen = Scheme(scheme)
    except ValueError as exc:
        raise ConfigError(f"unknown quantization scheme {scheme!r}") from exc
    settings = settings if settings is not None else QuantizationSettings()
    net = copy.deepcopy(model.net).eval()
    metadata: dict[str, Any] = {}
    if chosen is Scheme.FP16:
        with torch.no_grad():
            for _, layer in linear_layers(net):
                if not isinstance(layer, nn.Linear):  # pragma: no cover - fresh copy
                    raise TypeError(type(layer).__name__)
                for parameter in layer.parameters():
                    parameter.copy_(parameter.half().float())
    elif chosen is Scheme.INT8:
        net.mlp = quantize_mlp(net.mlp)
        metadata["int8_qscheme"] = "per_channel_affine"
    elif chosen is Scheme.TERNARY:
        net, metadata = _ternarize(model, net, calibration, spec, settings, ternary_kernel)
    quantized = QuantizedModel(
        TabularModel(net, model.preprocessor, model.labels, model.config, model.roles),
        chosen,
        metadata,
    )
    logger.info(
        "quantized %s to %s: %d resident weight bytes (fp32: %d)",
        model.roles.dataset,
        chosen.value,
        quantized.weight_bytes,
        resident_bytes(model.net),
    )
    return quantized


def linear_layers(net: TabularNet) -> list[tuple[int, nn.Module]]:
    """(position in `net.mlp`, layer) of each weight layer of the MLP, in order."""
    kinds = (nn.Linear, DynamicLinear, TernaryLinear)
    return [(i, m) for i, m in enumerate(net.mlp) if isinstance(m, kinds)]


def resident_bytes(net: nn.Module) -> int:
    """Bytes of every tensor the network holds for inference (parameters and buffers).

    A dynamic int8 layer counts its int8 weights, scales, zero points and fp32 bias
    (torch's packed form adds a few bytes per output column that are not visible here).
    """
    total = 0
    for module in net.modules():
        if isinstance(module, DynamicLinear):
            total += Int8Weights.of(module).nbytes
            continue
        tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def _ternarize(
    model: TabularModel,
    net: TabularNet,
    calibration: pd.DataFrame,
    spec: DatasetSpec,
    settings: QuantizationSettings,
    kernel: TernaryKernel,
) -> tuple[TabularNet, dict[str, Any]]:
    metadata: dict[str, Any] = {"qat_epochs": settings.qat_epochs, "ternary_kernel": kernel}
    if settings.qat_epochs > 0:
        if spec.label not in calibration.columns:
            raise ConfigError(
                f"ternary fine-tuning needs labelled calibration rows: column {spec.label!r} "
                "is missing"
            )
        if calibration.empty:
            raise ConfigError("ternary fine-tuning needs calibration rows, got none")
        arrays = model.preprocessor.transform(calibration).with_labels(
            model.labels.encode(calibration[spec.label])
        )
        try:
            net, losses = fine_tune(
                net,
                arrays,
                epochs=settings.qat_epochs,
                learning_rate=settings.qat_learning_rate,
                weight_decay=model.config.weight_decay,
                batch_size=model.config.batch_size,
                seed=model.config.seed,
            )
        except ValueError as exc:
            raise ConfigError(f"ternary fine-tuning failed: {exc}") from exc
        metadata.update(
            qat_learning_rate=settings.qat_learning_rate,
            qat_rows=len(arrays),
            qat_losses=[round(loss, 6) for loss in losses],
        )
    for index, layer in linear_layers(net):
        if not isinstance(layer, nn.Linear):  # pragma: no cover - fresh copy
            raise TypeError(type(layer).__name__)
        with torch.no_grad():  # biases are stored in fp16: serve exactly what is stored
            layer.bias.copy_(layer.bias.half().float())
        net.mlp[index] = TernaryLinear.from_linear(layer, kernel)
    return net, metadata
