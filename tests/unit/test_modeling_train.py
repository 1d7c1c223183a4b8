"""The training loop: determinism, early stopping, callbacks, refit, multiclass labels."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mlops.dataset_spec import DatasetSpec, FeatureSchema, Task, load_spec
from mlops.errors import ConfigError
from mlops.modeling import (
    EpochRecord,
    Splits,
    TrainConfig,
    as_training_frame,
    evaluate,
    fit,
    load_model,
    refit,
    save_model,
    split_time_ordered,
)
from mlops.synthetic import Scenario, generate

REPO = Path(__file__).resolve().parents[2]
SPEC = load_spec(REPO / "datasets" / "card_fraud.yaml")
START = datetime(2024, 3, 4, tzinfo=UTC)
FAST = TrainConfig(hidden_layers=1, width=32, max_epochs=4, patience=2, learning_rate=3e-3)


@pytest.fixture(scope="module")
def data() -> tuple[Splits, FeatureSchema]:
    raw = generate(Scenario.BASELINE, 4_000, START, seed=5)
    schema = SPEC.resolve_schema(raw)
    return split_time_ordered(as_training_frame(raw, SPEC, schema), SPEC), schema


def _weights(result_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in result_model.state_dict().items()}


def test_same_seed_gives_bit_identical_weights_and_metrics(
    data: tuple[Splits, FeatureSchema],
) -> None:
    splits, schema = data
    first = fit(FAST, splits.train, splits.valid, SPEC, schema)
    second = fit(FAST, splits.train, splits.valid, SPEC, schema)

    assert first.history == second.history
    for name, tensor in _weights(first.model.net).items():
        assert torch.equal(tensor, second.model.net.state_dict()[name]), name
    np.testing.assert_array_equal(
        first.model.predict_proba(splits.holdout), second.model.predict_proba(splits.holdout)
    )


def test_different_seed_gives_different_weights(data: tuple[Splits, FeatureSchema]) -> None:
    splits, schema = data
    first = fit(FAST, splits.train, splits.valid, SPEC, schema)
    other = fit(FAST.model_copy(update={"seed": 1}), splits.train, splits.valid, SPEC, schema)

    assert first.history != other.history
    first_layer = "mlp.0.weight"
    assert not torch.equal(
        first.model.net.state_dict()[first_layer], other.model.net.state_dict()[first_layer]
    )


def test_fit_is_reproducible_in_a_fresh_process(
    data: tuple[Splits, FeatureSchema], tmp_path: Path
) -> None:
    splits, schema = data
    frame = pd.concat([splits.train, splits.valid], ignore_index=True)
    frame.to_parquet(tmp_path / "train.parquet")
    here = save_model(fit(FAST, splits.train, splits.valid, SPEC, schema).model, tmp_path / "a")
    script = textwrap.dedent(
        f"""
        import pandas as pd
        from pathlib import Path
        from mlops.dataset_spec import load_spec
        from mlops.modeling import TrainConfig, fit, save_model
        spec = load_spec(Path({str(REPO / "datasets" / "card_fraud.yaml")!r}))
        frame = pd.read_parquet({str(tmp_path / "train.parquet")!r})
        train, valid = frame.iloc[:{len(splits.train)}], frame.iloc[{len(splits.train)}:]
        config = TrainConfig.model_validate_json({FAST.model_dump_json()!r})
        result = fit(config, train, valid, spec, spec.resolve_schema(frame))
        print(save_model(result.model, Path({str(tmp_path / "b")!r})).sha256)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.strip().splitlines()[-1] == here.sha256


def test_early_stopping_restores_the_best_epoch(data: tuple[Splits, FeatureSchema]) -> None:
    splits, schema = data
    train = splits.train.iloc[:600]
    config = TrainConfig(width=256, learning_rate=2e-2, dropout=0.0, max_epochs=40, patience=2)
    result = fit(config, train, splits.valid, SPEC, schema)

    losses = [r.valid_loss for r in result.history]
    assert result.stopped_early
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert len(result.history) == result.best_epoch + config.patience
    assert result.best == result.history[result.best_epoch - 1]
    proba = result.model.predict_proba(splits.valid)
    y = splits.valid[SPEC.label].to_numpy()
    restored_loss = float(-np.mean(np.log(proba[np.arange(len(y)), y])))
    assert restored_loss == pytest.approx(result.best_valid_loss, rel=1e-4)
    assert restored_loss != pytest.approx(losses[-1], rel=1e-4)


