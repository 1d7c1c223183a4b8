"""The retention gate: what a variant keeps of its parent, what it saves, which one ships.

Compression is only worth having with proof that the accuracy stayed, so every variant
is scored on the parent's holdout next to the parent itself: metric deltas, retention
(variant ROC AUC / parent ROC AUC), prediction agreement, artifact and resident bytes,
and latency measured interleaved with the parent's (so machine noise hits both alike).
`select_variant` then applies the policy from settings, and never picks a variant
that failed the gate: when none of the compressed ones passes, the fp32 parent ships.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlops.dataset_spec import DatasetSpec
from mlops.errors import ConfigError, RetentionError
from mlops.modeling.data import TabularArrays
from mlops.modeling.metrics import Metrics, evaluate_proba
from mlops.modeling.network import TabularModel
from mlops.settings import QuantizationSettings, SelectionPolicy
from quantization.artifact import artifact_files, linear_bytes, parent_artifact_bytes
from quantization.model import QuantizedModel, resident_bytes
from quantization.schemes import Scheme
from quantization.threads import torch_threads

__all__ = [
    "DEFAULT_MIN_RETENTION",
    "LATENCY_BATCHES",
    "LATENCY_TIE",
    "VariantReport",
    "evaluate_variant",
    "passes",
    "require_retention",
    "select_variant",
]

DEFAULT_MIN_RETENTION = QuantizationSettings().min_retention
LATENCY_BATCHES = (1, 256)
"""Rows per call for the latency figures: one request, and a scoring batch."""
LATENCY_TIE = 0.05
"""Relative latency gap below which `fastest-passing` calls two variants equally fast."""
_WARMUP = 5


class VariantReport(BaseModel):
    """A variant's figures beside its parent's on the same holdout.

    Deltas are variant minus parent (a positive log-loss delta is worse). Latencies are
    medians in milliseconds of `predict_proba_arrays` on encoded rows (network forward
    and softmax, without pandas), with one torch thread. `*_bytes` of the parent are
    those of its own fp32 artifact and network.
    """

    model_config = ConfigDict(frozen=True)

    scheme: Scheme
    metrics: Metrics
    parent_metrics: Metrics
    retention: float
    """Variant ROC AUC / parent ROC AUC (NaN when the parent's is undefined)."""
    accuracy_delta: float
    roc_auc_delta: float
    log_loss_delta: float
    agreement: float
    """Share of holdout rows where variant and parent predict the same class."""
    artifact_bytes: int
    parent_artifact_bytes: int
    weight_bytes: int
    """Resident bytes of the loaded network (see `quantization.resident_bytes`)."""
    parent_weight_bytes: int
    linear_bytes: int
    """Stored bytes of the MLP's Linear layers alone (weights, scales, biases)."""
    parent_linear_bytes: int
    latency_1_ms: float
    latency_256_ms: float
    parent_latency_1_ms: float
    parent_latency_256_ms: float

    @property
    def bytes_ratio(self) -> float:
        """Artifact bytes as a share of the fp32 parent's artifact."""
        return self.artifact_bytes / self.parent_artifact_bytes

    @property
    def linear_bytes_ratio(self) -> float:
        """Linear-layer bytes as a share of the parent's fp32 Linear layers."""
        return self.linear_bytes / self.parent_linear_bytes

    @property
    def latency_1_ratio(self) -> float:
        """Batch-1 latency relative to the parent's (below 1: faster)."""
        return self.latency_1_ms / self.parent_latency_1_ms

    @property
    def latency_256_ratio(self) -> float:
        """Batch-256 latency relative to the parent's (below 1: faster)."""
        return self.latency_256_ms / self.parent_latency_256_ms


def evaluate_variant(
    parent: TabularModel,
    variant: QuantizedModel,
    holdout: pd.DataFrame,
    spec: DatasetSpec,
    *,
    repeats: int = 50,
) -> VariantReport:
    """Score a variant against its fp32 parent on the parent's holdout.

    Args:
        repeats: timed calls per batch size and model (after a warm-up), interleaved.

    Raises:
        ConfigError: the label column is missing, holds unknown classes, or the holdout
            is empty.
    """
    if spec.label not in holdout.columns:
        raise ConfigError(f"dataset {spec.name!r}: label column {spec.label!r} is missing")
    if holdout.empty:
        raise ConfigError("cannot evaluate a variant on an empty holdout")
    y_true = parent.labels.encode(holdout[spec.label])
    arrays = parent.preprocessor.transform(holdout)
    parent_proba = parent.predict_proba_arrays(arrays)
    variant_proba = variant.predict_proba_arrays(arrays)
    parent_metrics = evaluate_proba(y_true, parent_proba)
    metrics = evaluate_proba(y_true, variant_proba)
    latency = _latencies(parent, variant, arrays, repeats)
    return VariantReport(
        scheme=variant.scheme,
        metrics=metrics,
        parent_metrics=parent_metrics,
        retention=_ratio(metrics.roc_auc, parent_metrics.roc_auc),
        accuracy_delta=metrics.accuracy - parent_metrics.accuracy,
        roc_auc_delta=metrics.roc_auc - parent_metrics.roc_auc,
        log_loss_delta=metrics.log_loss - parent_metrics.log_loss,
        agreement=float(np.mean(variant_proba.argmax(axis=1) == parent_proba.argmax(axis=1))),
        artifact_bytes=sum(len(data) for data in artifact_files(variant).values()),
        parent_artifact_bytes=parent_artifact_bytes(parent),
        weight_bytes=variant.weight_bytes,
        parent_weight_bytes=resident_bytes(parent.net),
        linear_bytes=linear_bytes(variant),
        parent_linear_bytes=linear_bytes(QuantizedModel(parent, Scheme.FP32)),
        latency_1_ms=latency[("variant", 1)],
        latency_256_ms=latency[("variant", 256)],
        parent_latency_1_ms=latency[("parent", 1)],
        parent_latency_256_ms=latency[("parent", 256)],
    )


def passes(report: VariantReport, threshold: float = DEFAULT_MIN_RETENTION) -> bool:
    """Whether the variant kept at least `threshold` of its parent's ROC AUC."""
    return math.isfinite(report.retention) and report.retention >= threshold


def require_retention(report: VariantReport, threshold: float = DEFAULT_MIN_RETENTION) -> None:
    """Fail loudly when a variant did not pass the gate (for a flow that insists on one).

    Raises:
        RetentionError: the retention is below `threshold` or undefined.
    """
    if not passes(report, threshold):
        raise RetentionError(
            f"the {report.scheme.value} variant kept {report.retention:.4f} of its parent's "
            f"ROC AUC ({report.metrics.roc_auc:.4f} vs {report.parent_metrics.roc_auc:.4f}); "
            f"at least {threshold} is required"
        )


def select_variant(
    reports: Sequence[VariantReport],
    policy: SelectionPolicy | str = SelectionPolicy.SMALLEST_PASSING,
    *,
    threshold: float = DEFAULT_MIN_RETENTION,
    exclude: frozenset[Scheme] = frozenset(),
) -> VariantReport:
    """The variant to register, by `policy`, among those passing the retention gate.

    Schemes in `exclude` are never chosen (the pipeline excludes `BATCH_DEPENDENT` ones,
    which the service cannot serve).

    The fp32 report (the parent itself) is always eligible and is the fallback, so it
    must be among `reports`. ``smallest-passing``: fewest artifact bytes;
    ``fastest-passing``: lowest batch-1 latency (one request), where latencies within
    `LATENCY_TIE` of the lowest count as equal (timing noise must not decide between
    fp32 and fp16, which compute the same) and the fewest bytes among them wins;
    ``fp32``: the parent. Remaining ties go to the earlier scheme in `Scheme`'s order.

    Raises:
        ConfigError: no fp32 report, or an unknown policy.
    """
    try:
        chosen_policy = SelectionPolicy(policy)
    except ValueError as exc:
        raise ConfigError(f"unknown selection policy {policy!r}") from exc
    reference = next((r for r in reports if r.scheme is Scheme.FP32), None)
    if reference is None:
        raise ConfigError("select_variant needs the fp32 report: it is the fallback")
    if chosen_policy is SelectionPolicy.FP32:
        return reference
    eligible = [reference] + [
        r
        for r in reports
        if r.scheme is not Scheme.FP32 and r.scheme not in exclude and passes(r, threshold)
    ]
    if chosen_policy is SelectionPolicy.FASTEST_PASSING:
        fastest = min(r.latency_1_ms for r in eligible)
        eligible = [r for r in eligible if r.latency_1_ms <= fastest * (1.0 + LATENCY_TIE)]
    return min(eligible, key=_smallest)


def _smallest(report: VariantReport) -> tuple[float, ...]:
    return (report.artifact_bytes, list(Scheme).index(report.scheme))


def _ratio(value: float, reference: float) -> float:
    if not (math.isfinite(value) and math.isfinite(reference)) or reference == 0.0:
        return math.nan
    return value / reference


def _latencies(
    parent: TabularModel, variant: QuantizedModel, arrays: TabularArrays, repeats: int
) -> dict[tuple[str, int], float]:
    """Median milliseconds per call, for each model and batch size, calls interleaved."""
    batches = {rows: _rows(arrays, rows) for rows in LATENCY_BATCHES}
    models = {"parent": parent.predict_proba_arrays, "variant": variant.predict_proba_arrays}
    timings: dict[tuple[str, int], list[float]] = {
        (name, rows): [] for name in models for rows in batches
    }
    with torch_threads(1):
        for round_ in range(_WARMUP + max(1, repeats)):
            for (name, rows), samples in timings.items():
                started = time.perf_counter()
                models[name](batches[rows])
                elapsed = time.perf_counter() - started
                if round_ >= _WARMUP:
                    samples.append(elapsed * 1000.0)
    return {key: statistics.median(samples) for key, samples in timings.items()}


def _rows(arrays: TabularArrays, rows: int) -> TabularArrays:
    """The first `rows` rows, repeating the holdout when it is shorter."""
    index = np.arange(rows) % len(arrays)
    return TabularArrays(
        np.ascontiguousarray(arrays.numeric[index]),
        np.ascontiguousarray(arrays.categorical[index]),
    )
