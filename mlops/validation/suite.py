"""The expectation suite, derived from the reference profile and the validation settings.

Every expectation carries a stable human name (`amount.in_range`, `keys.unique`) that
the report, the errors and the row quarantine all use, and a scope: `column` for
checks about the batch as a whole (a missing column, a wrong dtype, a null *rate*) and
`row` for checks that single out rows, which the quarantine-rows policy can split off.

Naming scheme:
    table.not_empty            the batch has rows
    <col>.exists               a column of the profile is present
    <col>.dtype                its dtype belongs to the learned family (numbers stay numbers)
    <col>.not_null             null share within the reference rate + tolerance
    <col>.in_range             numeric values inside the widened learned range
    <col>.in_set               categorical values among the learned categories
    <label>.label_domain       labels among the reference classes
    keys.unique                (entity, timestamp) identifies a row
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mlops.dataset_spec import DatasetSpec
from mlops.settings import ValidationSettings
from mlops.validation.profile import ColumnKind, ColumnProfile, DtypeFamily, ReferenceProfile

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation import Expectation

NAME_KEY = "mlops_name"
"""The key of an expectation's `meta` that holds its stable human name."""

_NUMERIC_TYPES = (
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    *(f"float{b}" for b in (16, 32, 64)),
    "int",
    "float",
)
# GX checks pandas dtypes against numpy dtypes: extension dtypes (Int64, category,
# tz-aware datetimes, string) never match, so the validation view converts them to numpy
# dtypes first (see `mlops.validation.engine.validation_view`). Families with one dtype
# use the aggregate `ExpectColumnTypeToBe`; a type *list* on an object column makes GX
# check every value in Python, which costs ~0.4 s per million rows and column.
TYPE_LISTS: dict[DtypeFamily, tuple[str, ...]] = {
    DtypeFamily.NUMERIC: _NUMERIC_TYPES,
    DtypeFamily.BOOLEAN: ("bool",),
}
SINGLE_TYPES: dict[DtypeFamily, str] = {
    DtypeFamily.DATETIME: "datetime64",
    DtypeFamily.STRING: "object",
}


class Scope(StrEnum):
    """Whether a failure is about the batch as a whole or about specific rows."""

    COLUMN = "column"
    ROW = "row"


@dataclass(frozen=True)
class NamedExpectation:
    """A GX expectation with its stable name, the column it checks and its scope."""

    name: str
    column: str | None
    scope: Scope
    expectation: Expectation


@dataclass(frozen=True)
class Suite:
    """The expectations of one dataset's data contract, in a stable order."""

    name: str
    expectations: tuple[NamedExpectation, ...]
    by_name: dict[str, NamedExpectation] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [e.name for e in self.expectations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"expectation names must be unique, repeated: {duplicates}")
        object.__setattr__(self, "by_name", {e.name: e for e in self.expectations})

    def to_gx(self) -> ExpectationSuite:
        """A GX suite (not stored in any context) holding copies of the expectations."""
        import great_expectations as gx

        return gx.ExpectationSuite(
            name=self.name,
            expectations=[e.expectation.copy(deep=True) for e in self.expectations],
        )


def build_suite(
    spec: DatasetSpec, profile: ReferenceProfile, validation: ValidationSettings
) -> Suite:
    """Derive the suite from the profile; the same inputs always give the same suite.

    Raises:
        ConfigError: never directly; a profile that does not match the spec is refused
            by `load_profile`.
    """
    gxe = _gxe()

    items: list[NamedExpectation] = [
        _named(
            "table.not_empty",
            None,
            Scope.COLUMN,
            gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=None),
        )
    ]
    for column in profile.columns:
        items += _column_expectations(column, profile, validation)
    items.append(
        _named(
            "keys.unique",
            None,
            Scope.ROW,
            gxe.ExpectCompoundColumnsToBeUnique(column_list=[spec.entity, spec.timestamp]),
        )
    )
    return Suite(
        name=f"{profile.dataset}.{profile.reference_sha256[:12]}", expectations=tuple(items)
    )


