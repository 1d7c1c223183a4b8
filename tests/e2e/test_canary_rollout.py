"""The `canary-rollout` flow against the real prediction service, with live traffic and labels.

A client sends card transactions to the service (sticky per card) and returns each
true label right after its answer; the flow, meanwhile, reads the prediction log and
the labels, and moves the rollout through its stages until the evidence decides.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from flows.canary import CanaryOutcome, CanaryParams, canary_rollout
from mlops.modeling import TrainConfig, save_model
from mlops.registry.client import CHALLENGER, CHAMPION, registry_client, version_by_alias
from mlops.rollout.audit import AuditTrail, audit_url
from mlops.rollout.state import RolloutStatus
from mlops.settings import Settings
from tests.e2e.conftest import mlops_env
from tests.serving_support import (
    ServerThread,
    SmallModels,
    register_model,
    train_models,
    with_serving,
)

# Short stages so a rollout is decided in seconds; the statistics are the real ones.
FAST_ROLLOUT = {
    "MLOPS_ROLLOUT__MIN_PREDICTIONS": "60",
    "MLOPS_ROLLOUT__MIN_STAGE_SECONDS": "0",
    "MLOPS_ROLLOUT__MIN_LABELS": "60",
    "MLOPS_SERVING__POLL_INTERVAL_S": "0.2",
    "MLOPS_SERVING__LOG_FLUSH_INTERVAL_S": "0.2",
}
WEAK = TrainConfig(hidden_layers=1, width=8, max_epochs=1, batch_size=4096, seed=0)
STRONG = TrainConfig(hidden_layers=2, width=64, max_epochs=8, batch_size=256, seed=1)


@dataclass
class Traffic:
    """A client that keeps sending rows and returning their labels until stopped."""

    url: str
    models: SmallModels
    answered: dict[str, int] = field(default_factory=lambda: {"champion": 0, "challenger": 0})
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        frame = self.models.frame
        rows = self.models.rows(len(frame))
        cards = frame["card_id"].astype(str).tolist()
        labels = frame["is_fraud"].astype(int).tolist()
        i = 0
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                batch = [(i + k) % len(rows) for k in range(8)]
                instances = [{**rows[j], "card_id": cards[j]} for j in batch]
                response = client.post("/v1/predict", json={"instances": instances})
                if response.status_code != 200:
                    self.errors += 1
                    continue
                answer: list[dict[str, Any]] = response.json()["predictions"]
                for row in answer:
                    self.answered[row["variant"]] += 1
                feedback = [
                    {"prediction_id": row["prediction_id"], "label": str(labels[j])}
                    for row, j in zip(answer, batch, strict=True)
                ]
                client.post("/v1/feedback", json={"labels": feedback})
                i += 8


@pytest.fixture()
def fast_rollout(prefect_api_url: str, tmp_path: Path) -> Iterator[Settings]:
    with mlops_env(tmp_path / "state", **FAST_ROLLOUT) as settings:
        yield settings


def _roll_out(
    settings: Settings, models: SmallModels, version: str
) -> tuple[CanaryOutcome, Traffic]:
    served = with_serving(settings, poll_interval_s=0.2, log_flush_interval_s=0.2)
    with ServerThread(served) as server:
        traffic = Traffic(server.url, models)
        client = threading.Thread(target=traffic.run, daemon=True)
        client.start()
        try:
            outcome = canary_rollout(
                CanaryParams(version=version, watch_seconds=120, poll_seconds=1.0)
            )
        finally:
            traffic.stop.set()
            client.join(timeout=30)
    return outcome, traffic


def _random_weights(models: SmallModels, folder: Path) -> SmallModels:
    """The strong model's architecture with its weights scrambled: a broken release."""
    broken = copy.deepcopy(models.models[1])
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in broken.net.mlp.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 3.0)
    artifact = save_model(broken, folder / "broken")
    return SmallModels(
        models.frame,
        models.raw,
        models.schema,
        (*models.models, broken),
        (*models.artifacts, artifact),
    )


def _weak_and_strong(folder: Path) -> SmallModels:
    weak = train_models(folder / "weak", count=1, rows=4_000, config=WEAK)
    strong = train_models(folder / "strong", count=2, rows=4_000, config=STRONG)
    return SmallModels(
        weak.frame,
        weak.raw,
        weak.schema,
        (weak.models[0], strong.models[1]),
        (weak.artifacts[0], strong.artifacts[1]),
    )


def test_a_broken_challenger_is_rolled_back_before_it_answers_more_than_the_first_stage(
    fast_rollout: Settings, tmp_path: Path
) -> None:
    models = _random_weights(_weak_and_strong(tmp_path / "models"), tmp_path / "models")
    champion = register_model(fast_rollout, "card_fraud", models, 1)
    broken = register_model(fast_rollout, "card_fraud", models, 2)
    outcome, traffic = _roll_out(fast_rollout, models, broken.version)

    assert outcome.state.status is RolloutStatus.ROLLED_BACK, outcome.state.reason
    assert traffic.errors == 0
    first_share = fast_rollout.rollout.stages[1]
    history = AuditTrail(audit_url(fast_rollout)).history("card_fraud")
    assert history[-1].action == "rollback"
    assert max(record.to_share for record in history) <= first_share
    answered = traffic.answered
    assert answered["challenger"] <= first_share * sum(answered.values()) + 8
    client = registry_client(fast_rollout)
    assert str(version_by_alias(client, "card_fraud", CHAMPION).version) == champion.version  # type: ignore[union-attr]
    assert version_by_alias(client, "card_fraud", CHALLENGER) is None
    tags = client.get_model_version("card_fraud", broken.version).tags
    assert tags["rollout.rolled_back_reason"]


def test_a_genuinely_better_challenger_is_promoted(fast_rollout: Settings, tmp_path: Path) -> None:
    models = _weak_and_strong(tmp_path / "models")
    register_model(fast_rollout, "card_fraud", models, 0)
    better = register_model(fast_rollout, "card_fraud", models, 1)
    outcome, traffic = _roll_out(fast_rollout, models, better.version)

    assert outcome.state.status is RolloutStatus.PROMOTED, outcome.state.reason
    assert traffic.errors == 0
    client = registry_client(fast_rollout)
    assert str(version_by_alias(client, "card_fraud", CHAMPION).version) == better.version  # type: ignore[union-attr]
    assert version_by_alias(client, "card_fraud", CHALLENGER) is None
    history = AuditTrail(audit_url(fast_rollout)).history("card_fraud")
    assert history[-1].action == "promote" and history[-1].actor == "rollout-policy"


def test_the_resume_run_without_an_active_rollout_is_a_cheap_no_op(
    fast_rollout: Settings,
) -> None:
    """What `canary-rollout/resume` does every 5 minutes when nothing is rolling out."""
    outcome = canary_rollout(CanaryParams(model_name="card_fraud", start=False))
    assert outcome.state.status is RolloutStatus.IDLE and outcome.decisions == []
    # one registry read: no lock taken, no audit trail opened, no challenger started
    assert not (fast_rollout.home / "rollout-lock.db").exists()
    assert not (fast_rollout.home / "rollout.db").exists()
    assert version_by_alias(registry_client(fast_rollout), "card_fraud", CHALLENGER) is None
