"""Drift of a window of live data against cached reference statistics.

Per window the reference costs nothing: its sorted values, std and counts come from
`ReferenceStats`. The numeric columns of the window are sorted as one matrix, then
tested in chunks on a few threads (numpy sorts, merges and searches without the GIL);
categorical columns are counted meanwhile in the calling thread. Methods, thresholds
and verdicts are Evidently's defaults (see `mlops.drift.methods`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from mlops.drift.columns import ColumnKind
from mlops.drift.errors import DriftInputError
from mlops.drift.methods import (
    FEW_NUMERIC_VALUES,
    DriftMethod,
    FloatArray,
    ks_p_value,
    score_counts,
    select_method,
    wasserstein_normed,
)
from mlops.drift.performance import (
    PerformanceMetrics,
    judge_performance,
    labelled_rows,
    measure_performance,
)
from mlops.drift.reference import CategoricalReference, NumericReference, ReferenceStats
from mlops.drift.reference import value_counts as count_values
from mlops.drift.report import ColumnDrift, DriftReport, DriftStatus, PerformanceReport
from mlops.settings import DriftSettings

logger = logging.getLogger(__name__)

_CHUNKS_PER_WORKER = 4


def compute_drift(
    reference: ReferenceStats,
    current: pd.DataFrame,
    settings: DriftSettings | None = None,
    *,
    reference_performance: PerformanceMetrics | None = None,
) -> DriftReport:
    """Compare a window of live rows with the reference, column by column.

    Args:
        reference: statistics of the model's reference (`build_reference` or the cache);
            its `columns` say which columns are features, prediction and label.
        current: the window (the prediction log's rows); other columns are ignored.
        settings: drift share, thresholds, minimum rows, threads.
        reference_performance: the reference quality to compare the window's with;
            default: the one measured on the reference when it had labels.

    Returns:
        The report. A window with fewer than `settings.min_rows` rows gets status
        `insufficient-data` and no verdicts; a column without any usable value in the
        window gets that status alone and is left out of the share (Evidently would
        fail on it).

    Raises:
        DriftInputError: a feature (or the prediction column the reference has) is
            missing from the window, or a numeric column holds non-numbers.
    """
    settings = settings or DriftSettings()
    started = time.perf_counter()
    columns = reference.columns
    needed = list(columns.features)
    if reference.prediction is not None and columns.prediction is not None:
        needed.append(columns.prediction)
    missing = [c for c in needed if c not in current.columns]
    if missing:
        raise DriftInputError(f"the window lacks the columns {missing}")
    rows = len(current)
    if rows < settings.min_rows:
        message = f"the window has {rows} rows, fewer than min_rows={settings.min_rows}"
        return _insufficient(reference, rows, settings, message, started)

    numeric_names = list(columns.numeric)
    numeric_refs = [reference.numeric[c] for c in numeric_names]
    kinds = [ColumnKind.NUMERIC] * len(numeric_names)
    if reference.prediction is not None and columns.prediction is not None:
        numeric_names.append(columns.prediction)
        numeric_refs.append(reference.prediction)
        kinds.append(ColumnKind.NUMERIC)
    matrix = _numeric_matrix(current, numeric_names)
    thresholds = [settings.threshold_for(name, categorical=False) for name in columns.numeric]
    if len(numeric_names) > len(columns.numeric):  # the prediction: only its own override
        thresholds.append(settings.per_column_threshold.get(numeric_names[-1]))

    workers = min(settings.max_workers, max(1, len(numeric_names)))
    chunks = _chunks(len(numeric_names), workers * _CHUNKS_PER_WORKER if workers > 1 else 1)

    def run_chunk(indices: range) -> list[ColumnDrift]:
        return [
            _numeric_drift(numeric_names[i], numeric_refs[i], matrix[i], thresholds[i], kinds[i])
            for i in indices
        ]

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
            futures = [pool.submit(run_chunk, chunk) for chunk in chunks]
            categorical = _categorical_drifts(reference, current, settings)
            numeric = [verdict for future in futures for verdict in future.result()]
    else:
        numeric = [verdict for chunk in chunks for verdict in run_chunk(chunk)]
        categorical = _categorical_drifts(reference, current, settings)

    prediction = None
    if reference.prediction is not None:
        prediction = numeric.pop()
    verdicts = (*numeric, *categorical)
    performance = _performance(reference, current, settings, reference_performance)
    return _assemble(reference, rows, settings, verdicts, prediction, performance, started)


def _numeric_matrix(current: pd.DataFrame, names: Sequence[str]) -> FloatArray:
    """One row per column: the window's values sorted, NaN (also for +-inf) at the end."""
    for name in names:
        series = current[name]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            raise DriftInputError(
                f"column {name!r} must be numeric in the window, got dtype {series.dtype}"
            )
    if not names:
        return np.empty((0, len(current)), dtype=np.float64)
    matrix = np.ascontiguousarray(
        current[list(names)].to_numpy(dtype=np.float64, na_value=np.nan).T
    )
    matrix[np.isinf(matrix)] = np.nan
    return matrix


def _numeric_drift(
    name: str,
    ref: NumericReference,
    values: FloatArray,
    threshold: float | None,
    kind: ColumnKind,
) -> ColumnDrift:
    values.sort()
    valid = values[: int(np.count_nonzero(~np.isnan(values)))]
    if valid.size == 0:
        return _no_data(name, kind, ref.rows)
    n_values = ref.n_unique
    current_counts: dict[Hashable, int] | None = None
    if ref.n_unique <= FEW_NUMERIC_VALUES:
        unique, counts = np.unique(valid, return_counts=True)
        current_counts = dict(zip(unique.tolist(), counts.tolist(), strict=True))
        n_values = len(set(current_counts) | set(ref.counts or {}))
    method = select_method(kind, ref.rows, n_values)
    if method is DriftMethod.KS:
        score = ks_p_value(ref.sorted_values, valid)
    elif method is DriftMethod.WASSERSTEIN:
        score = wasserstein_normed(ref.sorted_values, valid, ref.std)
    else:
        assert ref.counts is not None and current_counts is not None  # few values
        score = score_counts(method, ref.counts, ref.rows, current_counts, int(valid.size))
    return _verdict(name, kind, method, threshold, score, ref.rows, int(valid.size))


def _categorical_drifts(
    reference: ReferenceStats, current: pd.DataFrame, settings: DriftSettings
) -> list[ColumnDrift]:
    return [
        _categorical_drift(
            name,
            reference.categorical[name],
            current[name],
            settings.threshold_for(name, categorical=True),
        )
        for name in reference.columns.categorical
    ]


def _categorical_drift(
    name: str, ref: CategoricalReference, series: pd.Series, threshold: float | None
) -> ColumnDrift:
    counts = count_values(series)
    rows = sum(counts.values())
    if rows == 0:
        return _no_data(name, ColumnKind.CATEGORICAL, ref.rows)
    n_values = len(set(counts) | set(ref.counts))
    method = select_method(ColumnKind.CATEGORICAL, ref.rows, n_values)
    score = score_counts(method, ref.counts, ref.rows, counts, rows)
    return _verdict(name, ColumnKind.CATEGORICAL, method, threshold, score, ref.rows, rows)


def _verdict(
    name: str,
    kind: ColumnKind,
    method: DriftMethod,
    threshold: float | None,
    score: float,
    reference_rows: int,
    current_rows: int,
) -> ColumnDrift:
    actual = method.default_threshold if threshold is None else threshold
    return ColumnDrift(
        column=name,
        kind=kind,
        status=DriftStatus.EVALUATED,
        method=method,
        threshold=actual,
        score=score,
        drifted=method.drifted(score, actual),
        reference_rows=reference_rows,
        current_rows=current_rows,
    )


def _no_data(name: str, kind: ColumnKind, reference_rows: int) -> ColumnDrift:
    return ColumnDrift(
        column=name,
        kind=kind,
        status=DriftStatus.INSUFFICIENT_DATA,
        method=None,
        threshold=None,
        score=None,
        drifted=False,
        reference_rows=reference_rows,
        current_rows=0,
    )


def _performance(
    reference: ReferenceStats,
    current: pd.DataFrame,
    settings: DriftSettings,
    reference_performance: PerformanceMetrics | None,
) -> PerformanceReport | None:
    prediction, label = reference.columns.prediction, reference.columns.label
    if prediction is None or label is None or label not in current.columns:
        return None
    if prediction not in current.columns:
        return None
    probabilities, labels = labelled_rows(current, prediction, label)
    if labels.size == 0:
        logger.info("performance skipped: no labelled row in the window")
        return None
    return judge_performance(
        measure_performance(probabilities, labels, settings.decision_threshold),
        reference_performance or reference.performance,
        settings,
    )


def _assemble(
    reference: ReferenceStats,
    rows: int,
    settings: DriftSettings,
    verdicts: tuple[ColumnDrift, ...],
    prediction: ColumnDrift | None,
    performance: PerformanceReport | None,
    started: float,
) -> DriftReport:
    evaluated = [v for v in verdicts if v.status is DriftStatus.EVALUATED]
    if not evaluated:
        message = "no feature column has a usable value in the window"
        return _insufficient(reference, rows, settings, message, started, verdicts)
    n_drifted = sum(v.drifted for v in evaluated)
    share = n_drifted / len(evaluated)
    lacking = [v.column for v in verdicts if v.status is DriftStatus.INSUFFICIENT_DATA]
    message = f"no usable value in the window for {lacking}" if lacking else ""
    return DriftReport(
        reference_id=reference.reference_id,
        status=DriftStatus.EVALUATED,
        current_rows=rows,
        drift_share=settings.drift_share,
        columns=verdicts,
        n_drifted=n_drifted,
        share_drifted=share,
        dataset_drift=share >= settings.drift_share,
        prediction=prediction,
        performance=performance,
        message=message,
        duration_s=time.perf_counter() - started,
    )


def _insufficient(
    reference: ReferenceStats,
    rows: int,
    settings: DriftSettings,
    message: str,
    started: float,
    verdicts: tuple[ColumnDrift, ...] = (),
) -> DriftReport:
    return DriftReport(
        reference_id=reference.reference_id,
        status=DriftStatus.INSUFFICIENT_DATA,
        current_rows=rows,
        drift_share=settings.drift_share,
        columns=verdicts,
        n_drifted=0,
        share_drifted=0.0,
        dataset_drift=False,
        message=message,
        duration_s=time.perf_counter() - started,
    )


def _chunks(n: int, parts: int) -> list[range]:
    parts = max(1, min(parts, n))
    bounds = np.linspace(0, n, parts + 1).astype(int).tolist()
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
