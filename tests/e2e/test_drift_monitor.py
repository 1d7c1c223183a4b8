"""The `drift-monitor` flow on a real Prefect server: quiet on the same world, loud on a shift."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from flows.drift import DriftMonitorParams, DriftMonitorResult, drift_monitor
from flows.training import TrainingPipelineParams, run_training_pipeline
from mlops.registry.client import CHAMPION, download_artifact, registry_client, version_by_alias
from mlops.settings import Settings
from mlops.synthetic import Scenario, generate, write_batch
from quantization.served import load_served_model
from serving.prediction_log import FeedbackRecord, PredictionRecord, open_prediction_log
from tests.e2e.conftest import mlops_env

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime.now(UTC).replace(microsecond=0)
QUIET_END = NOW - timedelta(hours=2)
SHIFTED_END = NOW


@dataclass(frozen=True)
class Monitored:
    settings: Settings
    version: str


def _log_traffic(settings: Settings, frame: pd.DataFrame, end: datetime, tag: str) -> None:
    """Score `frame` with the champion and log it as served traffic ending at `end`, labelled."""
    client = registry_client(settings)
    champion = version_by_alias(client, "card_fraud", CHAMPION)
    assert champion is not None
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_artifact(client, "card_fraud", str(champion.version), Path(tmp))
        model = load_served_model(folder, champion.tags["artifact.sha256"])
    proba = model.predict_proba(frame)
    features = frame[list(model.schema.columns)].to_dict("records")
    step = timedelta(minutes=50) / len(frame)
    log = open_prediction_log(settings)
    log.start()
    records, labels = [], []
    for i, (row, p) in enumerate(zip(features, proba, strict=True)):
        ts = end - timedelta(minutes=55) + i * step
        pid = f"{tag}-{i}-0"
        records.append(
            PredictionRecord(
                prediction_id=pid,
                request_id=f"{tag}-{i}",
                model_name="card_fraud",
                model_version=str(champion.version),
                variant="champion",
                shadow=False,
                entity=str(frame["card_id"].iloc[i]),
                features=row,
                probabilities=tuple(float(x) for x in p),
                prediction=str(int(p.argmax())),
                latency_ms=1.0,
                status="ok",
                error=None,
                ts=ts,
            )
        )
        labels.append(FeedbackRecord(pid, str(int(frame["is_fraud"].iloc[i])), ts))
    log.submit(records)
    log.submit_feedback(labels)
    log.close()


@pytest.fixture(scope="module")
def monitored(
    prefect_api_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    root = tmp_path_factory.mktemp("drift")
    batch = write_batch(generate(Scenario.BASELINE, 4_000, START, days=7), root / "base.parquet")
    with mlops_env(root / "state") as settings:
        result = run_training_pipeline(TrainingPipelineParams(data=str(batch)))
        assert result.model is not None
        later = START + timedelta(days=8)
        quiet = generate(Scenario.BASELINE, 1_500, later, days=1, seed=11)
        shifted = generate(Scenario.COVARIATE_SHIFT, 1_500, later, days=1, seed=12)
        _log_traffic(settings, quiet, QUIET_END, "quiet")
        _log_traffic(settings, shifted, SHIFTED_END, "shifted")
        yield Monitored(settings=settings, version=result.model.version)


def _monitor(end: datetime, **overrides: object) -> DriftMonitorResult:
    params = DriftMonitorParams(window_minutes=60, end=end, **overrides)  # type: ignore[arg-type]
    return drift_monitor(params)


def test_traffic_like_the_training_data_raises_no_alarm(monitored: Monitored) -> None:
    result = _monitor(QUIET_END, html_report=False)
    assert result.status == "evaluated" and result.rows == 1_500
    assert not result.alarm, result.reason
    assert result.model_version == monitored.version


def test_a_covariate_shift_raises_the_alarm_with_its_evidence(monitored: Monitored) -> None:
    from mlflow import MlflowClient

    result = _monitor(SHIFTED_END)
    assert result.alarm, result.reason
    payload = result.payload
    assert payload is not None
    assert payload["model_name"] == "card_fraud" and payload["model_version"] == monitored.version
    assert payload["window_end"] == SHIFTED_END.isoformat()
    assert isinstance(payload["drifted_features"], list) and payload["drifted_features"]
    uri = monitored.settings.resolved_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run_id = client.get_model_version("card_fraud", monitored.version).run_id
    assert run_id is not None
    reports = [a.path for a in client.list_artifacts(run_id, "drift")]
    assert reports and reports[0].endswith(".html"), "the Evidently report is on the champion's run"


def test_the_reference_is_computed_once_per_champion(monitored: Monitored) -> None:
    cache = monitored.settings.home / "drift" / "references"
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert before, "the first monitor run cached the champion's reference"
    _monitor(QUIET_END, html_report=False)
    after = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert after == before


# --- data quality: a broken pipe is an incident, not drift ---------------------------

BROKEN_END = NOW - timedelta(hours=4)


def _server_events(name: str, since: datetime) -> list[dict[str, object]]:
    """Events of one name the server has stored since `since` (polled: storage is async)."""
    import time

    import httpx
    from prefect.settings import PREFECT_API_URL

    deadline = time.monotonic() + 30.0
    body = {
        "filter": {
            "event": {"name": [name]},
            "occurred": {"since": since.isoformat(), "until": datetime.now(UTC).isoformat()},
        },
        "limit": 50,
    }
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        body["filter"]["occurred"]["until"] = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()  # type: ignore[index]
        answer = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json=body, timeout=10)
        answer.raise_for_status()
        events = answer.json()["events"]
        if events:
            return events
        time.sleep(0.5)
    return events


def test_a_feature_turning_all_null_is_an_incident_not_drift(monitored: Monitored) -> None:
    from mlops.events import DATA_QUALITY_DEGRADED, ROLLOUT_PAUSED
    from mlops.quality import open_incident
    from mlops.retraining import GuardOutcome, recent_alarms
    from mlops.rollout.state import RolloutState, RolloutStatus, read_rollout, write_rollout

    settings = monitored.settings
    client = registry_client(settings)
    started = datetime.now(UTC) - timedelta(seconds=5)
    later = START + timedelta(days=8)
    broken = generate(Scenario.COVARIATE_SHIFT, 1_500, later, days=1, seed=13)
    broken["amount"] = float("nan")  # the upstream pipe lost the column
    _log_traffic(settings, broken, BROKEN_END, "broken")
    running = RolloutState(
        model_name="card_fraud",
        challenger_version=monitored.version,
        status=RolloutStatus.RUNNING,
        stage=1,
        share=0.05,
        reason="canary",
    )
    write_rollout(
        client, running.model_copy(update={"revision": read_rollout(client, "card_fraud").revision})
    )

    result = _monitor(BROKEN_END, html_report=False)

    quality = result.quality
    assert quality is not None and quality.status == "degraded", result
    assert "amount.not_null" in [f.name for f in quality.failing]
    # The event, with its evidence.
    payload = result.quality_payload
    assert payload is not None
    assert payload["version"] == monitored.version and "amount" in str(payload["reason"])
    assert payload["window_end"] == BROKEN_END.isoformat()
    failing = payload["failing"]
    assert isinstance(failing, list) and failing[0]["name"] == "amount.not_null"
    stored = _server_events(DATA_QUALITY_DEGRADED, started)
    assert stored and stored[0]["resource"]["prefect.resource.id"] == "mlops.model.card_fraud"  # type: ignore[index]
    # No retraining: the drift alarm is held with the data-quality reason.
    assert result.payload is None, "no mlops.drift.detected during an incident"
    assert result.alarm, "the shifted features drift: the alarm is raised, and held"
    assert result.held is not None and "data-quality" in result.held
    alarms = recent_alarms(settings, "card_fraud")
    assert alarms[0].outcome is GuardOutcome.QUALITY_HOLD and "amount" in alarms[0].detail
    assert result.quality_incident is not None
    reason = open_incident(settings, "card_fraud")
    assert reason is not None and "amount" in reason
    # The rollout in progress is paused, and that is announced.
    assert result.rollout_paused
    paused = read_rollout(client, "card_fraud")
    assert paused.status is RolloutStatus.PAUSED and "data-quality" in paused.reason
    assert _server_events(ROLLOUT_PAUSED, started)

    # The first clean window closes the incident and resumes the rollout it paused.
    clean = _monitor(QUIET_END, html_report=False)
    assert clean.quality is not None and clean.quality.status == "ok"
    assert clean.quality_incident is None and open_incident(settings, "card_fraud") is None
    resumed = read_rollout(client, "card_fraud")
    assert resumed.status is RolloutStatus.RUNNING
    write_rollout(
        client,
        RolloutState(model_name="card_fraud", revision=resumed.revision),
    )
