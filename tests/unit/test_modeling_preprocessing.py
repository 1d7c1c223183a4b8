"""Preprocessing inside the model: NaN imputation, unknown categories, log scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mlops.dataset_spec import FeatureSchema
from mlops.errors import ConfigError
from mlops.modeling.config import TrainConfig
from mlops.modeling.network import NetSpec, TabularNet, embedding_dim
from mlops.modeling.preprocessing import Preprocessor

SCHEMA = FeatureSchema(numeric=("amount", "age"), categorical=("channel",))


def _train_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [1.0, 2.0, 3.0, 1000.0, 2.0, 1.5, 2.5, 3.5, 1.0, 2.0],
            "age": [20.0, 30.0, np.nan, 40.0, 50.0, 60.0, 30.0, 40.0, 50.0, 20.0],
            "channel": pd.array(
                ["pos", "online", "pos", "atm", None, "pos", "pos", "atm", "online", "pos"],
                dtype="string",
            ),
        }
    )


def _net(preprocessor: Preprocessor, **overrides: object) -> TabularNet:
    config = TrainConfig(dropout=0.0, **overrides)  # type: ignore[arg-type]
    spec = NetSpec.build(config, preprocessor, n_classes=2)
    return TabularNet(spec, preprocessor.means, preprocessor.stds, preprocessor.log_scaled).eval()


def test_statistics_ignore_missing_values() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)

    ages = np.array([20, 30, 40, 50, 60, 30, 40, 50, 20], dtype=np.float64)
    assert preprocessor.means[1] == pytest.approx(ages.mean())
    assert preprocessor.stds[1] == pytest.approx(ages.std())
    assert preprocessor.vocabularies == (("atm", "online", "pos"),)
    assert preprocessor.cardinalities == (4,)


def test_heavy_tailed_non_negative_columns_are_log_scaled() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)

    assert preprocessor.log_scaled == (True, False)
    logs = np.log1p(_train_frame()["amount"].to_numpy())
    assert preprocessor.means[0] == pytest.approx(logs.mean())


def test_binary_and_constant_columns_are_left_alone() -> None:
    frame = pd.DataFrame({"flag": [0.0] * 95 + [1.0] * 5, "const": [3.0] * 100})
    preprocessor = Preprocessor.fit(frame, FeatureSchema(numeric=("flag", "const"), categorical=()))

    assert preprocessor.log_scaled == (False, False)
    assert preprocessor.stds[1] == 1.0


def test_unknown_and_missing_categories_get_code_zero() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)
    serving = pd.DataFrame(
        {
            "channel": pd.array(["online", "crypto", None, "atm"], dtype="string"),
            "age": [1.0, 2.0, 3.0, 4.0],
            "amount": [1.0, np.inf, -np.inf, np.nan],
            "unrelated": ["a", "b", "c", "d"],
        }
    )
    arrays = preprocessor.transform(serving)

    assert arrays.categorical[:, 0].tolist() == [2, 0, 0, 1]
    assert arrays.numeric.dtype == np.float32 and arrays.categorical.dtype == np.int64
    assert np.isnan(arrays.numeric[1:, 0]).all(), "non-finite numbers count as missing"
    assert arrays.numeric[:, 1].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_object_and_non_text_category_values_match_their_text_form() -> None:
    frame = pd.DataFrame({"level": [1, 2, 3, 2]})
    preprocessor = Preprocessor.fit(frame, FeatureSchema(numeric=(), categorical=("level",)))

    codes = preprocessor.transform(pd.DataFrame({"level": ["2", 3, None]})).categorical
    assert codes[:, 0].tolist() == [2, 3, 0]


def test_missing_feature_column_is_a_config_error() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)
    with pytest.raises(ConfigError, match=r"\['channel'\] are missing"):
        preprocessor.transform(_train_frame().drop(columns=["channel"]))


def test_nan_numeric_is_imputed_with_the_training_mean() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)
    net = _net(preprocessor)
    age_mean = preprocessor.means[1]
    rows = pd.DataFrame(
        {
            "amount": [2.0, 2.0],
            "age": [np.nan, age_mean],
            "channel": pd.array(["pos", "pos"], dtype="string"),
        }
    )
    arrays = preprocessor.transform(rows)
    with torch.inference_mode():
        logits = net(torch.from_numpy(arrays.numeric), torch.from_numpy(arrays.categorical))

    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits[0], logits[1])


def test_unknown_category_embeds_to_zeros_and_never_crashes() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)
    net = _net(preprocessor)
    arrays = preprocessor.transform(
        pd.DataFrame({"amount": [5.0], "age": [33.0], "channel": ["teleport"]})
    )
    with torch.inference_mode():
        logits = net(torch.from_numpy(arrays.numeric), torch.from_numpy(arrays.categorical))

    assert torch.isfinite(logits).all()
    assert torch.count_nonzero(net.state_dict()["embeddings.0.weight"][0]) == 0


def test_preprocessor_json_round_trip() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)
    assert Preprocessor.from_json(preprocessor.to_json()) == preprocessor


def test_embedding_dim_rule_and_override() -> None:
    assert embedding_dim(4) == 3
    assert embedding_dim(11) == 6
    assert embedding_dim(10_000) == 16
    assert embedding_dim(4, configured=8) == 8
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)
    assert _net(preprocessor, embedding_dim=5).spec.embedding_dims == (5,)


def test_network_shape_follows_the_config() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)
    net = _net(preprocessor, hidden_layers=3, width=32, activation="gelu")
    linears = [m for m in net.mlp if isinstance(m, torch.nn.Linear)]

    assert [(m.in_features, m.out_features) for m in linears] == [
        (2 + 3, 32),
        (32, 32),
        (32, 32),
        (32, 2),
    ]
    assert any(isinstance(m, torch.nn.GELU) for m in net.mlp)


def test_records_encode_exactly_like_frames() -> None:
    preprocessor = Preprocessor.fit(_train_frame(), SCHEMA)
    frame = pd.DataFrame(
        {
            "amount": [2.0, np.nan, np.inf, 7.5],
            "age": [31.0, 44.0, 52.0, np.nan],
            "channel": pd.array(["online", None, "crypto", "atm"], dtype="string"),
        }
    )
    records = [
        {"amount": 2.0, "age": 31, "channel": "online", "extra": "ignored"},
        {"amount": None, "age": 44.0, "channel": None},
        {"amount": float("inf"), "age": 52.0, "channel": "crypto"},
        {"amount": 7.5, "age": float("nan"), "channel": "atm"},
    ]
    from_frame, from_records = (
        preprocessor.transform(frame),
        preprocessor.transform_records(records),
    )

    np.testing.assert_array_equal(from_records.numeric, from_frame.numeric)
    np.testing.assert_array_equal(from_records.categorical, from_frame.categorical)
    with pytest.raises(ConfigError, match="'channel' is missing"):
        preprocessor.transform_records([{"amount": 1.0, "age": 2.0}])
    with pytest.raises(ConfigError, match="non-number"):
        preprocessor.transform_records([{"amount": "lots", "age": 2.0, "channel": "pos"}])
