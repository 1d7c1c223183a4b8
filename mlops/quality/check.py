"""The data contract learned at ingestion, judging a window of served traffic.

Drift is a shifted distribution of valid data; a broken pipe (a feature suddenly all
null, a unit change, new categories, numbers arriving as text) is a data-quality
incident, and retraining on it would learn the breakage. `check_quality` runs the
champion's reference profile over the features of a window and names what broke.

Every check is a *share* of the window against a threshold, never "any bad row", so a
single noisy request does not raise an incident:

    <col>.exists      the feature is in the served rows at all
    <col>.dtype       share of non-null values of the wrong type (text where numbers were)
    <col>.not_null    null share above reference + tolerance + margin + a binomial bound
    <col>.in_range    share of numbers outside the learned range (widened as validation does)
    <col>.in_set      share of categories the reference never had

It is plain pandas/numpy (a 10k-row window takes milliseconds): the GX suite judges
batches row by row for quarantine, which a served window does not need.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlops.dataset_spec import FeatureSchema
from mlops.settings import QualitySettings, ValidationSettings
from mlops.validation.profile import ColumnKind, ColumnProfile, DtypeFamily, ReferenceProfile
from mlops.validation.suite import allowed_null_rate, widen_range

Example = bool | int | float | str | None
"""A JSON-native example value (numpy scalars are converted)."""


class QualityStatus(StrEnum):
    """The verdict on a window."""

    OK = "ok"
    DEGRADED = "degraded"
    INSUFFICIENT_DATA = "insufficient_data"


class FailedExpectation(BaseModel):
    """One expectation of the contract the window broke, with its evidence."""

    model_config = ConfigDict(frozen=True)

    name: str
    """Stable name, as in the validation suite: `amount.in_range`."""
    column: str
    check: str
    """exists | dtype | not_null | in_range | in_set"""
    observed: float
    """The share of the window's rows (or non-null values) that broke it."""
    threshold: float
    """The share above which the expectation fails."""
    expected: str
    """What the contract says, for people."""
    count: int
    """How many values broke it."""
    examples: tuple[Example, ...] = ()
    """A few offending values (most frequent first)."""

    def sentence(self) -> str:
        """A short clause for a reason line: `amount: 98.0% out of range [0, 1.3e+04]`."""
        return f"{self.column}: {self.observed:.1%} {_WHAT[self.check]} ({self.expected})"


_WHAT = {
    "exists": "of rows lack the feature",
    "dtype": "of values have the wrong type",
    "not_null": "null",
    "in_range": "out of range",
    "in_set": "unseen categories",
}


