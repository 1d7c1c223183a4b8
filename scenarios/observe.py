"""What the loop did, read where the loop keeps it: Prefect's API, the ledger, the registry.

The driver never asks the loop to act; it only looks. Flow runs are read over the
Prefect REST API (this package stays free of Prefect imports, like the rest of `mlops`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mlops.registry.client import CHAMPION, download_artifact, registry_client, version_by_alias
from mlops.retraining import RetrainRun, retrain_runs
from mlops.rollout.audit import AuditTrail, audit_url
from mlops.settings import Settings
from mlops.synthetic import LABEL
from quantization.served import load_served_model


@dataclass(frozen=True)
class Registered:
    """A model version and when it was registered."""

    version: str
    at: datetime


class PrefectApi:
    """The few REST calls the driver makes to the Prefect server."""

    def __init__(self, api_url: str) -> None:
        self._client = httpx.Client(base_url=api_url, timeout=15.0)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def flow_runs(self, deployment: str) -> list[dict[str, Any]]:
        """Runs of a deployment (by name), oldest first."""
        response = self._client.post(
            "/flow_runs/filter",
            json={"deployments": {"name": {"any_": [deployment]}}, "sort": "START_TIME_ASC"},
        )
        runs: list[dict[str, Any]] = response.raise_for_status().json()
        return runs

    def flow_run(self, run_id: str) -> dict[str, Any]:
        """One flow run."""
        run: dict[str, Any] = self._client.get(f"/flow_runs/{run_id}").raise_for_status().json()
        return run

    def events(self, prefix: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Events whose name starts with `prefix` in [since, until], oldest first (all pages)."""
        body = {
            "filter": {
                "occurred": {"since": since.isoformat(), "until": until.isoformat()},
                "event": {"prefix": [prefix]},
                "order": "ASC",
            },
            "limit": 50,
        }
        page = self._client.post("/events/filter", json=body).raise_for_status().json()
        found: list[dict[str, Any]] = list(page["events"])
        while page.get("next_page"):
            page = self._client.get(page["next_page"]).raise_for_status().json()
            found += page["events"]
        return sorted(found, key=lambda event: str(event["occurred"]))

    def create_markdown_artifact(self, key: str, markdown: str, description: str) -> str:
        """A markdown artifact (not tied to a flow run); returns its id."""
        response = self._client.post(
            "/artifacts/",
            json={"key": key, "type": "markdown", "data": markdown, "description": description},
        )
        return str(response.raise_for_status().json()["id"])


def champion_version(settings: Settings, model: str) -> str | None:
    """The version holding the `champion` alias now."""
    version = version_by_alias(registry_client(settings), model, CHAMPION)
    return None if version is None else str(version.version)


def registered_after(settings: Settings, model: str, version: str) -> list[Registered]:
    """Versions registered after `version`, oldest first."""
    client = registry_client(settings)
    found = [
        Registered(str(v.version), datetime.fromtimestamp(v.creation_timestamp / 1000).astimezone())
        for v in client.search_model_versions(f"name='{model}'")
        if int(v.version) > int(version)
    ]
    return sorted(found, key=lambda r: int(r.version))


def promoted_at(settings: Settings, model: str, version: str) -> datetime | None:
    """When the rollout policy (or a person) promoted `version`, from the audit trail."""
    trail = AuditTrail(audit_url(settings))
    try:
        promotions = [
            r.decided_at
            for r in trail.history(model)
            if r.action == "promote" and r.version == version
        ]
    finally:
        trail.close()
    return promotions[0] if promotions else None


def retrainings(settings: Settings, model: str) -> list[RetrainRun]:
    """Retraining runs the guardrails let through, oldest first."""
    return sorted(retrain_runs(settings, model), key=lambda r: r.started_at)


@dataclass(frozen=True)
class HoldoutScore:
    """How a version does on labelled rows it never saw."""

    accuracy: float
    roc_auc: float
    """Ranking quality: with a few % of fraud, accuracy alone barely moves."""


def holdout_score(
    settings: Settings, model: str, version: str, frame: pd.DataFrame
) -> HoldoutScore:
    """Accuracy and ROC AUC of a registered version on held-out labelled rows."""
    client = registry_client(settings)
    sha = (client.get_model_version(model, version).tags or {}).get("artifact.sha256")
    with tempfile.TemporaryDirectory(prefix="mlops-scenario-") as tmp:
        served = load_served_model(download_artifact(client, model, version, Path(tmp)), sha)
        probabilities = served.predict_proba(frame)
        truth = np.asarray(served.labels.encode(frame[LABEL]))
    accuracy = float((probabilities.argmax(axis=1) == truth).mean())
    return HoldoutScore(accuracy, float(roc_auc_score(truth, probabilities[:, 1])))
