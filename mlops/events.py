"""The names of the events the loop emits; `prefect.yaml` triggers on the same strings."""

from __future__ import annotations

DRIFT_DETECTED = "mlops.drift.detected"
MODEL_REGISTERED = "mlops.model.registered"
MODEL_PROMOTED = "mlops.model.promoted"
MODEL_ROLLED_BACK = "mlops.model.rolled_back"
BATCH_QUARANTINED = "mlops.batch.quarantined"
DATA_QUALITY_DEGRADED = "mlops.data_quality.degraded"
"""Live traffic breaks the champion's data contract (a broken pipe, not drift)."""
DRIFT_ALARM_HELD = "mlops.drift.held"
"""A drift alarm was recorded in the retraining ledger instead of raised."""
DRIFT_ALARM_OVERDUE = "mlops.drift.overdue"
"""A held drift alarm has waited longer than `retraining.max_alarm_wait_s`."""
ROLLOUT_EXPIRED = "mlops.rollout.expired"
"""A rollout reached its deadline (or a paused one its expiry) and was rolled back."""
ROLLOUT_PAUSED = "mlops.rollout.paused"
"""A rollout was paused (by a data-quality incident or a person)."""
RETRAINING_EXPIRED = "mlops.retraining.expired"
"""A retraining recorded as running whose flow run is gone was marked failed."""


def model_resource_id(model_name: str) -> str:
    """The Prefect resource id of a registered model: events about it carry this id."""
    return f"mlops.model.{model_name}"


def model_resource(model_name: str) -> dict[str, str]:
    """The resource of an event about a registered model (its id and its name)."""
    return {
        "prefect.resource.id": model_resource_id(model_name),
        "prefect.resource.name": model_name,
    }


def dataset_resource(dataset: str) -> dict[str, str]:
    """The resource of an event about a dataset (data-quality events): its id and name."""
    return {"prefect.resource.id": f"mlops.dataset.{dataset}", "prefect.resource.name": dataset}
