"""Drift of live traffic against a model's training reference (issue #6), without Prefect.

`build_reference` (or `load_or_build_reference`, which caches) computes once per model
version what every drift test needs from the reference; `compute_drift` compares a
window of the prediction log with it and returns a `DriftReport` whose per-column
verdicts are those of Evidently's `DataDriftPreset` (same default methods, thresholds
and share rule), computed far faster. `write_evidently_report` runs the real Evidently
report, for people, when an HTML artifact is wanted.
"""

from __future__ import annotations

from mlops.drift.columns import ColumnKind, DriftColumns
from mlops.drift.compute import compute_drift
from mlops.drift.errors import DriftError, DriftInputError, ReferenceCacheError
from mlops.drift.evidently_report import (
    EvidentlyVerdict,
    evidently_drift_share,
    evidently_verdicts,
    run_evidently,
    write_evidently_report,
)
from mlops.drift.methods import DriftMethod, select_method
from mlops.drift.performance import (
    MetricDrop,
    PerformanceMetrics,
    PerformanceVerdict,
    judge_performance,
    measure_performance,
)
from mlops.drift.reference import (
    PERFORMANCE_ROWS,
    ReferenceStats,
    build_reference,
    load_or_build_reference,
    load_reference,
    reference_id_for,
    save_reference,
)
from mlops.drift.report import ColumnDrift, DriftReport, DriftStatus, PerformanceReport
from mlops.settings import DriftSettings

__all__ = [
    "PERFORMANCE_ROWS",
    "ColumnDrift",
    "ColumnKind",
    "DriftColumns",
    "DriftError",
    "DriftInputError",
    "DriftMethod",
    "DriftReport",
    "DriftSettings",
    "DriftStatus",
    "EvidentlyVerdict",
    "MetricDrop",
    "PerformanceMetrics",
    "PerformanceReport",
    "PerformanceVerdict",
    "ReferenceCacheError",
    "ReferenceStats",
    "build_reference",
    "compute_drift",
    "evidently_drift_share",
    "evidently_verdicts",
    "judge_performance",
    "load_or_build_reference",
    "load_reference",
    "measure_performance",
    "reference_id_for",
    "run_evidently",
    "save_reference",
    "select_method",
    "write_evidently_report",
]
