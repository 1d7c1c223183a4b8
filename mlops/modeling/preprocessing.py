"""Input preprocessing learned on the training split and saved inside the model.

Serving feeds raw feature values, so everything that turns them into network inputs
(mean imputation, standardization statistics, category vocabularies) travels with the
weights instead of living in a separate pipeline that could drift from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops.dataset_spec import FeatureSchema
from mlops.errors import ConfigError
from mlops.modeling.data import TabularArrays

UNKNOWN_CODE = 0
"""Category code for a value unseen in training, or a missing one."""
LOG_SKEW_THRESHOLD = 2.0
"""A non-negative, non-binary column more skewed than this is log-scaled before
standardization: heavy tails (amounts, distances) otherwise squash most rows into a
sliver around the mean, and the network learned visibly worse thresholds on them."""


@dataclass(frozen=True)
class Preprocessor:
    """Numeric statistics and category vocabularies learned on the training split.

    Numeric features are passed on raw (non-finite values become NaN); the network
    applies ``sign(x) * log1p(|x|)`` to the `log_scaled` columns, standardizes with
    `means`/`stds` (statistics of the scaled values) and imputes the mean for NaN.
    Category values get codes ``1..len(vocabulary)`` in vocabulary order; anything else 0.
    """

    numeric: tuple[str, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    log_scaled: tuple[bool, ...]
    categorical: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...], ...]
    _indexes: tuple[pd.Index, ...] = field(init=False, repr=False, compare=False)
    _codes: tuple[dict[str, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (len(self.numeric) == len(self.means) == len(self.stds) == len(self.log_scaled)):
            raise ValueError("numeric columns, means, stds and log flags differ in length")
        if len(self.categorical) != len(self.vocabularies):
            raise ValueError("categorical columns and vocabularies differ in length")
        # Hash tables built once: serving encodes one row at a time.
        indexes = tuple(pd.Index(list(v), dtype=object) for v in self.vocabularies)
        object.__setattr__(self, "_indexes", indexes)
        codes = tuple({v: i + 1 for i, v in enumerate(vocab)} for vocab in self.vocabularies)
        object.__setattr__(self, "_codes", codes)

    @classmethod
    def fit(cls, frame: pd.DataFrame, schema: FeatureSchema) -> Preprocessor:
        """Learn log flags, means, standard deviations and vocabularies from training rows.

        A column with no finite value gets mean 0; a constant one gets std 1, so neither
        divides by zero. Vocabularies are the sorted distinct non-missing values as text.

        Raises:
            ConfigError: a schema column is missing from the frame, or the frame is empty.
        """
        _check_columns(frame, schema.columns)
        if frame.empty:
            raise ConfigError("cannot learn preprocessing from an empty frame")
        numbers = _numeric_matrix(frame, schema.numeric, np.float64)
        means: list[float] = []
        stds: list[float] = []
        log_scaled: list[bool] = []
        for j in range(numbers.shape[1]):
            finite = numbers[:, j][np.isfinite(numbers[:, j])]
            skewed = _heavy_tailed(finite)
            if skewed:
                finite = np.log1p(finite)
            log_scaled.append(skewed)
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size else 0.0
            means.append(mean)
            stds.append(std if std > 1e-12 and math.isfinite(std) else 1.0)
        vocabularies = tuple(
            tuple(sorted(_as_text(frame[c]).dropna().unique().tolist())) for c in schema.categorical
        )
        return cls(
            numeric=schema.numeric,
            means=tuple(means),
            stds=tuple(stds),
            log_scaled=tuple(log_scaled),
            categorical=schema.categorical,
            vocabularies=vocabularies,
        )

    @property
    def schema(self) -> FeatureSchema:
        """The feature columns this preprocessor reads."""
        return FeatureSchema(numeric=self.numeric, categorical=self.categorical)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Embedding table sizes: each vocabulary plus the unknown slot."""
        return tuple(len(v) + 1 for v in self.vocabularies)

    def transform(self, frame: pd.DataFrame) -> TabularArrays:
        """Raw numerics and category codes of a frame; other columns are ignored.

        Raises:
            ConfigError: a feature column is missing.
        """
        _check_columns(frame, (*self.numeric, *self.categorical))
        numeric = _numeric_matrix(frame, self.numeric)
        codes = np.empty((len(frame), len(self.categorical)), dtype=np.int64)
        for j, (column, index) in enumerate(zip(self.categorical, self._indexes, strict=True)):
            codes[:, j] = index.get_indexer(_as_text(frame[column]).to_numpy(dtype=object)) + 1
        return TabularArrays(numeric=numeric, categorical=codes)

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> TabularArrays:
        """Like `transform`, for JSON-like rows and without pandas: serving's request path.

        A key may hold None (missing); an absent key is an error, as a missing column is.
        Category values are matched by their text form, as in `transform`.

        Raises:
            ConfigError: a feature key is absent, or a numeric value is not a number.
        """
        rows = len(records)
        numeric = np.empty((rows, len(self.numeric)), dtype=np.float32)
        codes = np.empty((rows, len(self.categorical)), dtype=np.int64)
        try:
            for i, record in enumerate(records):
                numeric[i] = [_number(record[c]) for c in self.numeric]
                codes[i] = [
                    _code(table, record[c])
                    for c, table in zip(self.categorical, self._codes, strict=True)
                ]
        except KeyError as exc:
            raise ConfigError(f"feature {exc.args[0]!r} is missing from a record") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"a numeric feature holds a non-number: {exc}") from exc
        numeric[~np.isfinite(numeric)] = np.nan
        return TabularArrays(numeric=numeric, categorical=codes)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: statistics per numeric column, vocabulary per categorical column."""
        return {
            "numeric": [
                {"name": n, "mean": m, "std": s, "log1p": g}
                for n, m, s, g in zip(
                    self.numeric, self.means, self.stds, self.log_scaled, strict=True
                )
            ],
            "categorical": [
                {"name": n, "vocabulary": list(v)}
                for n, v in zip(self.categorical, self.vocabularies, strict=True)
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessor:
        """Rebuild from `to_json()` output."""
        numeric = data["numeric"]
        categorical = data["categorical"]
        return cls(
            numeric=tuple(str(c["name"]) for c in numeric),
            means=tuple(float(c["mean"]) for c in numeric),
            stds=tuple(float(c["std"]) for c in numeric),
            log_scaled=tuple(bool(c["log1p"]) for c in numeric),
            categorical=tuple(str(c["name"]) for c in categorical),
            vocabularies=tuple(tuple(str(v) for v in c["vocabulary"]) for c in categorical),
        )


def _heavy_tailed(values: npt.NDArray[np.float64]) -> bool:
    """Non-negative, more than two distinct values, and skewness above the threshold."""
    if values.size < 3 or values.min() < 0 or np.unique(values).size <= 2:
        return False
    std = values.std()
    if std <= 1e-12:
        return False
    skewness = float(np.mean(((values - values.mean()) / std) ** 3))
    return skewness > LOG_SKEW_THRESHOLD


def _check_columns(frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"feature columns {missing} are missing from the frame")


def _numeric_matrix(
    frame: pd.DataFrame, columns: tuple[str, ...], dtype: type[np.floating[Any]] = np.float32
) -> npt.NDArray[Any]:
    """[rows, columns] of `dtype`; missing and non-finite values become NaN."""
    if not columns:
        return np.empty((len(frame), 0), dtype=dtype)
    try:
        values = frame[list(columns)].to_numpy(dtype=dtype, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"numeric feature columns {list(columns)} hold non-numbers: {exc}"
        ) from exc
    values[~np.isfinite(values)] = np.nan
    return np.ascontiguousarray(values)


def _number(value: Any) -> float:
    return math.nan if value is None or value is pd.NA else float(value)


def _code(table: dict[str, int], value: Any) -> int:
    text = _text(value)
    return UNKNOWN_CODE if text is None else table.get(text, UNKNOWN_CODE)


def _text(value: Any) -> str | None:
    """The text pandas' "string" dtype gives a value (None for missing ones)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


def _as_text(series: pd.Series) -> pd.Series:
    """Category values as text, so `1`, `"1"` and `True`/"True" match their training form."""
    if isinstance(series.dtype, pd.StringDtype):
        return series
    return series.astype("string")
