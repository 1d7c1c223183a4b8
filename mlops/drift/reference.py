"""The reference side of every drift test, computed once per model version and cached.

Each drift window is compared with the same reference (what the champion was trained
on), so whatever a test needs from the reference is computed once here: the sorted
finite values and the standard deviation of each numeric column (Kolmogorov-Smirnov,
Wasserstein), value counts of categorical and few-valued numeric columns (chi-square,
Z-test, Jensen-Shannon), the same for the predicted probability, and the model's
quality on the reference when it holds labels: ROC AUC with its DeLong variance,
accuracy and the class counts, which the performance alarm's confidence bound needs.

The quality must be measured on rows the model did not learn from: a training set
scored by its own model is optimistic (a higher ROC AUC than live traffic can ever
reach), which reads as a performance drop on every window. A frame that marks its
holdout rows in the boolean column `PERFORMANCE_ROWS` (`mlops.monitoring` does) has
its quality measured on those rows only; the drift statistics use every row.

On disk a reference is a folder `<cache>/<reference_id>--<key>/` with `meta.json` (sizes,
std, counts, columns) and `values.npy` (all sorted numeric values, concatenated); `key`
digests the columns and the format version, so one reference id can be cached for
several column sets. Folders are written under a temporary name and renamed, so a
reader never sees half a cache entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from mlops.drift.columns import DriftColumns
from mlops.drift.errors import DriftInputError, ReferenceCacheError
from mlops.drift.methods import FEW_NUMERIC_VALUES, FloatArray
from mlops.drift.performance import PerformanceMetrics, labelled_rows, measure_performance

FORMAT_VERSION = 2
"""2: the quality carries its DeLong variance and is measured on the holdout rows; a
version-1 cache (quality measured on training rows) is not read, it is rebuilt."""
PERFORMANCE_ROWS = "_drift_performance_rows"
"""Optional boolean column of a reference frame: the rows (its holdout) whose labels
measure the reference quality."""
META_FILE = "meta.json"
VALUES_FILE = "values.npy"
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NumericReference:
    """What the numeric tests need from one reference column (finite values only)."""

    sorted_values: FloatArray
    std: float
    """`np.std` of the values in their original order and dtype, as Evidently takes it."""
    n_unique: int
    counts: Mapping[Hashable, int] | None
    """Value counts when the column has at most 5 distinct values (tested as categories)."""

    @property
    def rows(self) -> int:
        """Finite values of the column."""
        return int(self.sorted_values.size)


@dataclass(frozen=True)
class CategoricalReference:
    """Value counts of one reference column (missing values dropped)."""

    rows: int
    counts: Mapping[Hashable, int]


@dataclass(frozen=True)
class ReferenceStats:
    """Everything a drift window is compared with, for one reference and column set."""

    reference_id: str
    columns: DriftColumns
    rows: int
    numeric: Mapping[str, NumericReference]
    categorical: Mapping[str, CategoricalReference]
    prediction: NumericReference | None = None
    performance: PerformanceMetrics | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def cache_key(self) -> str:
        """The folder name of this reference in a cache directory."""
        return cache_key(self.reference_id, self.columns)


def reference_id_for(frame: pd.DataFrame, columns: DriftColumns) -> str:
    """A content hash of the reference's relevant columns (when no lineage id is at hand)."""
    names = [*columns.features, *(c for c in (columns.prediction, columns.label) if c)]
    present = [c for c in names if c in frame.columns]
    digest = hashlib.sha256(json.dumps(present).encode())
    digest.update(pd.util.hash_pandas_object(frame[present], index=False).to_numpy().tobytes())
    return f"sha256-{digest.hexdigest()[:32]}"


def cache_key(reference_id: str, columns: DriftColumns) -> str:
    """`<reference_id>--<digest of columns and format>`; refuses ids unsafe as folder names."""
    if not _REFERENCE_ID.match(reference_id):
        raise DriftInputError(
            f"reference id {reference_id!r} must match {_REFERENCE_ID.pattern} "
            "(it names a cache folder)"
        )
    spec = json.dumps([FORMAT_VERSION, columns.model_dump(mode="json")], sort_keys=True)
    return f"{reference_id}--{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