class DataQualityReport(BaseModel):
    """The contract's verdict on a window of served traffic."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    status: QualityStatus
    rows: int
    features: int
    """How many features were checked."""
    failing: tuple[FailedExpectation, ...] = ()

    @property
    def degraded(self) -> bool:
        """The window breaks the contract: a data-quality incident."""
        return self.status is QualityStatus.DEGRADED

    @property
    def broken_features(self) -> tuple[str, ...]:
        """The features with at least one failed expectation, in contract order."""
        return tuple(dict.fromkeys(f.column for f in self.failing))

    def reason(self) -> str:
        """One human sentence: what is wrong with the pipe (or that nothing is)."""
        if self.status is QualityStatus.INSUFFICIENT_DATA:
            return f"{self.rows} rows: too few to judge the data contract of {self.dataset!r}"
        if not self.failing:
            return f"{self.rows} rows meet the data contract of {self.dataset!r}"
        shown = "; ".join(f.sentence() for f in self.failing[:3])
        more = len(self.failing) - 3
        tail = f"; and {more} more" if more > 0 else ""
        return (
            f"live traffic breaks the data contract of {self.dataset!r} "
            f"({len(self.broken_features)} of {self.features} features): {shown}{tail}"
        )

    def failing_payload(self) -> list[dict[str, object]]:
        """The failed expectations as JSON (event payloads, flow results)."""
        return [f.model_dump(mode="json") for f in self.failing]

    def markdown(self) -> str:
        """A table of the failed expectations, for a Prefect artifact."""
        head = f"**{self.status.value}**: {self.reason()}\n\n"
        if not self.failing:
            return head
        lines = [
            "| expectation | observed | expected | count | examples |",
            "|---|---|---|---|---|",
        ]
        for f in self.failing:
            examples = ", ".join(_md(repr(v)) for v in f.examples) or "-"
            lines.append(
                f"| `{f.name}` | {f.observed:.2%} | {_md(f.expected)} | {f.count} | {examples} |"
            )
        return head + "\n".join(lines) + "\n"


def check_quality(
    profile: ReferenceProfile,
    window: pd.DataFrame,
    validation: ValidationSettings,
    quality: QualitySettings,
) -> DataQualityReport:
    """Judge the features of a window of served rows against the reference profile.

    Args:
        window: one row per served prediction, one column per feature (other columns
            are ignored); a feature absent from every row is a failure of its own.
        validation: the range margin and null tolerance the batch contract uses, so a
            served value is judged as a training value would be.
    """
    features = [
        profile.column(name) for name in profile.feature_schema.columns if _known(profile, name)
    ]
    rows = len(window)
    if rows < quality.min_rows:
        return DataQualityReport(
            dataset=profile.dataset,
            status=QualityStatus.INSUFFICIENT_DATA,
            rows=rows,
            features=len(features),
        )
    failing: list[FailedExpectation] = []
    for column in features:
        failing += _check_column(column, window, validation, quality)
    return DataQualityReport(
        dataset=profile.dataset,
        status=QualityStatus.DEGRADED if failing else QualityStatus.OK,
        rows=rows,
        features=len(features),
        failing=tuple(failing),
    )


def conform_window(window: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """The window as the drift computation reads it: every feature present, numeric
    features as floats.

    A value that is not a number becomes NaN and an absent feature is all null:
    `check_quality` has already named them, and a broken pipe must end in an incident,
    not in a crashed monitor. A window that conforms already is returned as it is.
    """
    conformed: pd.DataFrame | None = None
    for name in (*schema.numeric, *schema.categorical):
        numeric = name in schema.numeric
        if name in window.columns:
            series = window[name]
            fits = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
            if not numeric or fits:
                continue
            value: object = pd.to_numeric(series, errors="coerce").astype(float)
        else:
            value = np.nan if numeric else None
        if conformed is None:
            conformed = window.copy()
        conformed[name] = value
    return window if conformed is None else conformed


def null_rate_bound(
    column: ColumnProfile, rows: int, validation: ValidationSettings, quality: QualitySettings
) -> float:
    """The null share a window of `rows` rows may show before the feature counts as broken.

    The batch contract's allowance (reference rate + tolerance), a fixed margin, and
    `null_rate_z` binomial standard errors of the reference rate at this window size.
    """
    p = column.null_rate
    allowed = max(allowed_null_rate(column, validation), p)
    noise = quality.null_rate_z * math.sqrt(p * (1.0 - p) / rows) if rows else 1.0
    return min(1.0, allowed + quality.null_rate_margin + noise)


def learned_range(column: ColumnProfile, validation: ValidationSettings) -> tuple[float, float]:
    """The widened range of a numeric column, exactly as the batch contract checks it."""
    if column.min is None or column.max is None:
        return -math.inf, math.inf
    return widen_range(
        column.min, column.max, validation.range_margin, log_scale=column.right_skewed
    )


def _known(profile: ReferenceProfile, name: str) -> bool:
    try:
        profile.column(name)
    except KeyError:
        return False
    return True


def _check_column(
    column: ColumnProfile,
    window: pd.DataFrame,
    validation: ValidationSettings,
    quality: QualitySettings,
) -> list[FailedExpectation]:
    name = column.name
    rows = len(window)
    k = quality.example_values
    if name not in window.columns:
        return [
            FailedExpectation(
                name=f"{name}.exists",
                column=name,
                check="exists",
                observed=1.0,
                threshold=0.0,
                expected="a feature of the model",
                count=rows,
            )
        ]
    series = window[name]
    failing: list[FailedExpectation] = []
    null = series.isna().to_numpy()
    nulls = int(null.sum())
    null_share = nulls / rows
    bound = null_rate_bound(column, rows, validation, quality)
    if null_share > bound:
        failing.append(
            FailedExpectation(
                name=f"{name}.not_null",
                column=name,
                check="not_null",
                observed=null_share,
                threshold=bound,
                expected=f"at most {bound:.1%} null, reference {column.null_rate:.1%}",
                count=nulls,
                examples=(None,) if k else (),
            )
        )
    present = series[~null]
    if present.empty:
        return failing
    wrong = _wrong_type(column, present)
    if wrong is not None and wrong.any():
        count = int(wrong.sum())
        share = count / len(present)
        if share > quality.max_dtype_mismatch_share:
            failing.append(
                FailedExpectation(
                    name=f"{name}.dtype",
                    column=name,
                    check="dtype",
                    observed=share,
                    threshold=quality.max_dtype_mismatch_share,
                    expected=f"{column.family.value} values (learned dtype {column.dtype})",
                    count=count,
                    examples=_examples(present[wrong], k),
                )
            )
        present = present[~wrong]
        if present.empty:
            return failing
    if column.kind is ColumnKind.NUMERIC and column.min is not None:
        failing += _range_failure(column, present, validation, quality)
    elif column.kind is ColumnKind.CATEGORICAL and column.categories:
        failing += _set_failure(column, present, quality)
    return failing


def _range_failure(
    column: ColumnProfile,
    present: pd.Series,
    validation: ValidationSettings,
    quality: QualitySettings,
) -> list[FailedExpectation]:
    values = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    low, high = learned_range(column, validation)
    outside = ~((values >= low) & (values <= high))  # NaN/inf from bad text count as outside
    count = int(outside.sum())
    share = count / len(values)
    if share <= quality.max_out_of_range_share:
        return []
    return [
        FailedExpectation(
            name=f"{column.name}.in_range",
            column=column.name,
            check="in_range",
            observed=share,
            threshold=quality.max_out_of_range_share,
            expected=f"values in [{low:.4g}, {high:.4g}]",
            count=count,
            examples=_examples(present[outside], quality.example_values),
        )
    ]


def _set_failure(
    column: ColumnProfile, present: pd.Series, quality: QualitySettings
) -> list[FailedExpectation]:
    learned = {str(c) for c in column.categories or ()}
    text = present.astype(str)
    unseen = ~text.isin(learned).to_numpy()
    count = int(unseen.sum())
    share = count / len(text)
    if share <= quality.max_unseen_category_share:
        return []
    return [
        FailedExpectation(
            name=f"{column.name}.in_set",
            column=column.name,
            check="in_set",
            observed=share,
            threshold=quality.max_unseen_category_share,
            expected=f"one of {len(learned)} learned categories",
            count=count,
            examples=_examples(present[unseen], quality.example_values),
        )
    ]


_NUMBER_TYPES = (int, float, np.integer, np.floating, bool, np.bool_)


def _wrong_type(column: ColumnProfile, present: pd.Series) -> npt.NDArray[np.bool_] | None:
    """Mask of non-null values whose type does not fit the learned one (None: all fit).

    A numeric feature must hold numbers; a categorical feature learned as text must hold
    text (a categorical learned as numbers is compared by its text form in `in_set`,
    since serving takes every category as a JSON string). Values are typed one by one
    only when an object column does not convert to one dtype.
    """
    numeric = column.kind is ColumnKind.NUMERIC
    if not numeric and column.family is not DtypeFamily.STRING:
        return None
    dtype = present.dtype
    if pd.api.types.is_object_dtype(dtype):
        dtype = present.infer_objects().dtype
    is_number = pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    if numeric:
        if is_number:
            return None
        fits: npt.NDArray[np.bool_] = present.map(lambda v: isinstance(v, _NUMBER_TYPES)).to_numpy(
            dtype=bool
        )
        return ~fits
    if is_number:
        return np.ones(len(present), dtype=bool)
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return None
    texts: npt.NDArray[np.bool_] = present.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    return ~texts


def _examples(values: pd.Series, k: int) -> tuple[Example, ...]:
    """The `k` most frequent offending values, as JSON-native scalars."""
    if k <= 0 or values.empty:
        return ()
    counts = values.astype(object).map(_native).value_counts(sort=True, dropna=False)
    return tuple(_native(v) for v in counts.index[:k])


def _native(value: object) -> Example:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
