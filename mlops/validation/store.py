"""Where validation leaves its evidence: quarantine folders, accepted rows, the ledger.

Everything is named by content hash, so validating the same batch again rewrites the
same files instead of adding new ones. Files a person may be editing (the quarantined
data) are written once and never overwritten; raw batches are copied, never moved.

Folders are `Location`s (see `mlops.storage`): under the state directory in the
embedded profile, objects under the same keys in the bucket once one is configured.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict

from mlops.contracts import DatasetRef, ValidationReport
from mlops.dataset_spec import DatasetSpec
from mlops.settings import Settings
from mlops.sources import describe_batch, sha256_file
from mlops.storage import (
    Location,
    copy_file,
    locate,
    publish_file,
    resolve_near,
    staging_file,
)
from mlops.storage import write_text as _write_text

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RESULT = "result.json"
REPORT = "report.html"
ROWS = "rows.parquet"
SPEC = "spec.yaml"
ROW_COLUMN = "__row"
FAILED_COLUMN = "__failed_expectations"


class QuarantineKind(StrEnum):
    """Whether the whole batch or only some of its rows were held back."""

    BATCH = "batch"
    ROWS = "rows"


class QuarantineStatus(StrEnum):
    """Quarantined until a fixed version passes validation, then released."""

    QUARANTINED = "quarantined"
    RELEASED = "released"


class QuarantineManifest(BaseModel):
    """What a quarantine folder holds and what a person does with it."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    spec: dict[str, Any]
    batch: DatasetRef
    kind: QuarantineKind
    data_file: str
    status: QuarantineStatus
    created_at: datetime
    failed_expectations: tuple[str, ...]
    bad_rows: int
    instructions: str = ""
    released_at: datetime | None = None
    released_as: DatasetRef | None = None
    release_report: str | None = None


def quarantine_folder(settings: Settings, dataset: str, sha256: str) -> Location:
    """The quarantine folder of a batch."""
    return locate(settings, settings.quarantine_dir / dataset / sha256[:16])


def ledger_path(settings: Settings, dataset: str, sha256: str) -> Location:
    """The ledger record of a batch that passed."""
    return locate(settings, settings.ledger_dir / dataset / f"{sha256}.json")


def write_text(path: Location, text: str) -> None:
    """Write atomically: readers never see half a file."""
    _write_text(path, text)


def write_accepted_rows(frame: pd.DataFrame, spec: DatasetSpec, settings: Settings) -> DatasetRef:
    """Store rows that go on as a new immutable batch named by its content hash."""
    folder = locate(settings, settings.raw_dir / spec.name / "accepted")
    with staging_file(folder / "accepted.parquet") as partial:
        frame.to_parquet(partial, index=False)
        digest = sha256_file(partial)
        target = folder / f"{digest}.parquet"
        publish_file(partial, target)
    return describe_batch(spec, frame, target, digest)


def write_ledger(report: ValidationReport, settings: Settings) -> Location:
    """Record a batch that passed; the content hash names the record."""
    path = ledger_path(settings, report.dataset, report.batch.sha256)
    write_text(path, report.model_dump_json(indent=2))
    return path


def write_quarantine(
    folder: Location,
    *,
    report: ValidationReport,
    spec: DatasetSpec,
    frame: pd.DataFrame,
    bad_rows: pd.DataFrame | None,
    gx_result: dict[str, Any],
    html: str,
) -> QuarantineManifest:
    """Fill a quarantine folder: data to fix, result.json, report.html, spec and manifest.

    With `bad_rows` the folder holds only those rows (kind "rows"); otherwise a copy of
    the raw batch (kind "batch"). An existing data file is kept: it may hold a person's
    fixes in progress.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if bad_rows is not None:
        kind = QuarantineKind.ROWS
        data_file = folder / ROWS
        if not data_file.is_file():
            _write_parquet(bad_rows, data_file)
    else:
        kind = QuarantineKind.BATCH
        data_file = _copy_batch(report.batch, frame, folder)
    write_text(
        folder / RESULT,
        json.dumps(
            {"report": report.model_dump(mode="json"), "great_expectations": gx_result},
            indent=2,
            default=str,
        ),
    )
    write_text(folder / REPORT, html)
    write_text(folder / SPEC, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    manifest = _manifest(folder, report, spec, kind, data_file)
    write_text(folder / MANIFEST, manifest.model_dump_json(indent=2))
    logger.warning("quarantined %s of batch %s in %s", kind.value, report.batch.sha256[:12], folder)
    return manifest


def _manifest(
    folder: Location,
    report: ValidationReport,
    spec: DatasetSpec,
    kind: QuarantineKind,
    data_file: Location,
) -> QuarantineManifest:
    fresh = QuarantineManifest(
        dataset=report.dataset,
        spec=spec.model_dump(mode="json"),
        batch=report.batch,
        kind=kind,
        data_file=str(data_file.resolve()),
        status=QuarantineStatus.QUARANTINED,
        created_at=datetime.now(UTC),
        failed_expectations=tuple(o.name for o in report.failed),
        bad_rows=report.bad_rows,
        instructions=(
            f"Fix {data_file.name} in this folder (the raw batch itself stays untouched), "
            f"then run `mlops data replay {folder}`."
        ),
    )
    path = folder / MANIFEST
    if not path.is_file():
        return fresh
    try:
        previous = QuarantineManifest.model_validate_json(path.read_text())
    except ValueError:
        logger.warning("replacing unreadable manifest %s", path)
        return fresh
    # Same batch again: keep when it was first quarantined and whether it was released.
    return fresh.model_copy(
        update={
            "created_at": previous.created_at,
            "status": previous.status,
            "released_at": previous.released_at,
            "released_as": previous.released_as,
            "release_report": previous.release_report,
        }
    )


def _copy_batch(batch: DatasetRef, frame: pd.DataFrame, folder: Location) -> Location:
    source = resolve_near(batch.uri, folder)
    if source.is_file():
        target = folder / f"batch{source.suffix.lower()}"
        copy_file(source, target)  # an existing copy is kept
        return target
    logger.warning("batch %s is not a stored file: quarantining the frame as parquet", batch.uri)
    target = folder / "batch.parquet"
    if not target.is_file():
        _write_parquet(frame, target)
    return target


def _write_parquet(frame: pd.DataFrame, path: Location) -> None:
    with staging_file(path) as partial:
        frame.to_parquet(partial, index=False)
        publish_file(partial, path, overwrite=True)
