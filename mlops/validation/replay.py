"""Replaying a quarantine folder once a person has fixed its data file.

The fixed file is ingested like any new batch (snapshotted under its own content hash:
the quarantined original stays as evidence), validated against the stored reference
profile, and the folder is marked released when it passes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from mlops.contracts import ValidationReport
from mlops.dataset_spec import DatasetSpec
from mlops.errors import ConfigError
from mlops.settings import Settings
from mlops.sources import ingest_batch
from mlops.validation.profile import load_profile
from mlops.validation.store import (
    MANIFEST,
    QuarantineManifest,
    QuarantineStatus,
    write_text,
)
from mlops.validation.validate import validate_batch

logger = logging.getLogger(__name__)


def load_manifest(quarantine_dir: Path) -> QuarantineManifest:
    """The manifest of a quarantine folder.

    Raises:
        ConfigError: the folder is not a quarantine folder or its manifest is unreadable.
    """
    path = Path(quarantine_dir) / MANIFEST
    if not path.is_file():
        raise ConfigError(
            f"{quarantine_dir} is not a quarantine folder: it has no {MANIFEST} "
            "(quarantine folders live under .mlops/quarantine/<dataset>/<batch>/)"
        )
    try:
        return QuarantineManifest.model_validate_json(path.read_text())
    except (ValueError, ValidationError) as exc:
        raise ConfigError(f"{path} is not a valid quarantine manifest: {exc}") from exc


def mark_released(quarantine_dir: Path, report: ValidationReport) -> QuarantineManifest:
    """Record that a fixed version of the quarantined data passed validation.

    Raises:
        ConfigError: the folder is not a quarantine folder, or the report did not pass.
    """
    manifest = load_manifest(quarantine_dir)
    if not report.passed or report.accepted is None:
        raise ConfigError(
            f"cannot release {quarantine_dir}: the replayed batch was {report.verdict.value}"
        )
    released = manifest.model_copy(
        update={
            "status": QuarantineStatus.RELEASED,
            "released_at": datetime.now(UTC),
            "released_as": report.accepted,
            "release_report": report.report_json,
        }
    )
    write_text(Path(quarantine_dir) / MANIFEST, released.model_dump_json(indent=2))
    logger.info("released %s as batch %s", quarantine_dir, report.accepted.sha256[:12])
    return released


def replay_quarantined(quarantine_dir: Path, settings: Settings) -> ValidationReport:
    """Re-validate the (fixed) data file of a quarantine folder; release it if it passes.

    Raises:
        ConfigError: not a quarantine folder, or no reference profile to validate against.
        SourceError: the data file is missing or unreadable.
    """
    manifest = load_manifest(quarantine_dir)
    spec = DatasetSpec.model_validate(manifest.spec)
    profile = load_profile(spec, settings)
    if profile is None:
        raise ConfigError(
            f"no reference profile for {spec.name!r}: learn one (`mlops data profile`) first"
        )
    data_file = Path(manifest.data_file)
    if not data_file.is_absolute():
        data_file = Path(quarantine_dir) / data_file
    frame, batch = ingest_batch(spec.with_source_path(data_file), settings)
    report = validate_batch(frame, batch, spec, profile, settings)
    if report.passed:
        mark_released(quarantine_dir, report)
    else:
        logger.warning("replay of %s was %s", quarantine_dir, report.verdict.value)
    return report
