"""The pipeline's compression stage as one call: every scheme, scored, gated and chosen.

`compress_model` makes each variant named in settings, scores it next to the fp32
parent on the parent's own holdout, and applies the selection policy; the fp32 parent
is always among the candidates, so a run where no compressed variant keeps enough of
the parent's quality ships the parent. `variant_summary` and `comparison_markdown` turn
the figures into the typed record and the table people read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pandas as pd

from mlops.contracts import QuantizedVariant
from mlops.dataset_spec import DatasetSpec
from mlops.modeling.network import TabularModel
from mlops.settings import QuantizationSettings
from quantization.model import QuantizedModel, quantize
from quantization.retention import VariantReport, evaluate_variant, passes, select_variant
from quantization.schemes import BATCH_DEPENDENT, Scheme

__all__ = ["Compression", "comparison_markdown", "compress_model", "variant_summary"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Compression:
    """The variants made from one parent, their reports (same order) and the one chosen."""

    variants: dict[Scheme, QuantizedModel]
    reports: tuple[VariantReport, ...]
    chosen: VariantReport
    threshold: float
    seconds: float

    def passed(self, report: VariantReport) -> bool:
        """Whether `report`'s variant passed the retention gate (fp32 always does)."""
        return report.scheme is Scheme.FP32 or passes(report, self.threshold)


def compress_model(
    model: TabularModel,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    spec: DatasetSpec,
    settings: QuantizationSettings,
    *,
    repeats: int = 50,
) -> Compression:
    """Quantize `model` with every scheme in `settings`, score each, pick one by policy.

    Args:
        train: the rows the parent was trained on (ternary fine-tuning learns from them).
        holdout: the rows the parent was judged on; every variant is judged on them too.
        repeats: timed calls per batch size for the latency figures.

    Raises:
        ConfigError: an unknown scheme or policy, a frame without labels.
    """
    started = time.perf_counter()
    schemes = [Scheme.FP32] + [Scheme(s) for s in settings.schemes if Scheme(s) is not Scheme.FP32]
    variants: dict[Scheme, QuantizedModel] = {}
    for scheme in schemes:
        variants[scheme] = (
            QuantizedModel(model, Scheme.FP32)
            if scheme is Scheme.FP32
            else quantize(model, scheme, train, spec=spec, settings=settings)
        )
    reports = tuple(
        evaluate_variant(model, variant, holdout, spec, repeats=repeats)
        for variant in variants.values()
    )
    chosen = select_variant(
        reports,
        settings.policy,
        threshold=settings.min_retention,
        exclude=frozenset() if settings.register_batch_dependent else BATCH_DEPENDENT,
    )
    seconds = time.perf_counter() - started
    logger.info(
        "compressed %s: %s chosen by %s (retention %.4f, %d bytes) in %.1f s",
        spec.name,
        chosen.scheme.value,
        settings.policy.value,
        chosen.retention,
        chosen.artifact_bytes,
        seconds,
    )
    return Compression(variants, reports, chosen, settings.min_retention, seconds)


def variant_summary(
    report: VariantReport, *, passed: bool, artifact_sha256: str, artifact_path: str
) -> QuantizedVariant:
    """The typed record of one variant, for the pipeline result and the registry."""
    return QuantizedVariant(
        scheme=report.scheme.value,
        passed=passed,
        retention=report.retention,
        metrics=report.metrics.model_dump(),
        accuracy_delta=report.accuracy_delta,
        roc_auc_delta=report.roc_auc_delta,
        log_loss_delta=report.log_loss_delta,
        agreement=report.agreement,
        bytes=report.artifact_bytes,
        bytes_ratio=report.bytes_ratio,
        linear_bytes_ratio=report.linear_bytes_ratio,
        weight_bytes=report.weight_bytes,
        latency_1_ms=report.latency_1_ms,
        latency_256_ms=report.latency_256_ms,
        latency_1_ratio=report.latency_1_ratio,
        latency_256_ratio=report.latency_256_ratio,
        artifact_sha256=artifact_sha256,
        artifact_path=artifact_path,
    )


def comparison_markdown(
    variants: tuple[QuantizedVariant, ...], chosen: str, threshold: float, policy: str
) -> str:
    """A table of every variant against its fp32 parent, the chosen one in bold."""
    lines = [
        f"## Quantization: `{chosen}` chosen ({policy}, ROC AUC retention ≥ {threshold})",
        "",
        "| scheme | gate | bytes | × fp32 | ROC AUC retention | Δ accuracy | Δ log loss "
        "| agreement | latency ×fp32 @1 | @256 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        name = f"**{v.scheme}**" if v.scheme == chosen else v.scheme
        lines.append(
            f"| {name} | {'pass' if v.passed else 'FAIL'} | {v.bytes:,} | {v.bytes_ratio:.3f} "
            f"| {v.retention:.4f} | {v.accuracy_delta:+.4f} | {v.log_loss_delta:+.4f} "
            f"| {v.agreement:.4f} | {v.latency_1_ratio:.2f} | {v.latency_256_ratio:.2f} |"
        )
    dependent = [v.scheme for v in variants if Scheme(v.scheme) in BATCH_DEPENDENT and v.passed]
    if dependent and chosen not in dependent:
        lines += [
            "",
            f"`{'`, `'.join(dependent)}`: scores depend on the rows batched together, so not "
            "registered for serving unless `quantization.register_batch_dependent` is set.",
        ]
    return "\n".join(lines) + "\n"
