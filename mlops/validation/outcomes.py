"""From GX results to named outcomes and the exact rows each expectation refused.

The failing rows of a row-scoped expectation come from GX's COMPLETE unexpected index
list (positions in the validation view). GX's count is the cross-check: if the list is
missing or disagrees with `unexpected_count`, the rows are recomputed in pandas from the
same expectation arguments, so a capped or truncated list can never under-quarantine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops.contracts import ExpectationOutcome
from mlops.validation.suite import NAME_KEY, NamedExpectation, Scope, Suite

if TYPE_CHECKING:
    from great_expectations.core import ExpectationValidationResult

logger = logging.getLogger(__name__)

EXAMPLE_KEYS = 5
ROOT_CAUSES = (".exists", ".dtype")
_SAMPLE_VALUES = 5

Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Evaluation:
    """One expectation's outcome and, for row-scoped failures, the refused row positions.

    `rows` is None when the failure cannot be pinned on rows (column scope, or an error).
    """

    named: NamedExpectation
    outcome: ExpectationOutcome
    rows: Rows | None


def evaluate(
    suite: Suite,
    results: Sequence[ExpectationValidationResult],
    view: pd.DataFrame,
    key_columns: tuple[str, str],
) -> list[Evaluation]:
    """Map every GX result back to its named expectation, in suite order."""
    by_name: dict[str, ExpectationValidationResult] = {}
    for validated in results:
        config = validated.expectation_config
        name = (config.meta or {}).get(NAME_KEY) if config is not None else None
        if isinstance(name, str):
            by_name[name] = validated
    evaluations = []
    for named in suite.expectations:
        item = by_name.get(named.name)
        if item is None:  # GX dropped it: never silently treat that as a pass
            outcome = ExpectationOutcome(
                name=named.name,
                expectation=named.expectation.expectation_type,
                column=named.column,
                success=False,
                error="Great Expectations returned no result for this expectation",
            )
            evaluations.append(Evaluation(named=named, outcome=outcome, rows=None))
            continue
        evaluations.append(_evaluate_one(named, item, view, key_columns))
    return _mark_blocked(evaluations)


def _mark_blocked(evaluations: list[Evaluation]) -> list[Evaluation]:
    """Point errors caused by a missing column or a wrong dtype at that root cause.

    GX reports such an expectation with an internal error text ("'list' object has no
    attribute 'type'"); a person needs to read "not checked: the column is missing".
    """
    roots: dict[str, str] = {}
    for e in evaluations:  # `.exists` comes before `.dtype`: the first failure is the root
        if not e.outcome.success and e.named.column and e.named.name.endswith(ROOT_CAUSES):
            roots.setdefault(e.named.column, e.named.name)
    marked = []
    for e in evaluations:
        root = roots.get(e.named.column or "")
        if root and root != e.named.name and e.outcome.error is not None:
            outcome = e.outcome.model_copy(
                update={"error": f"not checked: {root} failed", "blocked_by": root}
            )
            e = Evaluation(named=e.named, outcome=outcome, rows=e.rows)
        marked.append(e)
    return marked


def _evaluate_one(
    named: NamedExpectation,
    item: ExpectationValidationResult,
    view: pd.DataFrame,
    key_columns: tuple[str, str],
) -> Evaluation:
    details: dict[str, Any] = dict(item.result or {})
    error = _error(item.exception_info)
    success = bool(item.success) and error is None
    count = int(details.get("unexpected_count") or 0)
    rows: Rows | None = None
    if named.scope is Scope.ROW and error is None:
        rows = np.empty(0, dtype=np.int64) if success else failing_rows(named, details, view)
    percent = details.get("unexpected_percent_total", details.get("unexpected_percent"))
    outcome = ExpectationOutcome(
        name=named.name,
        expectation=named.expectation.expectation_type,
        column=named.column,
        success=success,
        unexpected_count=count,
        unexpected_percent=None if percent is None else float(percent),
        observed=None if error else _observed(named, details, view, success),
        example_keys=() if rows is None else example_keys(view, rows, key_columns),
        error=error,
    )
    return Evaluation(named=named, outcome=outcome, rows=rows)


def failing_rows(
    named: NamedExpectation, details: dict[str, Any], view: pd.DataFrame
) -> Rows | None:
    """Positions of the rows a failed row-scoped expectation refused.

    GX's index list is used when it holds exactly `unexpected_count` distinct rows;
    otherwise (capped, truncated or absent) the rows are recomputed in pandas.
    """
    count = int(details.get("unexpected_count") or 0)
    listed = details.get("unexpected_index_list")
    if listed is not None:
        positions = np.unique(np.asarray(listed, dtype=np.int64))
        if len(positions) == count:
            return positions
        logger.warning(
            "%s: GX listed %d unexpected rows but counted %d; recomputing them in pandas",
            named.name,
            len(positions),
            count,
        )
    mask = pandas_row_mask(named, view)
    if mask is None:
        return None
    positions = np.flatnonzero(mask).astype(np.int64)
    if len(positions) != count:
        logger.warning(
            "%s: pandas found %d failing rows where GX counted %d",
            named.name,
            len(positions),
            count,
        )
    return positions


def pandas_row_mask(named: NamedExpectation, view: pd.DataFrame) -> npt.NDArray[np.bool_] | None:
    """The rows a row-scoped expectation refuses, computed with GX's semantics in pandas.

    The fallback when GX's index list cannot be trusted; None for an expectation type
    it does not know (its failure then rejects the whole batch).
    """
    kwargs = named.expectation.configuration.kwargs
    kind = named.expectation.expectation_type
    if kind == "expect_compound_columns_to_be_unique":
        keys = view[list(kwargs["column_list"])]
        considered = ~keys.isna().all(axis=1)  # GX's default ignore_row_if
        duplicated = np.zeros(len(view), dtype=bool)
        duplicated[considered.to_numpy()] = keys[considered].duplicated(keep=False).to_numpy()
        return duplicated
    series = view[kwargs["column"]]
    present = series.notna().to_numpy()
    if kind == "expect_column_values_to_not_be_null":
        return np.asarray(~present, dtype=bool)
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        inside = np.ones(len(series), dtype=bool)
        if low is not None:
            inside &= (series >= low).to_numpy()
        if high is not None:
            inside &= (series <= high).to_numpy()
        return np.asarray(present & ~inside, dtype=bool)
    if kind == "expect_column_values_to_be_in_set":
        unseen = ~series.isin(list(kwargs["value_set"])).to_numpy(dtype=bool)
        return np.asarray(present & unseen, dtype=bool)
    return None


def example_keys(view: pd.DataFrame, rows: Rows, key_columns: tuple[str, str]) -> tuple[str, ...]:
    """A few failing rows named by their (entity, timestamp) key, or by position."""
    entity, timestamp = key_columns
    picked = rows[:EXAMPLE_KEYS]
    if entity not in view.columns or timestamp not in view.columns:
        return tuple(f"row {int(p)}" for p in picked)
    keys = view[[entity, timestamp]].iloc[picked]
    return tuple(
        f"{_key_text(e)}@{_key_text(t)}" for e, t in keys.itertuples(index=False, name=None)
    )


def _error(info: dict[str, Any] | None) -> str | None:
    """GX's exception message(s): one info dict, or one per failed metric."""
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info["raised_exception"] else None
    messages = sorted(
        {
            str(v.get("exception_message"))
            for v in info.values()
            if isinstance(v, dict) and v.get("raised_exception")
        }
    )
    return "; ".join(messages) or None


def _observed(
    named: NamedExpectation, details: dict[str, Any], view: pd.DataFrame, success: bool
) -> str | None:
    kind = named.expectation.expectation_type
    column = named.column
    if kind == "expect_column_to_exist":
        return None if success else "column is missing"
    if kind == "expect_column_values_to_be_in_type_list":
        dtype = str(view[column].dtype) if column in view.columns else "?"
        if success:
            return dtype
        return f"dtype {dtype}" + _sample(details.get("partial_unexpected_list"))
    if kind == "expect_table_row_count_to_be_between":
        return f"{details.get('observed_value')} rows"
    if "observed_value" in details:
        return str(details["observed_value"])
    count = int(details.get("unexpected_count") or 0)
    if success and count == 0:
        return None
    percent = float(details.get("unexpected_percent_total", details.get("unexpected_percent")) or 0)
    kwargs = named.expectation.configuration.kwargs
    if kind == "expect_column_values_to_not_be_null":
        allowed = 100.0 * (1.0 - float(kwargs.get("mostly") or 1.0))
        return f"{count} null rows ({percent:.2f}%, allowed {allowed:.2f}%)"
    if kind == "expect_compound_columns_to_be_unique":
        return f"{count} rows share their (entity, timestamp) key"
    if kind == "expect_column_values_to_be_between":
        bounds = f"[{kwargs.get('min_value'):.6g}, {kwargs.get('max_value'):.6g}]"
        return f"{count} rows ({percent:.2f}%) outside {bounds}" + _sample(
            details.get("partial_unexpected_list")
        )
    return f"{count} rows ({percent:.2f}%) unexpected" + _sample(
        details.get("partial_unexpected_list")
    )


def _sample(values: Sequence[object] | None) -> str:
    if not values:
        return ""
    shown: list[str] = []
    for value in values:
        text = _text(value)[:40]
        if text not in shown:
            shown.append(text)
        if len(shown) == _SAMPLE_VALUES:
            break
    return ", e.g. " + ", ".join(shown)


def _key_text(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return str(value.isoformat())
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def _text(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return str(value.isoformat())
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, str):
        return repr(value)
    return str(value)
