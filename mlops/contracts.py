"""Typed hand-offs between pipeline stages.

Each object carries what lineage needs, so a served prediction can be traced back to
the batch, its validation result and the feature definitions it was trained on.
Stages pass these references (URIs, hashes, ids), never large frames.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class DatasetRef(_Frozen):
    """An immutable batch of raw data: where it is and what exactly it contains."""

    dataset: str
    uri: str
    sha256: str
    rows: int
    start: datetime | None
    end: datetime | None


class ExpectationOutcome(_Frozen):
    """The verdict of one expectation of a suite on one batch."""

    name: str
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int = 0
    unexpected_percent: float | None = None
    observed: str | None = None
    example_keys: tuple[str, ...] = ()
    error: str | None = None
    blocked_by: str | None = None
    """Set when the expectation could not run because another one failed on its column
    (a missing column, a wrong dtype): the root cause is named there, not here."""


class Verdict(StrEnum):
    """What validation decided for a batch."""

    ACCEPTED = "accepted"
    ACCEPTED_WITH_QUARANTINED_ROWS = "accepted-with-quarantined-rows"
    REJECTED = "rejected"


class ValidationReport(_Frozen):
    """The result of validating a batch against its learned data contract."""

    dataset: str
    batch: DatasetRef
    suite: str
    policy: str
    verdict: Verdict
    outcomes: tuple[ExpectationOutcome, ...]
    bad_rows: int
    clean_rows: int
    accepted: DatasetRef | None = None
    quarantine_dir: str | None = None
    report_json: str | None = None
    report_html: str | None = None
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        """True when some rows go on to the feature stage."""
        return self.verdict is not Verdict.REJECTED

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        """The expectations that did not hold."""
        return tuple(o for o in self.outcomes if not o.success)

    def headline(self) -> str:
        """One line for logs and state messages; `summary()` has the details."""
        names = [o.name for o in self.failed if o.blocked_by is None]
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        line = f"batch {self.batch.sha256[:12]} of {self.dataset!r} {self.verdict.value}"
        if names:
            line += f": {shown} failed"
        if self.report_html:
            line += f"; report: {self.report_html}"
        return line

    def summary(self) -> str:
        """One paragraph a person reads in a failed flow run or a terminal."""
        head = (
            f"batch {self.batch.sha256[:12]} of {self.dataset!r} {self.verdict.value}: "
            f"{len(self.outcomes) - len(self.failed)}/{len(self.outcomes)} expectations passed"
        )
        if self.bad_rows:
            head += f", {self.bad_rows} bad rows"
        lines = [head]
        lines += [
            f"  - {o.name}: {o.error or o.observed or f'{o.unexpected_count} unexpected'}"
            for o in self.failed
            if o.blocked_by is None
        ]
        blocked = sum(1 for o in self.failed if o.blocked_by is not None)
        if blocked:
            lines.append(f"  ({blocked} more could not run on those broken columns)")
        if self.report_html:
            lines.append(f"report: {self.report_html}")
        return "\n".join(lines)


class FeatureSetRef(_Frozen):
    """Features written, registered and materialized for one accepted batch."""

    dataset: str
    project: str
    feature_service: str
    feature_view: str
    entity: str
    features: tuple[str, ...]
    offline_uri: str
    online_store: str
    rows_written: int
    materialized_until: datetime
    duration_s: float = 0.0


class TrainingSetRef(_Frozen):
    """A point-in-time correct training set built from the offline store."""

    dataset: str
    uri: str
    sha256: str
    rows: int
    features: tuple[str, ...]
    label: str
    feature_service: str
    start: datetime
    end: datetime
    label_counts: dict[str, int]


class TrainingResult(_Frozen):
    """The final model of a pipeline run: where it is tracked and how well it did."""

    dataset: str
    mlflow_run_id: str
    experiment: str
    study_name: str
    best_trial: int
    params: dict[str, object]
    epochs: int
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    model_uri: str
    artifact_sha256: str
    training_set_sha256: str
    duration_s: float = 0.0


class GateDecision(_Frozen):
    """Whether a candidate may become the challenger, and why (in words a person reads)."""

    passed: bool
    reason: str
    metric: str
    candidate: float
    baseline: float
    champion: float | None = None
    champion_version: str | None = None


class ModelVersionRef(_Frozen):
    """A version of a registered model and the aliases it holds."""

    name: str
    version: str
    aliases: tuple[str, ...]
    model_uri: str
    run_id: str
    artifact_sha256: str


class QuantizedVariant(_Frozen):
    """One compressed variant next to its fp32 parent, on the parent's own holdout."""

    scheme: str
    passed: bool
    """Whether it kept at least the required share of the parent's ROC AUC."""
    retention: float
    metrics: dict[str, float]
    accuracy_delta: float
    roc_auc_delta: float
    log_loss_delta: float
    agreement: float
    bytes: int
    bytes_ratio: float
    linear_bytes_ratio: float
    weight_bytes: int
    latency_1_ms: float
    latency_256_ms: float
    latency_1_ratio: float
    latency_256_ratio: float
    artifact_sha256: str
    artifact_path: str
    """Where the variant's artifact lies in the MLflow run (`quantization/<scheme>`)."""


class QuantizationResult(_Frozen):
    """The variant chosen for registration, and every variant tried with its figures."""

    scheme: str
    policy: str
    threshold: float
    bytes: int
    fp32_bytes: int
    retention: float
    model_uri: str
    artifact_sha256: str
    parent_run: str
    variants: tuple[QuantizedVariant, ...]
    duration_s: float = 0.0