def _column_expectations(
    column: ColumnProfile, profile: ReferenceProfile, validation: ValidationSettings
) -> list[NamedExpectation]:
    gxe = _gxe()

    name = column.name
    # The validation view parses timestamps, so the timestamp is checked as a datetime
    # whatever text or timezone it arrived in.
    family = DtypeFamily.DATETIME if column.kind is ColumnKind.TIMESTAMP else column.family
    items = [_named(f"{name}.exists", name, Scope.COLUMN, gxe.ExpectColumnToExist(column=name))]
    if family in TYPE_LISTS:
        check = gxe.ExpectColumnValuesToBeInTypeList(
            column=name, type_list=list(TYPE_LISTS[family])
        )
        items.append(_named(f"{name}.dtype", name, Scope.COLUMN, check))
    elif family in SINGLE_TYPES:
        check = gxe.ExpectColumnTypeToBe(column=name, type_=SINGLE_TYPES[family])
        items.append(_named(f"{name}.dtype", name, Scope.COLUMN, check))
    items.append(_not_null(column, validation))
    if column.kind is ColumnKind.NUMERIC and column.min is not None and column.max is not None:
        low, high = widen_range(
            column.min, column.max, validation.range_margin, log_scale=column.right_skewed
        )
        items.append(
            _named(
                f"{name}.in_range",
                name,
                Scope.ROW,
                gxe.ExpectColumnValuesToBeBetween(column=name, min_value=low, max_value=high),
            )
        )
    if column.kind is ColumnKind.CATEGORICAL and column.categories:
        items.append(
            _named(
                f"{name}.in_set",
                name,
                Scope.ROW,
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(column.categories)),
            )
        )
    if column.kind is ColumnKind.LABEL:
        items.append(
            _named(
                f"{name}.label_domain",
                name,
                Scope.ROW,
                gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(profile.label_classes)),
            )
        )
    return items


def allowed_null_rate(column: ColumnProfile, validation: ValidationSettings) -> float:
    """The null share a batch may have: none if the reference had none."""
    if column.null_rate == 0.0 or column.kind in (ColumnKind.ENTITY, ColumnKind.TIMESTAMP):
        return 0.0
    return min(1.0, column.null_rate + validation.null_rate_tolerance)


def never_null_columns(profile: ReferenceProfile, validation: ValidationSettings) -> frozenset[str]:
    """The columns in which the contract allows no null at all (`allowed_null_rate` 0): a
    batch with one null there fails ingestion, so serving refuses one in a request too."""
    return frozenset(c.name for c in profile.columns if allowed_null_rate(c, validation) == 0.0)


def widen_range(
    low: float, high: float, margin: float, *, log_scale: bool = False
) -> tuple[float, float]:
    """The learned range widened by `margin` × span, never below 0 for a non-negative column.

    A range check is meant to catch impossible values, not rare ones (drift monitoring
    watches the distribution). The maximum of a long right tail (amounts, distances)
    moves from sample to sample, so such a column is widened on a log1p scale: the
    bound grows with the tail while a bounded column (an hour, a score) stays tight.
    A constant reference column has no span; it is widened by `margin` × its magnitude
    (at least 1) so one new value is not an outlier by construction.
    """
    if log_scale and low >= 0:
        log_low, log_high = widen_range(math.log1p(low), math.log1p(high), margin)
        return max(math.expm1(log_low), 0.0), math.expm1(log_high)
    span = high - low
    pad = margin * (span if span > 0 else max(abs(low), 1.0))
    widened_low = low - pad
    if low >= 0:
        widened_low = max(widened_low, 0.0)
    return widened_low, high + pad


def _not_null(column: ColumnProfile, validation: ValidationSettings) -> NamedExpectation:
    gxe = _gxe()

    allowed = allowed_null_rate(column, validation)
    kwargs: dict[str, Any] = {"column": column.name}
    if allowed > 0.0:
        kwargs["mostly"] = 1.0 - allowed
    scope = Scope.ROW if allowed == 0.0 else Scope.COLUMN
    return _named(
        f"{column.name}.not_null", column.name, scope, gxe.ExpectColumnValuesToNotBeNull(**kwargs)
    )


def _gxe() -> ModuleType:
    """GX's expectation classes, imported on first use (importing GX takes seconds)."""
    import great_expectations.expectations as gxe

    return gxe


def _named(
    name: str, column: str | None, scope: Scope, expectation: Expectation
) -> NamedExpectation:
    expectation.meta = {**(expectation.meta or {}), NAME_KEY: name, "scope": scope.value}
    return NamedExpectation(name=name, column=column, scope=scope, expectation=expectation)
