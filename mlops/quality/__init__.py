"""Data quality of served traffic: the ingestion contract judging live windows (issue #13).

`check_quality` runs a dataset's reference profile over a window of served features and
returns a `DataQualityReport` (ok, degraded, or too few rows to judge); `record_window`
keeps the resulting incident as state and `open_incident` tells the retraining guard
that the pipe is broken; `FeatureBounds` counts nulls and violations per request for
serving's metrics. No Prefect here: `tasks/quality.py` wraps it.
"""

from __future__ import annotations

from mlops.quality.bounds import BatchCounts, FeatureBounds, load_served_profile
from mlops.quality.check import (
    DataQualityReport,
    FailedExpectation,
    QualityStatus,
    check_quality,
    conform_window,
    learned_range,
    null_rate_bound,
)
from mlops.quality.incidents import (
    Incident,
    IncidentChange,
    IncidentUpdate,
    current_incident,
    incidents,
    open_incident,
    record_window,
)

__all__ = [
    "BatchCounts",
    "DataQualityReport",
    "FailedExpectation",
    "FeatureBounds",
    "Incident",
    "IncidentChange",
    "IncidentUpdate",
    "QualityStatus",
    "check_quality",
    "conform_window",
    "current_incident",
    "incidents",
    "learned_range",
    "load_served_profile",
    "null_rate_bound",
    "open_incident",
    "record_window",
]
