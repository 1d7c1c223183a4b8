"""Every quarantine is announced: `mlops.batch.quarantined` about the dataset, with evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tasks.validation as validation_tasks
from mlops.events import BATCH_QUARANTINED
from mlops.settings import RowPolicy, Settings, get_settings
from tests.unit.validation_frames import SPEC, ingest, make_frame, reference_profile


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """The task's events, captured; artifacts dropped; settings on a temporary home."""
    events: list[dict[str, Any]] = []
    monkeypatch.setattr(validation_tasks, "emit_event", lambda **kw: events.append(kw))
    monkeypatch.setattr(validation_tasks, "create_table_artifact", lambda **kw: None)
    monkeypatch.setattr(validation_tasks, "create_markdown_artifact", lambda **kw: None)
    monkeypatch.setattr(validation_tasks, "get_run_logger", lambda: _Quiet())
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield events
    get_settings.cache_clear()


class _Quiet:
    def info(self, *args: object) -> None:
        pass


def _validate(frame: pd.DataFrame, tmp: Path, policy: RowPolicy) -> Any:
    settings: Settings = get_settings()
    _, batch = ingest(frame, tmp / "incoming", settings)
    task = validation_tasks.validate_batch_task
    return task.fn(SPEC, batch, reference_profile(), policy), batch


def _bad(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[4, 5], "amount"] = 1e6
    frame.loc[8, "merchant"] = "casino"
    return frame


def test_a_rejected_batch_emits_the_quarantine_event(
    emitted: list[dict[str, Any]], tmp_path: Path
) -> None:
    state, batch = _validate(_bad(make_frame(500, seed=1)), tmp_path, RowPolicy.REJECT_BATCH)
    assert state.is_failed()
    assert len(emitted) == 1
    event = emitted[0]
    assert event["event"] == BATCH_QUARANTINED
    assert event["resource"] == {
        "prefect.resource.id": "mlops.dataset.payments",
        "prefect.resource.name": "payments",
    }
    payload = event["payload"]
    assert payload["dataset"] == "payments" and payload["batch_sha256"] == batch.sha256
    assert payload["kind"] == "batch" and payload["rows"] == 500
    assert set(payload["failed_expectations"]) == {"amount.in_range", "merchant.in_set"}
    assert "amount.in_range" in payload["reason"] and "merchant.in_set" in payload["reason"]
    assert Path(payload["quarantine_path"]).is_dir()
    assert event["id"] is not None


def test_quarantined_rows_emit_the_event_with_their_count(
    emitted: list[dict[str, Any]], tmp_path: Path
) -> None:
    report, batch = _validate(_bad(make_frame(500, seed=1)), tmp_path, RowPolicy.QUARANTINE_ROWS)
    assert report.bad_rows == 3
    (event,) = emitted
    payload = event["payload"]
    assert payload["kind"] == "rows" and payload["rows"] == 3 and payload["batch_rows"] == 500
    assert payload["quarantine_path"] == report.quarantine_dir


def test_an_accepted_batch_emits_nothing(emitted: list[dict[str, Any]], tmp_path: Path) -> None:
    frame = make_frame(500, seed=1)
    frame.loc[frame.index % 10 == 0, "tip"] = np.nan  # as the reference: fine
    report, _ = _validate(frame, tmp_path, RowPolicy.REJECT_BATCH)
    assert report.quarantine_dir is None
    assert emitted == []
