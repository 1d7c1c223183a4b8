"""Hyperparameters of the tabular network: what Optuna tunes and MLflow records."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Activation = Literal["relu", "gelu", "silu"]


class TrainConfig(BaseModel):
    """One point of the search space, plus the training budget of a single fit."""

    model_config = ConfigDict(frozen=True)

    hidden_layers: int = Field(default=2, ge=1, le=4)
    width: int = Field(default=128, ge=8, le=1024)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    activation: Activation = "relu"
    learning_rate: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=1e-5, ge=0.0)
    batch_size: int = Field(default=256, ge=16)
    embedding_dim: int | None = Field(
        default=None, ge=1, description="Per categorical column; None picks min(16, ~1.6*n^0.56)."
    )
    max_epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=4, ge=1, description="Early stopping on validation loss.")
    seed: int = 0
