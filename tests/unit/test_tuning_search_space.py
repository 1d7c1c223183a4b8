"""The search space: its ranges, and that the budget comes from the base config."""

from __future__ import annotations

import math

import optuna
import pytest

from mlops.modeling.config import TrainConfig
from mlops.tuning import config_from_params, suggest_params


@pytest.fixture
def configs() -> list[TrainConfig]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    base = TrainConfig(max_epochs=7, patience=2, seed=42)
    drawn: list[TrainConfig] = []
    for _ in range(200):
        trial = study.ask()
        drawn.append(suggest_params(trial, base))
        study.tell(trial, 0.0)
    return drawn


def test_every_draw_lies_in_the_search_space(configs: list[TrainConfig]) -> None:
    for config in configs:
        assert 1 <= config.hidden_layers <= 3
        assert 32 <= config.width <= 256
        assert 0.0 <= config.dropout <= 0.4
        assert config.activation in ("relu", "gelu", "silu")
        assert 1e-4 <= config.learning_rate <= 1e-2
        assert 1e-6 <= config.weight_decay <= 1e-3
        assert config.batch_size in (128, 256, 512)


def test_budget_fields_come_from_the_base(configs: list[TrainConfig]) -> None:
    assert {(c.max_epochs, c.patience, c.seed) for c in configs} == {(7, 2, 42)}


def test_log_scaled_ranges_cover_their_decades(configs: list[TrainConfig]) -> None:
    # Log-uniform: about as many learning rates below 1e-3 as above it.
    below = sum(c.learning_rate < 1e-3 for c in configs)
    assert 60 <= below <= 140
    assert {c.activation for c in configs} == {"relu", "gelu", "silu"}
    assert {c.batch_size for c in configs} == {128, 256, 512}
    assert min(c.width for c in configs) < 48 and max(c.width for c in configs) > 180


def test_params_read_back_into_the_same_config() -> None:
    trial = optuna.trial.FixedTrial(
        {
            "hidden_layers": 2,
            "width": 64,
            "dropout": 0.1,
            "activation": "gelu",
            "learning_rate": 3e-3,
            "weight_decay": 1e-5,
            "batch_size": 256,
        }
    )
    base = TrainConfig(max_epochs=5, seed=3)
    config = suggest_params(trial, base)
    assert config_from_params(dict(trial.params), base) == config
    assert config.max_epochs == 5 and config.seed == 3
    assert math.isclose(config.learning_rate, 3e-3)