def build_reference(
    frame: pd.DataFrame,
    columns: DriftColumns,
    *,
    reference_id: str | None = None,
    decision_threshold: float = 0.5,
) -> ReferenceStats:
    """Compute the reference statistics of a training snapshot.

    Args:
        frame: the reference rows (the champion's training or holdout data).
        columns: the features by kind, and the prediction / label columns if the frame
            holds them (the reference's performance is then measured too: on the rows
            marked in the `PERFORMANCE_ROWS` column when the frame has it, else on all
            labelled rows, which overrates the model if it was trained on them).
        reference_id: names the reference in the cache (e.g. the snapshot's sha256 from
            the model's lineage tags); default: a content hash of the frame.
        decision_threshold: probability above which a row counts as positive.

    Raises:
        DriftInputError: a feature is missing, a numeric column is not numeric, or a
            column has no usable value (Evidently refuses such a column as well).
    """
    missing = [c for c in columns.features if c not in frame.columns]
    if missing:
        raise DriftInputError(f"reference lacks the columns {missing}")
    ref_id = reference_id or reference_id_for(frame, columns)
    cache_key(ref_id, columns)  # validate the id early
    numeric = {c: numeric_reference(frame[c], c) for c in columns.numeric}
    categorical = {c: categorical_reference(frame[c], c) for c in columns.categorical}
    prediction = None
    performance = None
    if columns.prediction is not None and columns.prediction in frame.columns:
        prediction = numeric_reference(frame[columns.prediction], columns.prediction)
        if columns.label is not None and columns.label in frame.columns:
            measured = frame
            if PERFORMANCE_ROWS in frame.columns:
                measured = frame[frame[PERFORMANCE_ROWS].astype(bool)]
            else:
                logger.info("reference quality measured on all its rows (no holdout marked)")
            probabilities, labels = labelled_rows(measured, columns.prediction, columns.label)
            if labels.size:
                performance = measure_performance(probabilities, labels, decision_threshold)
    return ReferenceStats(
        reference_id=ref_id,
        columns=columns,
        rows=len(frame),
        numeric=numeric,
        categorical=categorical,
        prediction=prediction,
        performance=performance,
    )


