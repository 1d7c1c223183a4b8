"""Reading batches from a dataset's source and keeping an immutable copy of each.

Every batch is snapshotted into the raw store under its content hash before anything
looks at it: raw data is never rewritten, and a re-run on the same bytes finds the same
snapshot. The raw store is `<home>/raw/<dataset>/` or, with a bucket configured,
`s3://<bucket>/<prefix>raw/<dataset>/` (see `mlops.storage`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd
import psycopg
from psycopg import sql

from mlops.contracts import DatasetRef
from mlops.dataset_spec import DatasetSpec
from mlops.errors import ConfigError, SourceError
from mlops.settings import Settings
from mlops.storage import (
    ObjectPath,
    is_remote,
    local_path,
    locate,
    publish_file,
    sha256_of,
    staging_file,
)

_READERS = {".parquet": pd.read_parquet, ".pq": pd.read_parquet, ".csv": pd.read_csv}

sha256_file = sha256_of
"""Content hash of a file, streamed so large batches do not fill memory."""


def read_frame(path: Path | str, settings: Settings | None = None) -> pd.DataFrame:
    """Read a parquet or CSV file: a local path, or an `s3://` URI given `settings`.

    Raises:
        SourceError: the file is missing or its format is not supported.
        ConfigError: an `s3://` URI without the settings that say how to reach it.
    """
    suffix = PurePosixPath(str(path)).suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise SourceError(f"unsupported file type {suffix!r} for {path}: use parquet or CSV")
    if is_remote(path):
        if settings is None:
            raise ConfigError(f"reading {path} needs the settings naming the S3 endpoint")
        path = local_path(str(path), settings)
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"data file not found: {path}")
    frame: pd.DataFrame = reader(path)
    return frame


def read_batch(
    spec: DatasetSpec, path: Path | str, settings: Settings | None = None
) -> pd.DataFrame:
    """Read a stored batch with its timestamp column as UTC datetimes.

    CSV has no datetime type and parquet may hold naive times: both are normalised
    here so every stage sees one representation. Unparseable times become NaT, which
    the validation suite reports by name rather than crashing on. `path` may be a
    batch reference's URI (`s3://...` needs `settings`).
    """
    frame = read_frame(path, settings)
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
    target_dir = locate(settings, settings.raw_dir / spec.name)
    if spec.source.path is not None:
        path = spec.source.path
        frame = read_batch(spec, path)
        digest = sha256_file(path)
        snapshot = target_dir / f"{digest}{path.suffix.lower()}"
        # Copied through a private name and renamed (or uploaded whole): a crash never
        # leaves a truncated file under a content hash.
        publish_file(path, snapshot, move=False)
    else:
        assert spec.source.table is not None
        frame = read_table(settings.require_database_url(), spec.source.table, spec.key_columns)
        with staging_file(target_dir / "table.parquet") as staging:
            frame.to_parquet(staging, index=False)
            digest = sha256_file(staging)
            snapshot = target_dir / f"{digest}.parquet"
            publish_file(staging, snapshot, overwrite=True)
        frame = read_batch(spec, local_path(snapshot, settings))
    return frame, describe_batch(spec, frame, snapshot, digest)


def describe_batch(
    spec: DatasetSpec, frame: pd.DataFrame, uri: Path | ObjectPath | str, digest: str
) -> DatasetRef:
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
