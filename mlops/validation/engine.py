"""Running a suite with Great Expectations: one ephemeral context per process, no files.

GX is imported lazily (it costs seconds) and driven through `Batch.validate`, which runs
the suite without storing the result in the context: `ValidationDefinition.run` would
serialise every result into the in-memory results store, which costs seconds on large
failures and grows without bound in a long-lived worker.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops.validation.profile import RESERVED_PREFIX, parse_timestamps

if TYPE_CHECKING:
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.core.batch_definition import BatchDefinition

    from mlops.validation.suite import NamedExpectation, Suite

logger = logging.getLogger(__name__)

# COMPLETE lists every unexpected row. Without `unexpected_index_column_names` GX
# reports the frame's own index, which the view makes a RangeIndex, i.e. the row
# position: ten times faster than naming an index column, which builds a dict per row.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "return_unexpected_index_query": False,
}

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _batch_definition() -> BatchDefinition[Any]:
    """The process's single ephemeral context, with one reusable dataframe asset."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas(name="mlops-validation")
    asset = source.add_dataframe_asset(name="batches")
    return asset.add_batch_definition_whole_dataframe(name="whole-batch")


def validation_view(frame: pd.DataFrame, timestamp: str) -> pd.DataFrame:
    """The frame as GX should see it: positional index, numpy dtypes, parsed timestamps.

    GX compares pandas dtypes with numpy dtypes by identity, so nullable integers,
    categoricals and timezone-aware datetimes would fail a dtype check they satisfy.
    Converting them here keeps the values and fixes the comparison. Pipeline-owned
    columns (prefix `__`) are dropped. The caller's frame is never modified.
    """
    reserved = [c for c in frame.columns if str(c).startswith(RESERVED_PREFIX)]
    view = frame.drop(columns=reserved) if reserved else frame.copy(deep=False)
    view.index = pd.RangeIndex(len(view))
    for column in view.columns:
        series = view[column]
        if column == timestamp:
            numeric = pd.api.types.is_numeric_dtype(series.dtype)
            if not numeric and not pd.api.types.is_bool_dtype(series.dtype):
                view[column] = parse_timestamps(series)
                continue
        plain = _numpy_dtype(series)
        if plain is not series:
            view[column] = plain
    return view


def _numpy_dtype(series: pd.Series) -> pd.Series:
    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None)
    if isinstance(dtype, pd.CategoricalDtype):
        return series.astype(object)
    if not pd.api.types.is_extension_array_dtype(dtype):
        return series
    if pd.api.types.is_integer_dtype(dtype) and not series.hasnans:
        return series.astype("int64")
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return series.astype("float64")
    return series.astype(object).where(series.notna(), None)


def run_suite(view: pd.DataFrame, suite: Suite) -> list[ExpectationValidationResult]:
    """Validate the view against every expectation of the suite; results in suite order.

    Expectations run in groups that share their columns, each on a frame holding only
    those columns: GX filters the *whole* frame for every column map metric, so one call
    on a wide frame costs O(rows × columns × expectations); per column group it is
    O(rows × expectations), about 2.5× faster on 1M rows × 25 columns.
    An expectation that cannot be evaluated (its column is missing, say) comes back
    failed with `exception_info` set; GX does not raise for it.
    """
    import great_expectations as gx

    groups: dict[tuple[str, ...], list[NamedExpectation]] = {}
    for named in suite.expectations:
        groups.setdefault(_columns_of(named), []).append(named)
    results: list[ExpectationValidationResult] = []
    with _LOCK:  # one context per process; GX's context is not documented as thread-safe
        definition = _batch_definition()
        for columns, members in groups.items():
            narrow = view.loc[:, [c for c in columns if c in view.columns]]
            gx_suite = gx.ExpectationSuite(
                name=f"{suite.name}.{'.'.join(columns) or 'table'}",
                expectations=[m.expectation.copy(deep=True) for m in members],
            )
            batch = definition.get_batch(batch_parameters={"dataframe": narrow})
            results += batch.validate(gx_suite, result_format=RESULT_FORMAT).results
    return results


def _columns_of(named: NamedExpectation) -> tuple[str, ...]:
    kwargs = named.expectation.configuration.kwargs
    if "column_list" in kwargs:
        return tuple(kwargs["column_list"])
    if "column" in kwargs:
        return (str(kwargs["column"]),)
    return ()


def result_json(
    results: list[ExpectationValidationResult], suite: Suite, limit: int = 100
) -> dict[str, Any]:
    """GX's JSON for the results, with per-row lists cut to `limit` entries.

    Call it after the failing rows were taken from the results: a million-row failure
    would otherwise make result.json (and its serialisation) huge. A cut list is
    followed by `<key>_total` with its full length.
    """
    serialised = []
    for item in results:
        details = dict(item.result or {})
        for key, value in list(details.items()):
            if isinstance(value, list) and len(value) > limit:
                details[key] = value[:limit]
                details[f"{key}_total"] = len(value)
        item.result = details
        serialised.append(item.to_json_dict())
    return {
        "suite_name": suite.name,
        "success": all(item.success for item in results),
        "results": serialised,
    }
