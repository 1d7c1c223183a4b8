"""Replaying a quarantine folder after a person fixed its data file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops.contracts import Verdict
from mlops.dataset_spec import load_spec
from mlops.errors import ConfigError
from mlops.settings import RowPolicy, Settings
from mlops.sources import sha256_file
from mlops.validation import (
    QuarantineStatus,
    ledger_path,
    load_manifest,
    mark_released,
    replay_quarantined,
    save_profile,
    validate_batch,
)
from tests.unit.validation_frames import SPEC, ingest, make_frame, reference_profile, with_policy


def _quarantine(settings: Settings, tmp_path: Path) -> tuple[Path, str]:
    """A rejected batch: two amounts far out of range. Returns its folder and raw sha."""
    profile = reference_profile()
    save_profile(profile, settings)
    frame = make_frame(seed=1, start="2026-02-01")
    frame.loc[[4, 5], "amount"] = 1e6
    snapshot, batch = ingest(frame, tmp_path / "incoming", settings)
    report = validate_batch(snapshot, batch, SPEC, profile, settings)
    assert report.verdict is Verdict.REJECTED
    return Path(report.quarantine_dir or ""), batch.sha256


def test_a_folder_without_manifest_is_not_a_quarantine_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a quarantine folder"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a valid quarantine manifest"):
        load_manifest(tmp_path)


def test_replay_after_the_fix_releases_the_folder(settings: Settings, tmp_path: Path) -> None:
    folder, original_sha = _quarantine(settings, tmp_path)
    original_raw = next((settings.raw_dir / "payments").glob(f"{original_sha}.*"))
    data_file = Path(load_manifest(folder).data_file)
    fixed = pd.read_parquet(data_file)
    fixed.loc[[4, 5], "amount"] = 50.0
    fixed.to_parquet(data_file, index=False)

    report = replay_quarantined(folder, settings)

    assert report.verdict is Verdict.ACCEPTED, report.summary()
    assert report.batch.sha256 == sha256_file(data_file) != original_sha
    assert report.accepted == report.batch
    manifest = load_manifest(folder)
    assert manifest.status is QuarantineStatus.RELEASED
    assert manifest.released_as == report.accepted
    assert manifest.released_at is not None
    assert manifest.release_report == report.report_json
    assert ledger_path(settings, "payments", report.batch.sha256).is_file()
    assert not ledger_path(settings, "payments", original_sha).exists()
    assert sha256_file(original_raw) == original_sha  # the refused raw batch is evidence


def test_replay_without_a_fix_stays_quarantined(settings: Settings, tmp_path: Path) -> None:
    folder, _ = _quarantine(settings, tmp_path)

    report = replay_quarantined(folder, settings)

    assert report.verdict is Verdict.REJECTED
    assert load_manifest(folder).status is QuarantineStatus.QUARANTINED


def test_replayed_rows_go_on_without_the_pipeline_columns(
    settings: Settings, tmp_path: Path
) -> None:
    profile = reference_profile()
    save_profile(profile, settings)
    lenient = with_policy(settings, RowPolicy.QUARANTINE_ROWS)
    frame = make_frame(seed=2, start="2026-02-01")
    frame.loc[[7, 8], "merchant"] = "casino"
    snapshot, batch = ingest(frame, tmp_path / "incoming", lenient)
    split = validate_batch(snapshot, batch, SPEC, profile, lenient)
    assert split.verdict is Verdict.ACCEPTED_WITH_QUARANTINED_ROWS
    folder = Path(split.quarantine_dir or "")
    rows_file = Path(load_manifest(folder).data_file)
    rows = pd.read_parquet(rows_file)
    rows["merchant"] = "online"
    rows.to_parquet(rows_file, index=False)

    report = replay_quarantined(folder, lenient)

    assert report.verdict is Verdict.ACCEPTED, report.summary()
    assert report.accepted is not None and report.accepted != report.batch
    released = pd.read_parquet(report.accepted.uri)
    assert list(released.columns) == list(frame.columns)
    assert len(released) == 2
    assert load_manifest(folder).status is QuarantineStatus.RELEASED


def test_mark_released_refuses_a_rejected_replay(settings: Settings, tmp_path: Path) -> None:
    folder, _ = _quarantine(settings, tmp_path)
    rejected = replay_quarantined(folder, settings)

    with pytest.raises(ConfigError, match="cannot release"):
        mark_released(folder, rejected)


def test_replay_needs_a_reference_profile(settings: Settings, tmp_path: Path) -> None:
    folder, _ = _quarantine(settings, tmp_path)
    (settings.references_dir / "payments" / "profile.json").unlink()

    with pytest.raises(ConfigError, match="no reference profile"):
        replay_quarantined(folder, settings)


def test_the_folder_holds_what_the_cli_needs(settings: Settings, tmp_path: Path) -> None:
    folder, _ = _quarantine(settings, tmp_path)
    manifest = load_manifest(folder)

    spec = load_spec(folder / "spec.yaml")

    assert spec.model_dump(exclude={"source"}) == SPEC.model_dump(exclude={"source"})
    assert Path(manifest.data_file).is_absolute() and Path(manifest.data_file).is_file()
    assert "mlops data replay" in manifest.instructions
