"""From a training-set frame to what the network eats: time-ordered splits, labels, arrays.

The split is by time because the model will score the future: a random split would let
the network peek at transactions after the ones it is judged on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops.dataset_spec import DatasetSpec, FeatureSchema, Task
from mlops.errors import ConfigError

logger = logging.getLogger(__name__)

ClassValue = int | str
"""A label value as the data has it: an integer code or a string name."""

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Splits:
    """Train, validation and holdout frames, in this order in time (no shared instant)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    holdout: pd.DataFrame

    @property
    def train_and_valid(self) -> pd.DataFrame:
        """What the final model is refitted on once early stopping chose the epoch count."""
        return pd.concat([self.train, self.valid], ignore_index=True)


def split_time_ordered(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    holdout_fraction: float = 0.2,
    validation_fraction: float = 0.2,
) -> Splits:
    """Cut a training set into train / valid / holdout by timestamp.

    Fractions are of the whole frame; the holdout is the latest slice and the validation
    slice sits just before it. Rows sharing a timestamp always land in the same split
    (a cut moves earlier to the first row of that instant), so every validation row is
    strictly later than every train row and every holdout row strictly later than both.

    Raises:
        ConfigError: fractions out of range, a missing timestamp or label, a split that
            would be empty, or a split lacking one of the frame's classes.
    """
    if not (0.0 < holdout_fraction < 1.0 and 0.0 < validation_fraction < 1.0):
        raise ConfigError(
            "holdout_fraction and validation_fraction must lie in (0, 1), got "
            f"{holdout_fraction} and {validation_fraction}"
        )
    if holdout_fraction + validation_fraction >= 1.0:
        raise ConfigError(
            f"holdout_fraction + validation_fraction must be < 1 to leave rows for training, "
            f"got {holdout_fraction + validation_fraction}"
        )
    for column in (spec.timestamp, spec.label):
        if column not in frame.columns:
            raise ConfigError(f"dataset {spec.name!r}: column {column!r} is missing")
        nulls = int(frame[column].isna().sum())
        if nulls:
            raise ConfigError(f"dataset {spec.name!r}: {nulls} rows have no {column!r}")

    ordered = frame.sort_values(spec.timestamp, kind="stable", ignore_index=True)
    stamps = ordered[spec.timestamp].to_numpy()
    rows = len(ordered)
    train_end = _instant_boundary(
        stamps, rows - round(rows * (holdout_fraction + validation_fraction))
    )
    valid_end = _instant_boundary(stamps, rows - round(rows * holdout_fraction))
    splits = Splits(
        train=ordered.iloc[:train_end].reset_index(drop=True),
        valid=ordered.iloc[train_end:valid_end].reset_index(drop=True),
        holdout=ordered.iloc[valid_end:].reset_index(drop=True),
    )
    classes = set(ordered[spec.label].unique().tolist())
    for name, part in (
        ("train", splits.train),
        ("valid", splits.valid),
        ("holdout", splits.holdout),
    ):
        if part.empty:
            raise ConfigError(
                f"dataset {spec.name!r}: the {name} split of {rows} rows is empty "
                f"(holdout_fraction={holdout_fraction}, validation_fraction="
                f"{validation_fraction}); more rows or distinct timestamps are needed"
            )
        missing = classes - set(part[spec.label].unique().tolist())
        if missing:
            raise ConfigError(
                f"dataset {spec.name!r}: the {name} split ({len(part)} rows, "
                f"{part[spec.timestamp].iloc[0]} .. {part[spec.timestamp].iloc[-1]}) lacks "
                f"class(es) {sorted(map(str, missing))}; more rows or other fractions are needed"
            )
    logger.info(
        "split %d rows of %s by time: train %d, valid %d, holdout %d",
        rows,
        spec.name,
        len(splits.train),
        len(splits.valid),
        len(splits.holdout),
    )
    return splits


def _instant_boundary(stamps: npt.NDArray[Any], cut: int) -> int:
    """Move a cut back to the first row of its instant so no instant spans two splits."""
    if cut <= 0 or cut >= len(stamps):
        return max(0, min(cut, len(stamps)))
    return int(np.searchsorted(stamps, stamps[cut], side="left"))


