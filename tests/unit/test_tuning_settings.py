"""The tuning section of the settings: defaults and `MLOPS_TUNING__*` overrides."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops.settings import Settings, TuningSettings
from mlops.tuning import StudySettings, base_config, build_pruner, build_sampler


def test_defaults_describe_a_small_median_pruned_study() -> None:
    tuning = Settings(_env_file=None).tuning  # type: ignore[call-arg]
    assert tuning == StudySettings()
    assert (tuning.n_trials, tuning.timeout_s, tuning.pruner) == (20, None, "median")
    assert (tuning.n_startup_trials, tuning.n_warmup_steps) == (3, 2)


def test_environment_overrides_nested_tuning_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TUNING__N_TRIALS", "50")
    monkeypatch.setenv("MLOPS_TUNING__TIMEOUT_S", "900")
    monkeypatch.setenv("MLOPS_TUNING__PRUNER", "hyperband")
    tuning = Settings(_env_file=None).tuning  # type: ignore[call-arg]
    assert (tuning.n_trials, tuning.timeout_s, tuning.pruner) == (50, 900.0, "hyperband")


def test_the_tuning_section_is_validated_and_frozen() -> None:
    with pytest.raises(ValidationError, match="n_trials"):
        TuningSettings(n_trials=0)
    with pytest.raises(ValidationError, match="pruner"):
        TuningSettings.model_validate({"pruner": "random"})
    with pytest.raises(ValidationError, match="frozen"):
        TuningSettings().n_trials = 3  # type: ignore[misc, unused-ignore]


def test_sampler_pruner_and_budget_follow_the_settings() -> None:
    tuning = TuningSettings(pruner="hyperband", max_epochs=12, patience=3, sampler_seed=5)
    assert type(build_pruner(tuning)).__name__ == "HyperbandPruner"
    assert type(build_pruner(TuningSettings())).__name__ == "MedianPruner"
    assert type(build_sampler(tuning, worker=1)).__name__ == "TPESampler"
    config = base_config(tuning)
    assert (config.max_epochs, config.patience, config.seed) == (12, 3, 5)
