"""Batch scoring of a large file: row-group partitions scored on a Dask cluster.

A small model is registered as the champion first, then the `batch-scoring` flow scores
a file of several row groups with two worker processes, on the session's Prefect server.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops.scoring import MANIFEST, ScoringModel, ScoringResult, plan_partitions
from mlops.settings import Settings
from mlops.synthetic import Scenario, generate

ROW_GROUP = 5_000


def write_row_groups(frame: pd.DataFrame, path: Path, row_group_size: int = ROW_GROUP) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size)
    return path


def test_partitions_are_whole_row_groups_of_about_the_asked_size(
    settings: Settings, tmp_path: Path
) -> None:
    frame = pd.DataFrame({"x": np.arange(23_000, dtype="float64")})
    path = write_row_groups(frame, tmp_path / "in.parquet")  # 5 groups: 4 x 5,000 + 3,000
    model = ScoringModel(name="m", version="3", artifact_sha256="0" * 64)
    plan = plan_partitions(str(path), settings, rows_per_partition=8_000, model=model)
    assert [p.row_groups for p in plan.partitions] == [(0, 1), (2, 3), (4,)]
    assert [p.rows for p in plan.partitions] == [10_000, 10_000, 3_000]
    assert plan.rows == 23_000
    assert plan.output_uri == str(settings.home / "scores" / "m" / "v3" / plan.input_sha256[:16])
    single = plan_partitions(str(path), settings, rows_per_partition=1, output_uri="/out")
    assert len(single.partitions) == 5 and single.output_uri == "/out"


@dataclass(frozen=True)
class Registered:
    settings: Settings
    version: str
    root: Path


@pytest.fixture(scope="module")
def registered(
    prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registered]:
    """A small card-fraud model registered as champion (the registry's own calls; the
    training pipeline that registers models has tests of its own)."""
    from tests.e2e.conftest import mlops_env
    from tests.serving_support import register_model, train_models

    root = tmp_path_factory.mktemp("scoring")
    with mlops_env(root / "state") as settings:
        models = train_models(root / "models", count=1, rows=3_000)
        version = register_model(settings, "card_fraud", models, 0).version
        yield Registered(settings, version, root)


def _score(registered: Registered, data: Path, **params: object) -> ScoringResult:
    from flows.batch_scoring import BatchScoringParams, batch_scoring

    return batch_scoring(
        BatchScoringParams(data=str(data), model_name="card_fraud", workers=2, **params)
    )


@pytest.mark.integration
def test_a_large_file_is_scored_in_parallel_partitions(registered: Registered) -> None:
    from mlops.registry.client import download_artifact, registry_client
    from quantization.served import load_served_model

    frame = generate(Scenario.BASELINE, 32_000, datetime(2026, 2, 1, tzinfo=UTC), days=14)
    data = write_row_groups(frame.drop(columns=["is_fraud"]), registered.root / "big.parquet")
    result = _score(registered, data, rows_per_partition=10_000)

    assert result.model.version == registered.version, "the champion's version, pinned"
    assert result.rows == 32_000 and [p.rows for p in result.parts] == [10_000] * 3 + [2_000]
    assert Path(result.manifest_uri).name == MANIFEST and Path(result.manifest_uri).is_file()
    scored = pd.concat([pd.read_parquet(p.uri) for p in result.parts], ignore_index=True)
    assert list(scored.columns[-2:]) == ["p_0", "p_1"]
    assert scored["transaction_id"].tolist() == frame["transaction_id"].tolist(), "input order"
    client = registry_client(registered.settings)
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_artifact(client, "card_fraud", registered.version, Path(tmp))
        model = load_served_model(folder, result.model.artifact_sha256)
    # Per partition: a served model may be dynamically quantized (int8, scaling activations
    # per batch), so
    # its scores depend on which rows are scored together.
    bounds = np.cumsum([0] + [p.rows for p in result.parts])
    expected = np.vstack(
        [model.predict_proba(frame.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    )
    np.testing.assert_allclose(scored[["p_0", "p_1"]].to_numpy(), expected, rtol=1e-5, atol=1e-6)

    again = _score(registered, data, rows_per_partition=10_000)
    assert again.output_uri == result.output_uri
    assert all(part.seconds == 0.0 for part in again.parts), "a re-run keeps written parts"
