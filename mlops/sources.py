"""Reading batches from a dataset's source and keeping an immutable copy of each.

Every batch is snapshotted into the state directory under its content hash before
anything looks at it: raw data is never rewritten, and a re-run on the same bytes
finds the same snapshot.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from mlops.contracts import DatasetRef
from mlops.dataset_spec import DatasetSpec
from mlops.errors import SourceError
from mlops.settings import Settings

_READERS = {".parquet": pd.read_parquet, ".pq": pd.read_parquet, ".csv": pd.read_csv}


def sha256_file(path: Path) -> str:
    """Content hash of a file, streamed so large batches do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_frame(path: Path) -> pd.DataFrame:
    """Read a parquet or CSV file.

    Raises:
        SourceError: the file is missing or its format is not supported.
    """
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"unsupported file type {path.suffix!r} for {path}: use parquet or CSV")
    if not path.is_file():
        raise SourceError(f"data file not found: {path}")
    frame: pd.DataFrame = reader(path)
    return frame


def read_batch(spec: DatasetSpec, path: Path) -> pd.DataFrame:
    """Read a stored batch with its timestamp column as UTC datetimes.

    CSV has no datetime type and parquet may hold naive times: both are normalised
    here so every stage sees one representation. Unparseable times become NaT, which
    the validation suite reports by name rather than crashing on.
    """
    frame = read_frame(path)
    if spec.timestamp in frame.columns:
        frame[spec.timestamp] = pd.to_datetime(frame[spec.timestamp], utc=True, errors="coerce")
    return frame


def read_table(database_url: str, table: str, order_by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a whole PostgreSQL table (`name` or `schema.name`) into a frame.

    Ordering by the key columns makes the snapshot, and so its hash, reproducible.

    Raises:
        SourceError: the database is unreachable or the table does not exist.
    """
    identifier = sql.Identifier(*table.split("."))
    try:
        with psycopg.connect(database_url) as conn, conn.cursor() as cur:
            query = sql.SQL("SELECT * FROM {}").format(identifier)
            if order_by:
                keys = sql.SQL(", ").join(sql.Identifier(c) for c in order_by)
                query = sql.SQL("{} ORDER BY {}").format(query, keys)
            cur.execute(query)
            columns = [d.name for d in cur.description or ()]
            rows = cur.fetchall()
    except psycopg.Error as exc:
        raise SourceError(f"cannot read table {table!r}: {exc}".strip()) from exc
    return pd.DataFrame.from_records(rows, columns=columns)


def ingest_batch(spec: DatasetSpec, settings: Settings) -> tuple[pd.DataFrame, DatasetRef]:
    """Snapshot the spec's source into the raw store and describe it.

    A file is copied byte for byte (its hash is the file's); a table is written to
    parquet first and hashed as written.

    Raises:
        SourceError: the spec has no source, or the source cannot be read.
    """
    if spec.source is None:
        raise SourceError(f"dataset {spec.name!r} has no source: pass --data PATH or set source")
    target_dir = settings.raw_dir / spec.name
    target_dir.mkdir(parents=True, exist_ok=True)
    if spec.source.path is not None:
        path = spec.source.path
        frame = read_batch(spec, path)
        digest = sha256_file(path)
        snapshot = target_dir / f"{digest}{path.suffix.lower()}"
        if not snapshot.exists():
            staging = _staging_path(target_dir)
            shutil.copyfile(path, staging)
            os.replace(staging, snapshot)
    else:
        assert spec.source.table is not None
        frame = read_table(settings.require_database_url(), spec.source.table, spec.key_columns)
        staging = _staging_path(target_dir)
        frame.to_parquet(staging, index=False)
        digest = sha256_file(staging)
        snapshot = target_dir / f"{digest}.parquet"
        os.replace(staging, snapshot)
        frame = read_batch(spec, snapshot)
    return frame, describe_batch(spec, frame, snapshot, digest)


def _staging_path(directory: Path) -> Path:
    """A private name to write to before an atomic rename: a crash never leaves a
    truncated file under a content hash."""
    return directory / f".partial-{uuid.uuid4().hex}"


def describe_batch(spec: DatasetSpec, frame: pd.DataFrame, uri: Path, digest: str) -> DatasetRef:
    """A `DatasetRef` for a frame stored at `uri` with content hash `digest`."""
    start = end = None
    if spec.timestamp in frame.columns and len(frame):
        stamps = pd.to_datetime(frame[spec.timestamp], errors="coerce", utc=True).dropna()
        if len(stamps):
            # Python datetimes hold microseconds: round outwards so the window still
            # contains every row.
            start = stamps.min().floor("us").to_pydatetime()
            end = stamps.max().ceil("us").to_pydatetime()
    return DatasetRef(
        dataset=spec.name,
        uri=str(uri),
        sha256=digest,
        rows=len(frame),
        start=start,
        end=end,
    )