def numeric_reference(series: pd.Series, name: str) -> NumericReference:
    """Sorted finite values, std and (few) value counts of a numeric column."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        raise DriftInputError(f"column {name!r} is declared numeric but has dtype {series.dtype}")
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    clean = series if finite.all() else series.replace([-np.inf, np.inf], np.nan).dropna()
    if clean.empty:
        raise DriftInputError(f"column {name!r} has no finite value in the reference")
    sorted_values = np.sort(values[finite])
    unique, counts = np.unique(sorted_values, return_counts=True)
    few = unique.size <= FEW_NUMERIC_VALUES
    return NumericReference(
        sorted_values=sorted_values,
        std=float(np.std(clean)),
        n_unique=int(unique.size),
        counts=dict(zip(unique.tolist(), counts.tolist(), strict=True)) if few else None,
    )


def categorical_reference(series: pd.Series, name: str) -> CategoricalReference:
    """Value counts of a categorical column, missing values dropped."""
    counts = value_counts(series)
    if not counts:
        raise DriftInputError(f"column {name!r} has no value in the reference")
    return CategoricalReference(rows=sum(counts.values()), counts=counts)


def value_counts(series: pd.Series) -> dict[Hashable, int]:
    """Counts of the observed values, missing (and infinite) dropped, keys as plain Python.

    Keys are made JSON-friendly (numpy scalars to Python, other objects to text) the same
    way for the reference and every window, so a cached reference matches live values.
    """
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        series = series.replace([-np.inf, np.inf], np.nan)
    counted = series.value_counts(dropna=True, sort=False)
    counts: dict[Hashable, int] = {}
    for key, count in zip(counted.index.tolist(), counted.to_numpy().tolist(), strict=True):
        if count > 0:
            plain = _plain(key)
            counts[plain] = counts.get(plain, 0) + int(count)
    return counts


def _plain(value: Any) -> Hashable:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def save_reference(stats: ReferenceStats, directory: Path) -> Path:
    """Write a reference into a cache directory (atomically); returns its folder."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / stats.cache_key
    numeric_items = list(stats.numeric.items())
    if stats.prediction is not None:
        numeric_items.append(("", stats.prediction))
    offsets = np.cumsum([0, *(ref.rows for _, ref in numeric_items)]).tolist()
    values = (
        np.concatenate([ref.sorted_values for _, ref in numeric_items])
        if numeric_items
        else np.empty(0, dtype=np.float64)
    )
    meta = {
        "format_version": FORMAT_VERSION,
        "reference_id": stats.reference_id,
        "columns": stats.columns.model_dump(mode="json"),
        "rows": stats.rows,
        "created_at": stats.created_at.isoformat(),
        "numeric": [
            _numeric_meta(name, ref, offsets[i]) for i, (name, ref) in enumerate(numeric_items)
        ],
        "categorical": [
            {"column": name, "rows": ref.rows, "counts": _pairs(ref.counts)}
            for name, ref in stats.categorical.items()
        ],
        "performance": None if stats.performance is None else stats.performance.model_dump(),
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{stats.cache_key}-", dir=directory))
    try:
        np.save(staging / VALUES_FILE, values, allow_pickle=False)
        (staging / META_FILE).write_text(json.dumps(meta))
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / META_FILE).exists():
                raise
            logger.debug("reference %s was cached meanwhile by another process", target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def load_reference(directory: Path, reference_id: str, columns: DriftColumns) -> ReferenceStats:
    """Read a cached reference.

    Raises:
        ReferenceCacheError: it is not cached, or the files are unreadable or of another
            format version.
    """
    folder = directory / cache_key(reference_id, columns)
    try:
        meta = json.loads((folder / META_FILE).read_text())
        values = np.load(folder / VALUES_FILE, allow_pickle=False)
    except FileNotFoundError as exc:
        raise ReferenceCacheError(
            f"reference {reference_id!r} is not cached in {directory}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ReferenceCacheError(f"cached reference {folder} is unreadable: {exc}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise ReferenceCacheError(
            f"cached reference {folder} has format {meta.get('format_version')}, "
            f"expected {FORMAT_VERSION}"
        )
    try:
        numeric = {m["column"]: _numeric_from_meta(m, values) for m in meta["numeric"]}
        prediction = numeric.pop("", None)
        stats = ReferenceStats(
            reference_id=meta["reference_id"],
            columns=DriftColumns.model_validate(meta["columns"]),
            rows=int(meta["rows"]),
            numeric=numeric,
            categorical={
                m["column"]: CategoricalReference(rows=int(m["rows"]), counts=_counts(m["counts"]))
                for m in meta["categorical"]
            },
            prediction=prediction,
            performance=None
            if meta["performance"] is None
            else PerformanceMetrics.model_validate(meta["performance"]),
            created_at=datetime.fromisoformat(meta["created_at"]),
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise ReferenceCacheError(f"cached reference {folder} is malformed: {exc}") from exc
    if stats.columns != columns or set(stats.numeric) != set(columns.numeric):
        raise ReferenceCacheError(f"cached reference {folder} holds other columns")
    return stats


def load_or_build_reference(
    directory: Path,
    reference_id: str,
    columns: DriftColumns,
    load_frame: Callable[[], pd.DataFrame],
    *,
    decision_threshold: float = 0.5,
) -> ReferenceStats:
    """The cached reference, or build it from `load_frame()` and cache it.

    `load_frame` is only called on a cache miss, so a monitor run that finds the cache
    never reads the training snapshot.
    """
    try:
        return load_reference(directory, reference_id, columns)
    except ReferenceCacheError as exc:
        logger.info("building reference statistics: %s", exc)
    stale = directory / cache_key(reference_id, columns)
    if stale.exists():  # unreadable or malformed: replace it rather than rebuild every run
        shutil.rmtree(stale, ignore_errors=True)
    stats = build_reference(
        load_frame(), columns, reference_id=reference_id, decision_threshold=decision_threshold
    )
    save_reference(stats, directory)
    return stats


def _numeric_meta(name: str, ref: NumericReference, offset: int) -> dict[str, Any]:
    return {
        "column": name,
        "offset": offset,
        "rows": ref.rows,
        "std": ref.std,
        "n_unique": ref.n_unique,
        "counts": None if ref.counts is None else _pairs(ref.counts),
    }


def _numeric_from_meta(meta: Mapping[str, Any], values: FloatArray) -> NumericReference:
    start = int(meta["offset"])
    sorted_values = values[start : start + int(meta["rows"])]
    if sorted_values.size != int(meta["rows"]):
        raise ValueError(f"values of {meta['column']!r} are truncated")
    return NumericReference(
        sorted_values=sorted_values,
        std=float(meta["std"]),
        n_unique=int(meta["n_unique"]),
        counts=None if meta["counts"] is None else _counts(meta["counts"]),
    )


def _pairs(counts: Mapping[Hashable, int]) -> list[list[Any]]:
    return [[key, count] for key, count in counts.items()]


def _counts(pairs: list[list[Any]]) -> dict[Hashable, int]:
    return {key: int(count) for key, count in pairs}
