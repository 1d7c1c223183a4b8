"""The Evidently report for people: the real `DataDriftPreset` run, saved as HTML.

It is slow (seconds per hundred columns, and about 3-6 s to import Evidently), so it is
separate from `compute_drift`: the monitor decides with `compute_drift` and attaches
this report as an MLflow artifact. Evidently is imported inside the functions, never at
import of this module.

The same run gives Evidently's per-column verdicts (`evidently_verdicts`), which the
tests and the benchmark compare with `compute_drift`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops.drift.columns import DriftColumns
from mlops.settings import DriftSettings

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class EvidentlyVerdict:
    """Evidently's verdict on one column: method (display name), threshold, score."""

    column: str
    method: str
    threshold: float
    score: float
    drifted: bool


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: DriftColumns,
    settings: DriftSettings | None = None,
) -> Any:
    """Run Evidently's `DataDriftPreset` (and a `ValueDrift` of the prediction, if any).

    Column kinds are declared from `columns` (Evidently's own inference would, for
    example, take an integer column with few values for a categorical one). Settings
    map onto the preset's `drift_share` and thresholds.

    Returns:
        Evidently's `Snapshot` (`save_html`, `save_json`, `dict`).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    settings = settings or DriftSettings()
    numeric = list(columns.numeric)
    has_prediction = (
        columns.prediction is not None
        and columns.prediction in reference.columns
        and columns.prediction in current.columns
    )
    if has_prediction:
        assert columns.prediction is not None
        numeric.append(columns.prediction)
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=list(columns.categorical)
    )
    metrics: list[Any] = [
        DataDriftPreset(
            columns=list(columns.features),
            drift_share=settings.drift_share,
            threshold=settings.threshold,
            num_threshold=settings.num_threshold,
            cat_threshold=settings.cat_threshold,
            per_column_threshold=dict(settings.per_column_threshold) or None,
        )
    ]
    if has_prediction:
        assert columns.prediction is not None
        metrics.append(
            ValueDrift(
                column=columns.prediction,
                threshold=settings.per_column_threshold.get(columns.prediction),
            )
        )
    names = [*columns.features, *([columns.prediction] if has_prediction else [])]
    report = Report(metrics, include_tests=True)
    return report.run(
        Dataset.from_pandas(current[names], data_definition=definition),
        Dataset.from_pandas(reference[names], data_definition=definition),
    )


def write_evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: DriftColumns,
    path: Path,
    settings: DriftSettings | None = None,
) -> Path:
    """Run Evidently and save its self-contained HTML report at `path`."""
    snapshot = run_evidently(reference, current, columns, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path


def evidently_verdicts(snapshot: Any) -> dict[str, EvidentlyVerdict]:
    """Evidently's per-column verdicts (from its "Value Drift" tests) by column name."""
    result = snapshot.dict()
    status: dict[str, bool] = {}
    for test in result.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == _VALUE_DRIFT:
            status[params["column"]] = test["status"] == "FAIL"
    verdicts: dict[str, EvidentlyVerdict] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type") != _VALUE_DRIFT:
            continue
        column = config["column"]
        verdicts[column] = EvidentlyVerdict(
            column=column,
            method=str(config["method"]),
            threshold=float(config["threshold"]),
            score=float(metric["value"]),
            drifted=status[column],
        )
    return verdicts


def evidently_drift_share(snapshot: Any) -> float:
    """Evidently's share of drifted columns (its `DriftedColumnsCount` metric)."""
    for metric in snapshot.dict()["metrics"]:
        if metric["config"].get("type") == _DRIFTED_COUNT:
            return float(metric["value"]["share"])
    raise KeyError("the snapshot has no DriftedColumnsCount metric")
