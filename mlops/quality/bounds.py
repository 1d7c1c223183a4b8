"""Per-feature counts of nulls and contract violations in a batch of served rows.

What serving exports as `mlops_feature_null_total` and friends: cheap enough for every
request (one numpy conversion per batch, no pandas), so a dashboard sees a broken
pipe within a scrape, long before the hourly drift monitor judges the window.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mlops.settings import Settings, ValidationSettings
from mlops.validation.profile import ColumnKind, ReferenceProfile, profile_path
from mlops.validation.suite import widen_range

logger = logging.getLogger(__name__)

Counts = npt.NDArray[np.int64]


def load_served_profile(settings: Settings, model_name: str) -> ReferenceProfile | None:
    """The data contract of the dataset a served model learned from, or None.

    The dataset is `quality.serving_dataset`, or the model's own name (the training
    pipeline registers a dataset's model under the dataset's name). A missing or
    unreadable profile only means fewer metrics: it is logged, never raised.
    """
    dataset = settings.quality.serving_dataset or model_name
    path = profile_path(dataset, settings)
    try:
        if not path.is_file():
            logger.info("no reference profile of %r: serving counts nulls only", dataset)
            return None
        return ReferenceProfile.model_validate_json(path.read_text())
    except Exception as exc:  # metrics must never stop the service from starting
        logger.warning("reference profile %s unreadable, counting nulls only: %r", path, exc)
        return None


@dataclass(frozen=True)
class BatchCounts:
    """Per-feature counts of one batch (aligned with `FeatureBounds.numeric` / `.categorical`)."""

    rows: int
    numeric_nulls: Counts
    out_of_range: Counts
    categorical_nulls: Counts
    unseen: Counts


@dataclass(frozen=True)
class FeatureBounds:
    """The served model's features with the ranges and categories of the data contract.

    A feature the profile does not know (or no profile at all) is still counted for
    nulls; it is never out of range.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    categories: tuple[frozenset[str] | None, ...]
    _numbers: Callable[[Mapping[str, Any]], tuple[Any, ...]] = field(repr=False, compare=False)
    _texts: Callable[[Mapping[str, Any]], tuple[Any, ...]] = field(repr=False, compare=False)

    @classmethod
    def build(
        cls,
        numeric: Sequence[str],
        categorical: Sequence[str],
        profile: ReferenceProfile | None,
        validation: ValidationSettings,
    ) -> FeatureBounds:
        """Bounds of the given features from the profile (unbounded where it has none)."""
        low = np.full(len(numeric), -np.inf)
        high = np.full(len(numeric), np.inf)
        learned: dict[str, Any] = {}
        if profile is not None:
            learned = {c.name: c for c in profile.columns}
        for j, name in enumerate(numeric):
            column = learned.get(name)
            if column is None or column.kind is not ColumnKind.NUMERIC:
                continue
            if column.min is not None and column.max is not None:
                low[j], high[j] = widen_range(
                    column.min, column.max, validation.range_margin, log_scale=column.right_skewed
                )
        categories: list[frozenset[str] | None] = []
        for name in categorical:
            column = learned.get(name)
            known = None if column is None or not column.categories else column.categories
            categories.append(None if known is None else frozenset(str(c) for c in known))
        return cls(
            numeric=tuple(numeric),
            categorical=tuple(categorical),
            low=low,
            high=high,
            categories=tuple(categories),
            _numbers=_getter(tuple(numeric)),
            _texts=_getter(tuple(categorical)),
        )

    def count(self, rows: Sequence[Mapping[str, Any]]) -> BatchCounts:
        """Nulls and violations per feature in `rows` (a missing key counts as null)."""
        n = len(rows)
        numbers = self._matrix(rows)
        missing = np.isnan(numbers)
        with np.errstate(invalid="ignore"):
            outside = ~missing & ((numbers < self.low) | (numbers > self.high))
        cat_nulls = np.zeros(len(self.categorical), dtype=np.int64)
        unseen = np.zeros(len(self.categorical), dtype=np.int64)
        if self.categorical and n:
            texts = self._texts
            columns = zip(*(texts(row) for row in rows), strict=True)
            for j, values in enumerate(columns):
                known = self.categories[j]
                nulls = sum(1 for v in values if v is None)
                cat_nulls[j] = nulls
                if known is not None:
                    unseen[j] = sum(1 for v in values if v is not None and str(v) not in known)
        return BatchCounts(
            rows=n,
            numeric_nulls=missing.sum(axis=0).astype(np.int64),
            out_of_range=outside.sum(axis=0).astype(np.int64),
            categorical_nulls=cat_nulls,
            unseen=unseen,
        )

    def _matrix(self, rows: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        k = len(self.numeric)
        if not k or not rows:
            return np.empty((len(rows), k), dtype=np.float64)
        numbers = self._numbers
        try:
            return np.array([numbers(row) for row in rows], dtype=np.float64).reshape(-1, k)
        except (TypeError, ValueError):  # text where a number was: counted as missing
            return np.array(
                [[_number(v) for v in numbers(row)] for row in rows], dtype=np.float64
            ).reshape(-1, k)


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values of `names` as a tuple (None for an absent key), in one call."""
    if not names:
        return lambda row: ()
    if len(names) == 1:
        name = names[0]
        return lambda row: (row.get(name),)
    get = operator.itemgetter(*names)

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        try:
            found: tuple[Any, ...] = get(row)
        except KeyError:
            return tuple(row.get(name) for name in names)
        return found

    return values


def _number(value: Any) -> float:
    if value is None or isinstance(value, str):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
