"""The tabular network and the packaged model that serving and evaluation call.

`TabularNet` takes two tensors (raw numerics, category codes) and standardizes inside,
so the weights file alone turns raw feature values into logits. `TabularModel` adds the
frame-facing parts: preprocessing, the label classes and the dataset roles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from mlops.dataset_spec import DatasetSpec, FeatureSchema, Task
from mlops.modeling.config import Activation, TrainConfig
from mlops.modeling.data import LabelEncoding, TabularArrays
from mlops.modeling.preprocessing import Preprocessor

__all__ = [
    "DatasetRoles",
    "NetSpec",
    "Preprocessor",
    "SeededDropout",
    "TabularModel",
    "TabularNet",
    "embedding_dim",
]

MAX_EMBEDDING_DIM = 16
PREDICT_CHUNK_ROWS = 65_536
"""Rows per forward pass when scoring a large frame (bounds peak memory)."""

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def embedding_dim(cardinality: int, configured: int | None = None) -> int:
    """Width of a category's embedding: the configured one, else min(16, ~1.6 * n^0.56).

    The rule (from fast.ai) grows sub-linearly with the vocabulary, so a 3-level column
    gets a few dimensions and a 500-level one is capped.
    """
    if configured is not None:
        return configured
    rule = int(round(1.6 * math.pow(cardinality, 0.56)))
    return max(1, min(MAX_EMBEDDING_DIM, rule))


@dataclass(frozen=True)
class NetSpec:
    """The network's shape: all a loader needs to rebuild it before loading weights."""

    n_numeric: int
    cardinalities: tuple[int, ...]
    embedding_dims: tuple[int, ...]
    n_classes: int
    hidden_layers: int
    width: int
    activation: Activation
    dropout: float

    @classmethod
    def build(cls, config: TrainConfig, preprocessor: Preprocessor, n_classes: int) -> NetSpec:
        """The shape a config gives for this data's columns and classes."""
        cards = preprocessor.cardinalities
        return cls(
            n_numeric=len(preprocessor.numeric),
            cardinalities=cards,
            embedding_dims=tuple(embedding_dim(c, config.embedding_dim) for c in cards),
            n_classes=n_classes,
            hidden_layers=config.hidden_layers,
            width=config.width,
            activation=config.activation,
            dropout=config.dropout,
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for `model.json`."""
        return {
            "n_numeric": self.n_numeric,
            "cardinalities": list(self.cardinalities),
            "embedding_dims": list(self.embedding_dims),
            "n_classes": self.n_classes,
            "hidden_layers": self.hidden_layers,
            "width": self.width,
            "activation": self.activation,
            "dropout": self.dropout,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetSpec:
        """Rebuild from `to_json()` output."""
        activation = data["activation"]
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        return cls(
            n_numeric=int(data["n_numeric"]),
            cardinalities=tuple(int(c) for c in data["cardinalities"]),
            embedding_dims=tuple(int(d) for d in data["embedding_dims"]),
            n_classes=int(data["n_classes"]),
            hidden_layers=int(data["hidden_layers"]),
            width=int(data["width"]),
            activation=activation,
            dropout=float(data["dropout"]),
        )


class SeededDropout(nn.Module):
    """Dropout drawing its mask from an attached generator instead of torch's global one.

    Trials may train in parallel threads of one process; a private generator keeps each
    fit bit-for-bit reproducible whatever the others do. Identity in eval mode.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {p}")
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        # Uniform draws compared with p: measurably faster on CPU than bernoulli_.
        noise = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return x * (noise >= self.p) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TabularNet(nn.Module):
    """Standardize numerics, embed categories, then an MLP to one logit per class.

    Binary tasks get two logits too, so binary and multiclass share the loss, the
    softmax and every consumer. Heavy-tailed numerics (`log_mask`) are log-scaled first.
    A NaN numeric input is imputed with the training mean (0 after standardization).
    Category code 0 is the unknown/missing slot, initialised to zeros so an unseen value
    starts (and, if never seen in training, stays) neutral.
    """

    log_mask: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        spec: NetSpec,
        means: tuple[float, ...],
        stds: tuple[float, ...],
        log_scaled: tuple[bool, ...],
    ) -> None:
        super().__init__()
        if not len(means) == len(stds) == len(log_scaled) == spec.n_numeric:
            raise ValueError("means, stds and log flags need one entry per numeric column")
        self.spec = spec
        self.register_buffer("log_mask", torch.tensor(log_scaled, dtype=torch.bool))
        self.register_buffer("mean", torch.tensor(means, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(stds, dtype=torch.float32))
        self._any_log = any(log_scaled)
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, d) for c, d in zip(spec.cardinalities, spec.embedding_dims, strict=True)
        )
        layers: list[nn.Module] = []
        width_in = spec.n_numeric + sum(spec.embedding_dims)
        for _ in range(spec.hidden_layers):
            layers += [
                nn.Linear(width_in, spec.width),
                _ACTIVATIONS[spec.activation](),
                SeededDropout(spec.dropout),
            ]
            width_in = spec.width
        layers.append(nn.Linear(width_in, spec.n_classes))
        self.mlp = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """torch's default initialisation, drawn from `generator` for reproducibility."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(module.in_features)
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, generator=generator)
                with torch.no_grad():
                    module.weight[0].zero_()

    def set_dropout_generator(self, generator: torch.Generator | None) -> None:
        """Make every dropout layer draw from `generator` (None: torch's global one)."""
        for module in self.modules():
            if isinstance(module, SeededDropout):
                module.generator = generator

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Logits [n, classes] from raw numerics [n, d_num] and category codes [n, d_cat]."""
        if self._any_log:
            scaled = torch.sign(numeric) * torch.log1p(numeric.abs())
            numeric = torch.where(self.log_mask, scaled, numeric)
        parts = [((numeric - self.mean) / self.std).nan_to_num_(nan=0.0)]
        # Lookups read the tables directly: at one row per request, five nn.Embedding calls
        # cost twice as much as the gathers themselves. Quantizers target `mlp`'s layers.
        for embedding, codes in zip(self.embeddings, categorical.unbind(1), strict=True):
            parts.append(cast(nn.Embedding, embedding).weight.index_select(0, codes))
        return self.mlp(torch.cat(parts, dim=1))  # type: ignore[no-any-return]


class DatasetRoles(BaseModel):
    """The dataset roles a model was trained for; stored in the artifact for lineage."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    entity: str
    timestamp: str
    label: str
    task: Task

    @classmethod
    def from_spec(cls, spec: DatasetSpec) -> DatasetRoles:
        """The roles of a dataset spec."""
        return cls(
            dataset=spec.name,
            entity=spec.entity,
            timestamp=spec.timestamp,
            label=spec.label,
            task=spec.task,
        )


class TabularModel:
    """A trained network with everything needed to score raw feature frames.

    `predict_proba` reads only the schema's feature columns (ids, timestamps and extra
    columns are ignored) and never fails on an unseen category.
    """

    def __init__(
        self,
        net: TabularNet,
        preprocessor: Preprocessor,
        labels: LabelEncoding,
        config: TrainConfig,
        roles: DatasetRoles,
    ) -> None:
        if net.spec.n_classes != labels.n_classes:
            raise ValueError(
                f"network has {net.spec.n_classes} outputs for {labels.n_classes} classes"
            )
        self.net = net.eval()
        self.preprocessor = preprocessor
        self.labels = labels
        self.config = config
        self.roles = roles

    @property
    def schema(self) -> FeatureSchema:
        """The feature columns the model reads."""
        return self.preprocessor.schema

    @property
    def classes(self) -> tuple[int | str, ...]:
        """Class values in the order of `predict_proba`'s columns."""
        return self.labels.classes

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Class probabilities [rows, classes], columns in `classes` order.

        Raises:
            ConfigError: a feature column is missing.
        """
        return self.predict_proba_arrays(self.preprocessor.transform(frame))

    def predict_proba_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> npt.NDArray[np.float64]:
        """Class probabilities of JSON-like rows, skipping pandas (serving's request path).

        Raises:
            ConfigError: a feature key is absent or a numeric value is not a number.
        """
        return self.predict_proba_arrays(self.preprocessor.transform_records(records))

    def predict_proba_arrays(self, arrays: TabularArrays) -> npt.NDArray[np.float64]:
        """Class probabilities of already-encoded features (see `Preprocessor.transform`)."""
        if self.net.training:
            self.net.eval()
        device = self.net.mean.device
        numeric = torch.from_numpy(arrays.numeric)
        categorical = torch.from_numpy(arrays.categorical)
        chunks: list[torch.Tensor] = []
        with torch.inference_mode():
            for start in range(0, max(len(arrays), 1), PREDICT_CHUNK_ROWS):
                stop = start + PREDICT_CHUNK_ROWS
                logits = self.net(
                    numeric[start:stop].to(device), categorical[start:stop].to(device)
                )
                chunks.append(torch.softmax(logits, dim=1).cpu())
        return torch.cat(chunks).numpy().astype(np.float64)

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[Any]:
        """The most probable class of each row, as the data spells it (int or str)."""
        return self.labels.decode(self.predict_proba(frame).argmax(axis=1))
