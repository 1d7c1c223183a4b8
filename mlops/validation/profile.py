"""The reference profile: what "normal" data looked like, learned once from a trusted batch.

The validation suite is derived from this profile rather than written by hand, so a new
dataset gets a data contract from its spec and one reference batch. The profile is plain
JSON under `settings.references_dir`, so a person can read, diff and review it.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.dataset_spec import DatasetSpec, FeatureSchema, Task
from mlops.errors import ConfigError
from mlops.settings import Settings
from mlops.storage import Location, locate, write_text

logger = logging.getLogger(__name__)

RESERVED_PREFIX = "__"
"""Columns starting with this prefix belong to the pipeline (row numbers, failure notes)."""

RIGHT_SKEW = 1.0
"""Skewness above which a non-negative column is long-tailed: its range widens on a log scale."""

Category = bool | int | float | str
"""A JSON-native category value (numpy scalars are converted on the way in)."""


class ColumnKind(StrEnum):
    """The role a column plays in the dataset."""

    ENTITY = "entity"
    TIMESTAMP = "timestamp"
    LABEL = "label"
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class DtypeFamily(StrEnum):
    """Coarse dtype classes: an int column that gained nulls (float) is still numeric."""

    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    STRING = "string"
    OTHER = "other"


class ColumnProfile(BaseModel):
    """What one column of the reference batch looked like."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ColumnKind
    dtype: str
    family: DtypeFamily
    null_rate: float
    min: float | None = None
    max: float | None = None
    right_skewed: bool = False
    categories: tuple[Category, ...] | None = None


class ReferenceProfile(BaseModel):
    """The learned data contract of one dataset; the validation suite is built from it."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    entity: str
    timestamp: str
    label: str
    task: Task
    feature_schema: FeatureSchema
    columns: tuple[ColumnProfile, ...]
    label_classes: tuple[int, ...] | tuple[str, ...]
    rows: int
    reference_sha256: str
    created_at: datetime

    def column(self, name: str) -> ColumnProfile:
        """The profile of one column.

        Raises:
            KeyError: the column is not part of the profile.
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


def dtype_family(series: pd.Series) -> DtypeFamily:
    """Classify a column's dtype; object columns are classified by their values."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return dtype_family(pd.Series(dtype.categories))
    if pd.api.types.is_bool_dtype(dtype):
        return DtypeFamily.BOOLEAN
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DtypeFamily.DATETIME
    if pd.api.types.is_numeric_dtype(dtype):
        return DtypeFamily.NUMERIC
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("string", "empty"):
            return DtypeFamily.STRING
        if inferred == "boolean":
            return DtypeFamily.BOOLEAN
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return DtypeFamily.NUMERIC
        if inferred in ("datetime", "datetime64"):
            return DtypeFamily.DATETIME
    return DtypeFamily.OTHER


def parse_timestamps(series: pd.Series) -> pd.Series:
    """Timestamps as naive UTC `datetime64`; unparseable text becomes NaT.

    CSV batches carry ISO 8601 text, parquet batches real datetimes (often timezone
    aware): both compare and de-duplicate the same way once parsed.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series
    parsed = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
    return parsed.dt.tz_localize(None)


def learn_profile(
    spec: DatasetSpec, frame: pd.DataFrame, reference_sha256: str
) -> ReferenceProfile:
    """Learn the data contract from a trusted reference batch.

    A reference that is itself broken would bake its defects into every later check, so
    it is refused outright instead.

    Raises:
        ConfigError: the frame is empty or lacks spec columns, has null or unparseable
            keys, duplicate (entity, timestamp) keys, null labels, or a label domain that
            does not fit the task.
    """
    if frame.empty:
        raise ConfigError(f"dataset {spec.name!r}: the reference batch is empty")
    schema = spec.resolve_schema(frame)
    _refuse_bad_keys(spec, frame)
    classes = _label_classes(spec, frame[spec.label])
    columns = [
        _profile_column(spec.entity, ColumnKind.ENTITY, frame[spec.entity]),
        _profile_column(spec.timestamp, ColumnKind.TIMESTAMP, frame[spec.timestamp]),
        _profile_column(spec.label, ColumnKind.LABEL, frame[spec.label]),
        *(_profile_column(c, ColumnKind.NUMERIC, frame[c]) for c in schema.numeric),
        *(_profile_column(c, ColumnKind.CATEGORICAL, frame[c]) for c in schema.categorical),
    ]
    profile = ReferenceProfile(
        dataset=spec.name,
        entity=spec.entity,
        timestamp=spec.timestamp,
        label=spec.label,
        task=spec.task,
        feature_schema=schema,
        columns=tuple(columns),
        label_classes=classes,
        rows=len(frame),
        reference_sha256=reference_sha256,
        created_at=datetime.now(UTC),
    )
    logger.info(
        "learned reference profile of %r from %s: %d rows, %d numeric and %d categorical features",
        spec.name,
        reference_sha256[:12],
        len(frame),
        len(schema.numeric),
        len(schema.categorical),
    )
    return profile


