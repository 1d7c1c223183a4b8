"""The drift report: the typed hand-off from the drift computation to the monitor flow."""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from mlops.drift.columns import ColumnKind
from mlops.drift.methods import DriftMethod
from mlops.drift.performance import PerformanceReport, PerformanceVerdict

__all__ = ["ColumnDrift", "DriftReport", "DriftStatus", "PerformanceReport"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class DriftStatus(StrEnum):
    """Whether a verdict could be reached."""

    EVALUATED = "evaluated"
    INSUFFICIENT_DATA = "insufficient-data"


class ColumnDrift(_Frozen):
    """The verdict on one column."""

    column: str
    kind: ColumnKind
    status: DriftStatus
    method: DriftMethod | None
    """None when the column could not be tested (no usable value in the window)."""
    threshold: float | None
    score: float | None
    drifted: bool
    reference_rows: int
    current_rows: int

    @property
    def method_label(self) -> str:
        """The method as Evidently names it, or a dash."""
        return "-" if self.method is None else self.method.label


class DriftReport(_Frozen):
    """Drift of one window of live data against a model's reference.

    `dataset_drift` follows Evidently's preset: at least `drift_share` of the evaluated
    feature columns drifted. Prediction drift and performance are reported beside it and
    do not count in the share; `drift_detected` combines all three for a trigger.
    """

    reference_id: str
    status: DriftStatus
    current_rows: int
    drift_share: float
    columns: tuple[ColumnDrift, ...]
    n_drifted: int
    share_drifted: float
    dataset_drift: bool
    prediction: ColumnDrift | None = None
    performance: PerformanceReport | None = None
    message: str = ""
    duration_s: float = 0.0

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """Names of the drifted feature columns, in report order."""
        return tuple(c.column for c in self.columns if c.drifted)

    @property
    def evaluated_columns(self) -> tuple[ColumnDrift, ...]:
        """Columns with a verdict (those lacking data in the window are left out)."""
        return tuple(c for c in self.columns if c.status is DriftStatus.EVALUATED)

    @property
    def prediction_drift(self) -> bool:
        """True when the predicted probabilities drifted."""
        return self.prediction is not None and self.prediction.drifted

    @property
    def drift_detected(self) -> bool:
        """Dataset drift, prediction drift or degraded performance: worth a retraining."""
        degraded = self.performance is not None and self.performance.degraded
        return self.dataset_drift or self.prediction_drift or degraded

    def column(self, name: str) -> ColumnDrift:
        """The verdict on one column (KeyError if it is not in the report)."""
        for verdict in self.columns:
            if verdict.column == name:
                return verdict
        if self.prediction is not None and self.prediction.column == name:
            return self.prediction
        raise KeyError(name)

    def markdown(self) -> str:
        """A summary for people (a Prefect markdown artifact): verdicts, then the table."""
        lines = [f"## Drift against reference `{self.reference_id}`", ""]
        if self.status is DriftStatus.INSUFFICIENT_DATA:
            lines += [f"**Insufficient data**: {self.message}", ""]
            return "\n".join(lines)
        outcome = "**drift detected**" if self.drift_detected else "no drift"
        lines += [
            f"- verdict: {outcome}",
            f"- window rows: {self.current_rows:,}",
            f"- drifted columns: {self.n_drifted} of {len(self.evaluated_columns)} "
            f"(share {self.share_drifted:.3f}, dataset drift at >= {self.drift_share:.3f}: "
            f"{'yes' if self.dataset_drift else 'no'})",
        ]
        if self.prediction is not None:
            lines.append(
                f"- prediction drift: {'yes' if self.prediction.drifted else 'no'} "
                f"({self.prediction.method_label} {_number(self.prediction.score)})"
            )
        if self.performance is not None:
            lines += _performance_lines(self.performance)
        if self.message:
            lines.append(f"- note: {self.message}")
        lines += [
            "",
            "| column | kind | method | score | threshold | drifted |",
            "| --- | --- | --- | ---: | ---: | --- |",
        ]
        ordered = sorted(self.columns, key=lambda c: (not c.drifted, c.status, c.column))
        for verdict in ordered:
            flag = "**yes**" if verdict.drifted else "no"
            if verdict.status is DriftStatus.INSUFFICIENT_DATA:
                flag = "insufficient data"
            name = verdict.column.replace("|", "\\|").replace("`", "'")
            lines.append(
                f"| `{name}` | {verdict.kind.value} | {verdict.method_label} | "
                f"{_number(verdict.score)} | {_number(verdict.threshold)} | {flag} |"
            )
        return "\n".join(lines)


def _performance_lines(perf: PerformanceReport) -> list[str]:
    current = perf.current
    head = (
        f"- performance on {current.rows:,} labelled rows ({current.positives:,} positives, "
        f"{current.negatives:,} negatives): "
    )
    if perf.verdict is PerformanceVerdict.INSUFFICIENT_LABELS:
        return [
            f"{head}insufficient labels (judged from {perf.min_positives} positives and "
            f"{perf.min_negatives} negatives); ROC AUC {_number(current.roc_auc)}, "
            f"accuracy {_number(current.accuracy)}"
        ]
    if perf.verdict is PerformanceVerdict.NO_REFERENCE:
        return [f"{head}not judged: {perf.note}"]
    verdict = f"**degraded** ({', '.join(perf.degraded_metrics)})" if perf.degraded else "stable"
    lines = [
        f"{head}{verdict}; a metric is degraded when the one-sided lower bound of its drop "
        f"exceeds the tolerance (false alarm rate <= {perf.alpha:g} per window)",
        "",
        "| metric | reference | window | drop | lower bound | confidence | tolerance | degraded |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for drop in perf.drops:
        lines.append(
            f"| {drop.metric} | {drop.reference:.4f} | {drop.current:.4f} | "
            f"{drop.drop:+.4f} | {drop.lower_bound:+.4f} | {1 - drop.alpha:.1%} | "
            f"{drop.tolerance:g} | {'**yes**' if drop.degraded else 'no'} |"
        )
    lines.append("")
    return lines


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4g}"
