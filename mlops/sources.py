"""Reading batches from a dataset's source and keeping an immutable copy of each.

Every batch is snapshotted into the state directory under its content hash before
anything looks at it: raw data is never rewritten, and a re-run on the same bytes
finds the same snapshot.
"""

from __future__ import annotations

import hashlib
import shutil
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
        frame = read_frame(path)
        digest = sha256_file(path)
        snapshot = target_dir / f"{digest}{path.suffix.lower()}"
        if not snapshot.exists():
            shutil.copyfile(path, snapshot)
    else:
        assert spec.source.table is not None
        frame = read_table(settings.require_database_url(), spec.source.table, spec.key_columns)
        staging = target_dir / f".{spec.source.table}.parquet.partial"
        frame.to_parquet(staging, index=False)
        digest = sha256_file(staging)
        snapshot = target_dir / f"{digest}.parquet"
        staging.replace(snapshot)
    return frame, describe_batch(spec, frame, snapshot, digest)


def describe_batch(spec: DatasetSpec, frame: pd.DataFrame, uri: Path, digest: str) -> DatasetRef:
    """A `DatasetRef` for a frame stored at `uri` with content hash `digest`."""
    start = end = None
    if spec.timestamp in frame.columns and len(frame):
        stamps = pd.to_datetime(frame[spec.timestamp], errors="coerce", utc=True).dropna()
        if len(stamps):
            start, end = stamps.min().to_pydatetime(), stamps.max().to_pydatetime()
    return DatasetRef(
        dataset=spec.name,
        uri=str(uri),
        sha256=digest,
        rows=len(frame),
        start=start,
        end=end,
    )