def profile_path(dataset: str, settings: Settings) -> Location:
    """Where the reference profile of a dataset lives (the state dir, or the bucket)."""
    return locate(settings, settings.references_dir / dataset / "profile.json")


def save_profile(profile: ReferenceProfile, settings: Settings) -> Location:
    """Store the profile atomically, so a crash never leaves half a contract behind."""
    path = profile_path(profile.dataset, settings)
    write_text(path, profile.model_dump_json(indent=2))
    return path


def load_profile(spec: DatasetSpec, settings: Settings) -> ReferenceProfile | None:
    """The stored profile of the spec's dataset, or None when none was learned yet.

    Raises:
        ConfigError: the file is corrupt, or the spec's roles changed since it was learned
            (a profile of other columns would validate the wrong things).
    """
    path = profile_path(spec.name, settings)
    if not path.is_file():
        return None
    try:
        profile = ReferenceProfile.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as exc:
        raise ConfigError(f"reference profile {path} is corrupt: {exc}") from exc
    learned = (profile.entity, profile.timestamp, profile.label, profile.task)
    wanted = (spec.entity, spec.timestamp, spec.label, spec.task)
    if learned != wanted:
        raise ConfigError(
            f"reference profile {path} was learned for (entity, timestamp, label, task) "
            f"{learned}, but the spec now says {wanted}: re-learn it (`mlops data profile`)"
        )
    return profile


def _refuse_bad_keys(spec: DatasetSpec, frame: pd.DataFrame) -> None:
    for column in (spec.entity, spec.timestamp, spec.label):
        nulls = int(frame[column].isna().sum())
        if nulls:
            raise ConfigError(
                f"dataset {spec.name!r}: the reference has {nulls} null values in {column!r}"
            )
    stamps = parse_timestamps(frame[spec.timestamp])
    unparseable = int(stamps.isna().sum())
    if unparseable:
        raise ConfigError(
            f"dataset {spec.name!r}: {unparseable} values of timestamp column "
            f"{spec.timestamp!r} are not ISO 8601 timestamps"
        )
    keys = pd.DataFrame({"entity": frame[spec.entity].to_numpy(), "ts": stamps.to_numpy()})
    duplicated = keys.duplicated(keep=False)
    if duplicated.any():
        first = keys[duplicated].iloc[0]
        raise ConfigError(
            f"dataset {spec.name!r}: the reference has {int(duplicated.sum())} rows with "
            f"duplicate ({spec.entity}, {spec.timestamp}) keys, e.g. "
            f"({first['entity']}, {first['ts']})"
        )


def _label_classes(spec: DatasetSpec, labels: pd.Series) -> tuple[int, ...] | tuple[str, ...]:
    family = dtype_family(labels)
    values = labels.dropna().unique()
    classes: tuple[int, ...] | tuple[str, ...]
    if family in (DtypeFamily.NUMERIC, DtypeFamily.BOOLEAN):
        numbers = np.asarray(values, dtype=float)
        if not np.all(np.mod(numbers, 1) == 0):
            raise ConfigError(
                f"dataset {spec.name!r}: label {spec.label!r} has non-integer values; "
                "a classification label needs integer or text classes"
            )
        classes = tuple(sorted({int(v) for v in numbers}))
    elif family is DtypeFamily.STRING:
        classes = tuple(sorted({str(v) for v in values}))
    else:
        raise ConfigError(
            f"dataset {spec.name!r}: label {spec.label!r} has dtype {labels.dtype}; "
            "use integer or text classes"
        )
    if spec.task is Task.BINARY and len(classes) != 2:
        raise ConfigError(
            f"dataset {spec.name!r}: a binary task needs exactly 2 label classes in the "
            f"reference, found {len(classes)}: {list(classes)[:10]}"
        )
    if spec.task is Task.MULTICLASS and len(classes) < 2:
        raise ConfigError(
            f"dataset {spec.name!r}: a multiclass task needs at least 2 label classes in the "
            f"reference, found {list(classes)}"
        )
    return classes


def _profile_column(name: str, kind: ColumnKind, series: pd.Series) -> ColumnProfile:
    family = dtype_family(series)
    low = high = None
    skewed = False
    categories = None
    if kind is ColumnKind.NUMERIC:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            skewed = low >= 0 and bool(pd.Series(finite).skew() > RIGHT_SKEW)
    elif kind is ColumnKind.CATEGORICAL:
        categories = _categories(series)
    return ColumnProfile(
        name=name,
        kind=kind,
        dtype=str(series.dtype),
        family=family,
        null_rate=float(series.isna().mean()),
        min=low,
        max=high,
        right_skewed=skewed,
        categories=categories,
    )


def _categories(series: pd.Series) -> tuple[Category, ...]:
    values = {_native(v) for v in series.dropna().unique()}
    return tuple(sorted(values, key=lambda v: (type(v).__name__, v)))


def _native(value: object) -> Category:
    """A JSON-native scalar: numpy scalars unwrapped, anything else as text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else value
    return str(value)
