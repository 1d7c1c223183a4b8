"""The training pipeline's quantization stage, without Prefect: compress the gated
candidate, prove what each variant kept, log them all to the candidate's MLflow run and
choose the one to register (`quantization.compress` does the compressing and choosing;
this module brings the candidate from MLflow and puts the variants back there).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from mlops.contracts import QuantizationResult, QuantizedVariant, TrainingResult
from mlops.errors import ArtifactIntegrityError
from mlops.modeling import TabularModel, split_time_ordered
from mlops.registry.client import load_logged_model
from mlops.registry.pyfunc import log_pyfunc_model
from mlops.settings import Settings
from mlops.sources import read_frame
from mlops.tracking import configure_tracking
from mlops.tracking.mlflow_tracking import tracking_client
from mlops.tuning import TuningData
from quantization import Scheme, save_quantized
from quantization.compress import comparison_markdown, compress_model, variant_summary

ARTIFACT_ROOT = "quantization"
"""Where a candidate's run keeps its variants (`quantization/<scheme>`) and the comparison."""


@dataclass(frozen=True)
class Quantized:
    """The stage's result and the comparison of every variant (markdown)."""

    result: QuantizationResult
    comparison: str


def quantize_candidate(settings: Settings, data: TuningData, training: TrainingResult) -> Quantized:
    """Make every variant of the candidate, score each on the candidate's holdout, log
    all, choose one.

    The candidate is downloaded from its MLflow run and checked against its digest.
    Every variant's artifact and figures go to the candidate's run (under
    `quantization/<scheme>`); the chosen compressed variant is also logged as a model
    of its own, which `register-model` registers. When none passes the retention gate
    the fp32 candidate is the one registered.

    Raises:
        ArtifactIntegrityError: the candidate does not match its digest, or is not fp32.
    """
    configure_tracking(settings)
    client = tracking_client(settings.resolved_tracking_uri)
    run_id = training.mlflow_run_id
    spec = data.spec
    model = load_logged_model(training.model_uri, training.artifact_sha256)
    if not isinstance(model, TabularModel):
        raise ArtifactIntegrityError(f"{training.model_uri} is not an fp32 candidate")
    splits = split_time_ordered(
        read_frame(data.path),
        spec,
        holdout_fraction=data.holdout_fraction,
        validation_fraction=data.validation_fraction,
    )
    compression = compress_model(
        model, splits.train_and_valid, splits.holdout, spec, settings.quantization
    )
    with tempfile.TemporaryDirectory(prefix="mlops-quantize-") as tmp:
        variants: list[QuantizedVariant] = []
        for report in compression.reports:
            path = f"{ARTIFACT_ROOT}/{report.scheme.value}"
            artifact = save_quantized(compression.variants[report.scheme], Path(tmp) / path)
            client.log_artifacts(run_id, str(artifact.directory), path)
            variant = variant_summary(
                report,
                passed=compression.passed(report),
                artifact_sha256=artifact.sha256,
                artifact_path=path,
            )
            variants.append(variant)
            _log_figures(client, run_id, variant)
        chosen = compression.chosen
        if chosen.scheme is Scheme.FP32:
            model_uri, sha = training.model_uri, training.artifact_sha256
        else:
            artifact = save_quantized(compression.variants[chosen.scheme], Path(tmp) / "chosen")
            model_uri = log_pyfunc_model(
                run_id,
                artifact,
                compression.variants[chosen.scheme],
                splits.holdout,
                name=f"model-{chosen.scheme.value}",
            )
            sha = artifact.sha256
    policy = settings.quantization.policy.value
    table = comparison_markdown(tuple(variants), chosen.scheme.value, compression.threshold, policy)
    result = QuantizationResult(
        scheme=chosen.scheme.value,
        policy=policy,
        threshold=compression.threshold,
        bytes=chosen.artifact_bytes,
        fp32_bytes=chosen.parent_artifact_bytes,
        retention=chosen.retention,
        model_uri=model_uri,
        artifact_sha256=sha,
        parent_run=run_id,
        variants=tuple(variants),
        duration_s=compression.seconds,
    )
    client.log_text(run_id, table, f"{ARTIFACT_ROOT}/comparison.md")
    client.log_text(
        run_id, json.dumps(result.model_dump(mode="json"), indent=2), f"{ARTIFACT_ROOT}/result.json"
    )
    client.set_tag(run_id, "quantization.scheme", result.scheme)
    return Quantized(result=result, comparison=table)


def quantization_tags(result: QuantizationResult) -> dict[str, str]:
    """Registry tags naming the variant a version holds and what it kept of its parent."""
    return {
        "quantization.scheme": result.scheme,
        "quantization.parent_run": result.parent_run,
        "quantization.retention": f"{result.retention:.6f}",
        "quantization.bytes": str(result.bytes),
        "quantization.fp32_bytes": str(result.fp32_bytes),
        "quantization.policy": result.policy,
    }


def variant_figures(variant: QuantizedVariant) -> dict[str, float]:
    """A variant's figures as run metrics (`quantization.<scheme>.<figure>`)."""
    figures = {
        "retention": variant.retention,
        "bytes": float(variant.bytes),
        "bytes_ratio": variant.bytes_ratio,
        "agreement": variant.agreement,
        "latency_1_ratio": variant.latency_1_ratio,
        "latency_256_ratio": variant.latency_256_ratio,
        "roc_auc": variant.metrics["roc_auc"],
        "log_loss_delta": variant.log_loss_delta,
        "passed": float(variant.passed),
    }
    return {f"quantization.{variant.scheme}.{name}": value for name, value in figures.items()}


def _log_figures(client: MlflowClient, run_id: str, variant: QuantizedVariant) -> None:
    for name, value in variant_figures(variant).items():
        client.log_metric(run_id, name, value)
