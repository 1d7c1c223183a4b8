"""Datasets as configuration: a YAML spec is all a new tabular dataset needs.

A spec names the source, the entity, timestamp and label columns and the task;
feature columns default to every other numeric or categorical column of the data.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlops.errors import ConfigError

MAX_INFERRED_CATEGORIES = 1000
_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class Task(StrEnum):
    """The prediction task; it fixes the label domain and the metrics."""

    BINARY = "binary"
    MULTICLASS = "multiclass"


class SourceSpec(BaseModel):
    """Where a batch comes from: a parquet/CSV file, or a PostgreSQL table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path | None = None
    table: str | None = Field(
        default=None,
        description="`schema.table` in the database named by MLOPS_DATABASE_URL.",
    )

    @field_validator("table")
    @classmethod
    def _plain_identifier(cls, table: str | None) -> str | None:
        if table is not None and not _IDENTIFIER.match(table):
            raise ValueError(f"table must be `name` or `schema.name`, got {table!r}")
        return table

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceSpec:
        if (self.path is None) == (self.table is None):
            raise ValueError("a source names exactly one of `path` or `table`")
        return self


class DatasetSpec(BaseModel):
    """The contract between a tabular dataset and the pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Slug used to name the Feast objects and the registered model.")
    description: str = ""
    source: SourceSpec | None = None
    entity: str
    timestamp: str
    label: str
    task: Task
    features: tuple[str, ...] | None = Field(
        default=None,
        description="Feature columns; default: every other numeric or categorical column.",
    )
    categorical: tuple[str, ...] | None = Field(
        default=None,
        description="Columns to treat as categories; default: the non-numeric feature columns.",
    )
    exclude: tuple[str, ...] = Field(
        default=(),
        description="Columns that are never features (ids, free text) when features are inferred.",
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _SLUG.match(name):
            raise ValueError(
                f"name must match {_SLUG.pattern} (it names Feast objects), got {name!r}"
            )
        return name

    @model_validator(mode="after")
    def _distinct_roles(self) -> DatasetSpec:
        roles = [self.entity, self.timestamp, self.label]
        if len(set(roles)) != 3:
            raise ValueError("entity, timestamp and label must be three different columns")
        overlap = set(self.features or ()) & set(roles)
        if overlap:
            raise ValueError(
                f"features must not include the entity, timestamp or label: {sorted(overlap)}"
            )
        unknown = set(self.categorical or ()) - set(self.features or ())
        if self.features is not None and unknown:
            raise ValueError(f"categorical columns not among the features: {sorted(unknown)}")
        return self

    @property
    def key_columns(self) -> tuple[str, str]:
        """The columns that identify a row: (entity, timestamp)."""
        return (self.entity, self.timestamp)

    def with_source_path(self, path: Path) -> DatasetSpec:
        """The same spec reading from another file (what `--data PATH` does)."""
        return self.model_copy(update={"source": SourceSpec(path=path)})

    def resolve_schema(self, frame: pd.DataFrame) -> FeatureSchema:
        """Decide the numeric and categorical feature columns for this data.

        Raises:
            ConfigError: a column named by the spec is missing, or a declared feature is
                neither numeric nor categorical (a datetime, say).
        """
        missing = [c for c in (*self.key_columns, self.label) if c not in frame.columns]
        if missing:
            raise ConfigError(
                f"dataset {self.name!r}: columns {missing} named by the spec are missing"
            )
        roles = {self.entity, self.timestamp, self.label}
        if self.features is not None:
            absent = [c for c in self.features if c not in frame.columns]
            if absent:
                raise ConfigError(f"dataset {self.name!r}: feature columns {absent} are missing")
            candidates = list(self.features)
        else:
            skipped = roles | set(self.exclude)
            candidates = [
                c for c in frame.columns if c not in skipped and not str(c).startswith("__")
            ]
        declared = set(self.categorical or ())
        numeric: list[str] = []
        categorical: list[str] = []
        for column in candidates:
            series = frame[column]
            if column in declared or _is_categorical(series):
                distinct = series.nunique(dropna=True)
                if column not in declared and distinct > MAX_INFERRED_CATEGORIES:
                    raise ConfigError(
                        f"dataset {self.name!r}: column {column!r} has {distinct} distinct values "
                        "and looks like an identifier; list it under `exclude` (or `categorical`)"
                    )
                categorical.append(column)
            elif pd.api.types.is_numeric_dtype(series):
                numeric.append(column)
            elif self.features is not None:
                raise ConfigError(
                    f"dataset {self.name!r}: feature {column!r} has dtype {series.dtype}, "
                    "which is neither numeric nor categorical"
                )
        if not numeric and not categorical:
            raise ConfigError(f"dataset {self.name!r}: no numeric or categorical feature columns")
        return FeatureSchema(numeric=tuple(numeric), categorical=tuple(categorical))


class FeatureSchema(BaseModel):
    """The resolved feature columns of a dataset, split by kind."""

    model_config = ConfigDict(frozen=True)

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """All feature columns, numeric first."""
        return (*self.numeric, *self.categorical)


def _is_categorical(series: pd.Series) -> bool:
    return bool(
        isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_object_dtype(series)
        or pd.api.types.is_string_dtype(series)
    )


def load_spec(path: Path) -> DatasetSpec:
    """Read and validate a dataset spec; a relative source path is relative to the spec file.

    Raises:
        ConfigError: the file is missing, is not YAML, or breaks the spec's rules.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"dataset spec not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"dataset spec {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"dataset spec {path} must be a mapping")
    try:
        spec = DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"dataset spec {path} is invalid:\n{exc}") from exc
    if spec.source and spec.source.path and not spec.source.path.is_absolute():
        spec = spec.with_source_path((path.parent / spec.source.path).resolve())
    return spec