@dataclass(frozen=True)
class LabelEncoding:
    """Class values <-> output indices: sorted, so the same classes give the same order.

    Stored with the model so probabilities can be named and predictions decoded into the
    values the data uses (ints for a 0/1 label, strings for named classes).
    """

    classes: tuple[ClassValue, ...]

    @classmethod
    def fit(cls, labels: pd.Series | Sequence[Any], task: Task) -> LabelEncoding:
        """Learn the classes of a label column.

        Raises:
            ConfigError: missing labels, mixed ints and strings, non-integral numbers, or
                a class count that does not fit the task.
        """
        series = pd.Series(labels)
        nulls = int(series.isna().sum())
        if nulls:
            raise ConfigError(f"{nulls} rows have no label")
        values = {_class_value(v) for v in pd.unique(series)}
        kinds = {type(v) for v in values}
        if len(kinds) > 1:
            raise ConfigError(f"labels mix integers and strings: {sorted(map(str, values))[:10]}")
        classes = tuple(sorted(values))
        if task is Task.BINARY and len(classes) != 2:
            raise ConfigError(f"a binary task needs exactly 2 classes, found {list(classes)[:10]}")
        if len(classes) < 2:
            raise ConfigError(f"a classifier needs at least 2 classes, found {list(classes)}")
        return cls(classes)

    @property
    def kind(self) -> Literal["int", "str"]:
        """The Python type of the class values, as stored in the artifact."""
        return "str" if isinstance(self.classes[0], str) else "int"

    @property
    def n_classes(self) -> int:
        """How many logits the network outputs."""
        return len(self.classes)

    def encode(self, labels: pd.Series | Sequence[Any]) -> Int64Array:
        """Class values to indices.

        Raises:
            ConfigError: a missing label or a value that is not one of the classes.
        """
        series = pd.Series(labels)
        if self.kind == "int":
            if not pd.api.types.is_numeric_dtype(series):
                raise ConfigError(f"labels must be integers, got dtype {series.dtype}")
            numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
            integral = np.isfinite(numbers) & (numbers == np.round(numbers))
            keys = np.where(integral, numbers, 0.0).astype(np.int64)
            found = pd.Index(np.asarray(self.classes, dtype=np.int64)).get_indexer(keys)
            found[~integral] = -1
        else:
            texts = series.astype("string").astype(object)
            found = pd.Index(list(self.classes), dtype=object).get_indexer(texts)
        unknown = found < 0
        if unknown.any():
            examples = sorted({str(v) for v in series[unknown].head(50)})[:5]
            raise ConfigError(
                f"{int(unknown.sum())} labels are not among the classes {list(self.classes)}: "
                f"{examples}"
            )
        return np.asarray(found, dtype=np.int64)

    def decode(self, indices: npt.ArrayLike) -> npt.NDArray[Any]:
        """Indices to class values (an int64 array, or an object array of strings)."""
        table = np.asarray(self.classes, dtype=np.int64 if self.kind == "int" else object)
        decoded: npt.NDArray[Any] = table[np.asarray(indices, dtype=np.int64)]
        return decoded

    def to_json(self) -> dict[str, Any]:
        """The classes with their type, so a loaded model predicts `1`, not `"1"`."""
        return {"type": self.kind, "classes": list(self.classes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabelEncoding:
        """Rebuild from `to_json()` output, checking each class has the recorded type."""
        kind, classes = data["type"], list(data["classes"])
        wanted: type = {"int": int, "str": str}[kind]
        if not all(type(c) is wanted for c in classes):
            raise ValueError(f"label classes {classes} are not all of type {kind}")
        return cls(tuple(classes))


def _class_value(value: Any) -> ClassValue:
    if isinstance(value, bool | np.bool_ | int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        return value
    raise ConfigError(f"label value {value!r} is neither an integer nor a string")


@dataclass(frozen=True)
class TabularArrays:
    """A frame as arrays: raw numerics (NaN = missing), category codes, label indices.

    Numerics stay unscaled: the network standardizes them itself, so serving feeds raw
    values. Category code 0 means unknown or missing.
    """

    numeric: Float32Array
    categorical: Int64Array
    labels: Int64Array | None = None

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    def with_labels(self, labels: Int64Array) -> TabularArrays:
        """The same features with label indices attached (for training and evaluation)."""
        if len(labels) != len(self):
            raise ValueError(f"{len(labels)} labels for {len(self)} rows")
        return TabularArrays(self.numeric, self.categorical, np.asarray(labels, dtype=np.int64))


def as_training_frame(
    frame: pd.DataFrame, spec: DatasetSpec, schema: FeatureSchema
) -> pd.DataFrame:
    """A raw batch in the training-set layout: entity, timestamp, features, label.

    Numeric features become float64 and categorical ones pandas strings, as the feature
    store's training sets have them; handy for tests and benchmarks that skip Feast.
    """
    columns = [spec.entity, spec.timestamp, *schema.columns, spec.label]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"dataset {spec.name!r}: columns {missing} are missing")
    out = frame[columns].copy()
    for column in schema.numeric:
        out[column] = out[column].astype("float64")
    for column in schema.categorical:
        out[column] = out[column].astype("string")
    return out
