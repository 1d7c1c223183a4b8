"""The resources events are about: one spelling for every task that emits them."""

from __future__ import annotations

from mlops.events import dataset_resource, model_resource, model_resource_id


def test_an_event_about_a_model_carries_its_id_and_name() -> None:
    assert model_resource("card_fraud") == {
        "prefect.resource.id": "mlops.model.card_fraud",
        "prefect.resource.name": "card_fraud",
    }
    assert model_resource("m")["prefect.resource.id"] == model_resource_id("m")


def test_an_event_about_a_dataset_carries_its_id_and_name() -> None:
    assert dataset_resource("payments") == {
        "prefect.resource.id": "mlops.dataset.payments",
        "prefect.resource.name": "payments",
    }
