"""The search space of the tabular network: the one place Optuna's ranges live.

Keeping every `trial.suggest_*` call here means a study, a rerun and a reader of the
MLflow params all agree on what was searched; the training budget (epochs, patience,
seed) is not searched, it comes from the base configuration.
"""

from __future__ import annotations

from typing import Any

import optuna

from mlops.modeling.config import TrainConfig

BATCH_SIZES: tuple[int, ...] = (128, 256, 512)
ACTIVATIONS: tuple[str, ...] = ("relu", "gelu", "silu")


def suggest_params(trial: optuna.trial.BaseTrial, base: TrainConfig | None = None) -> TrainConfig:
    """Draw one configuration; fields outside the space are copied from `base`.

    Any trial works: a live `Trial`, a `FixedTrial` to replay known values, or a
    `FrozenTrial`. The parameter names equal `TrainConfig` field names, so `trial.params` (and the
    MLflow params logged from it) read back with `config_from_params`.
    """
    params: dict[str, Any] = {
        "hidden_layers": trial.suggest_int("hidden_layers", 1, 3),
        "width": trial.suggest_int("width", 32, 256, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.4),
        "activation": trial.suggest_categorical("activation", ACTIVATIONS),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
    }
    return config_from_params(params, base)


def config_from_params(params: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Rebuild a `TrainConfig` from a trial's params (validated, budget from `base`)."""
    merged = (base or TrainConfig()).model_dump()
    merged.update(params)
    return TrainConfig.model_validate(merged)
