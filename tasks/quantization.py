"""Task: compress the gated candidate, prove what each variant kept, pick one to register."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from mlops.compression import quantize_candidate
from mlops.contracts import QuantizationResult, TrainingResult
from mlops.settings import get_settings
from mlops.tuning import TuningData
from tasks.artifacts import artifact_key


@task(name="quantize-model")
def quantize_model_task(data: TuningData, training: TrainingResult) -> QuantizationResult:
    """Make every variant, score it on the candidate's holdout, log all, choose one
    (`mlops.compression.quantize_candidate`); the comparison is shown as an artifact.

    When none passes the retention gate the fp32 candidate is the one registered.
    """
    quantized = quantize_candidate(get_settings(), data, training)
    result = quantized.result
    create_markdown_artifact(
        key=artifact_key("quantization", data.spec.name),
        markdown=quantized.comparison,
        description=f"Quantized variants of MLflow run {result.parent_run} on its holdout",
    )
    get_run_logger().info(
        "quantization: %s chosen (%d of %d fp32 bytes, retention %.4f)",
        result.scheme,
        result.bytes,
        result.fp32_bytes,
        result.retention,
    )
    return result
