"""The names of the events the loop emits; `prefect.yaml` triggers on the same strings."""

from __future__ import annotations

DRIFT_DETECTED = "mlops.drift.detected"
MODEL_REGISTERED = "mlops.model.registered"
MODEL_PROMOTED = "mlops.model.promoted"
MODEL_ROLLED_BACK = "mlops.model.rolled_back"
BATCH_QUARANTINED = "mlops.batch.quarantined"


def model_resource_id(model_name: str) -> str:
    """The Prefect resource id of a registered model: events about it carry this id."""
    return f"mlops.model.{model_name}"


def dataset_resource_id(dataset: str) -> str:
    """The Prefect resource id of a dataset: data-quality events carry this id."""
    return f"mlops.dataset.{dataset}"