def test_exceptions_from_on_epoch_propagate_untouched(
    data: tuple[Splits, FeatureSchema],
) -> None:
    class Pruned(Exception):
        """Stands in for optuna.TrialPruned."""

    splits, schema = data
    seen: list[EpochRecord] = []

    def report(record: EpochRecord) -> None:
        seen.append(record)
        if record.epoch == 2:
            raise Pruned("trial pruned at epoch 2")

    with pytest.raises(Pruned, match="epoch 2"):
        fit(FAST, splits.train, splits.valid, SPEC, schema, on_epoch=report)
    assert [r.epoch for r in seen] == [1, 2]
    assert all(np.isfinite([r.train_loss, r.valid_loss, r.valid_auc]).all() for r in seen)
    assert torch.get_num_threads() >= 1, "process settings are restored after an exception"


def test_fit_leaves_torch_settings_as_it_found_them(data: tuple[Splits, FeatureSchema]) -> None:
    splits, schema = data
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    fit(FAST.model_copy(update={"max_epochs": 1}), splits.train, splits.valid, SPEC, schema)

    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_refit_trains_on_everything_for_a_fixed_epoch_count(
    data: tuple[Splits, FeatureSchema],
) -> None:
    splits, schema = data
    model = refit(FAST, splits.train_and_valid, SPEC, schema, epochs=2)
    again = refit(FAST, splits.train_and_valid, SPEC, schema, epochs=2)

    assert model.classes == (0, 1)
    metrics = evaluate(model, splits.holdout, SPEC)
    assert 0.5 < metrics.roc_auc <= 1.0
    np.testing.assert_array_equal(
        model.predict_proba(splits.holdout), again.predict_proba(splits.holdout)
    )
    with pytest.raises(ConfigError, match="at least one epoch"):
        refit(FAST, splits.train_and_valid, SPEC, schema, epochs=0)


def test_empty_frames_are_config_errors(data: tuple[Splits, FeatureSchema]) -> None:
    splits, schema = data
    with pytest.raises(ConfigError, match="valid frame has no rows"):
        fit(FAST, splits.train, splits.valid.iloc[:0], SPEC, schema)


def _multiclass_frame(rows: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    region = rng.choice(["north", "south", "east"], size=rows)
    score = x + np.where(region == "north", 1.0, 0.0) + rng.normal(0.0, 0.3, rows)
    label = np.where(score < -0.5, "low", np.where(score < 0.8, "mid", "high"))
    return pd.DataFrame(
        {
            "shop": [f"s{i % 50}" for i in range(rows)],
            "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(rows), "min"),
            "x": x,
            "noise": rng.normal(size=rows),
            "region": pd.array(region, dtype="string"),
            "level": label,
        }
    )


def test_multiclass_with_string_labels_end_to_end(tmp_path: Path) -> None:
    spec = DatasetSpec(
        name="levels", entity="shop", timestamp="ts", label="level", task=Task.MULTICLASS
    )
    frame = _multiclass_frame(3_000)
    schema = spec.resolve_schema(frame)
    splits = split_time_ordered(frame, spec)
    config = TrainConfig(hidden_layers=1, width=32, max_epochs=8, learning_rate=1e-2)
    result = fit(config, splits.train, splits.valid, spec, schema)
    model = result.model

    assert schema == FeatureSchema(numeric=("x", "noise"), categorical=("region",))
    assert model.classes == ("high", "low", "mid")
    proba = model.predict_proba(splits.holdout)
    assert proba.shape == (len(splits.holdout), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(model.predict(splits.holdout)) <= {"high", "low", "mid"}
    metrics = evaluate(model, splits.holdout, spec)
    assert metrics.accuracy > 0.8 and metrics.roc_auc > 0.9

    artifact = save_model(model, tmp_path / "model")
    loaded = load_model(artifact.directory, artifact.sha256)
    assert loaded.classes == ("high", "low", "mid")
    assert loaded.roles.task is Task.MULTICLASS
    np.testing.assert_array_equal(loaded.predict_proba(splits.holdout), proba)
