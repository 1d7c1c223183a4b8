"""Dataset specs: any tabular dataset runs from a YAML file, mistakes get clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.dataset_spec import DatasetSpec, Task, load_spec
from mlops.errors import ConfigError


def _frame(rows: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user": [f"u{i % 7}" for i in range(rows)],
            "ts": pd.date_range("2026-01-01", periods=rows, freq="h", tz="UTC"),
            "y": rng.integers(0, 3, rows),
            "height": rng.normal(170, 10, rows),
            "visits": rng.poisson(3, rows),
            "colour": rng.choice(["red", "green"], rows),
            "request_id": [f"r{i}" for i in range(rows)],
            "seen": pd.date_range("2025-01-01", periods=rows, freq="D"),
        }
    )


VISITS = DatasetSpec(name="visits", entity="user", timestamp="ts", label="y", task=Task.MULTICLASS)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_load_spec_resolves_relative_source_against_the_spec_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: visits\nsource: {path: data/batch.parquet}\n"
        "entity: user\ntimestamp: ts\nlabel: y\ntask: multiclass\n",
    )
    spec = load_spec(path)
    assert spec.task is Task.MULTICLASS
    assert spec.source is not None and spec.source.path == tmp_path / "data" / "batch.parquet"


def test_features_are_inferred_by_dtype_and_exclusions_apply() -> None:
    spec = VISITS.model_copy(update={"exclude": ("request_id", "seen")})
    schema = spec.resolve_schema(_frame())
    assert schema.numeric == ("height", "visits")
    assert schema.categorical == ("colour",)


def test_inferred_identifier_column_is_refused_with_advice() -> None:
    spec = VISITS
    frame = pd.concat([_frame()] * 30, ignore_index=True)
    frame["request_id"] = [f"r{i}" for i in range(len(frame))]
    with pytest.raises(ConfigError, match="request_id.*exclude"):
        spec.resolve_schema(frame)


def test_explicit_features_must_exist_and_be_usable() -> None:
    spec = VISITS.model_copy(update={"features": ("height", "missing_col")})
    with pytest.raises(ConfigError, match="missing_col"):
        spec.resolve_schema(_frame())
    dated = spec.model_copy(update={"features": ("height", "seen")})
    with pytest.raises(ConfigError, match="'seen' has dtype datetime64"):
        dated.resolve_schema(_frame())


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: Bad Name\nentity: a\ntimestamp: b\nlabel: c\ntask: binary\n", "name must match"),
        ("name: x\nentity: a\ntimestamp: a\nlabel: c\ntask: binary\n", "three different columns"),
        ("name: x\nentity: a\ntimestamp: b\nlabel: c\ntask: regression\n", "task"),
        ("name: x\nentity: a\ntimestamp: b\nlabel: c\ntask: binary\nsource: {}\n", "exactly one"),
        ("name: x\nentity: a\ntimestamp: b\nlabel: c\ntask: binary\ncolour: red\n", "colour"),
        (
            "name: x\nentity: a\ntimestamp: b\nlabel: c\ntask: binary\n"
            "source: {table: 'x; drop'}\n",
            "schema.name",
        ),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_invalid_specs_name_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_spec(_write(tmp_path, text))


def test_missing_spec_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
