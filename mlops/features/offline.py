"""The parquet offline store: one immutable file per accepted batch, named by its hash.

Features go to `feast_dir/offline/<dataset>/<sha256>.parquet` and labels to
`feast_dir/labels/<dataset>/<sha256>.parquet`. The Feast `FileSource` reads every
batch file through one absolute glob (duckdb expands it), so appending a batch is
writing one file, and writing the same batch again finds the file and does nothing.
Every file of a dataset has the same explicit Arrow schema, so duckdb can read them
as one table.

With a bucket configured the files live in S3 under the same keys
(`s3://<bucket>/<prefix>feast/offline/<dataset>/<sha256>.parquet`), and the folder
DuckDB reads is their mirror in the object cache (`<home>/cache/s3/<bucket>/...`),
brought up to date before every read (`feature_batches`, `label_batches`): Feast 0.67's
duckdb store reads `s3://` paths only through DuckDB's `httpfs` extension, which DuckDB
downloads from extensions.duckdb.org at first use (refused on machines without
internet access), and it passes `s3_endpoint_override` only together with explicit
credentials. The batch files are immutable, so the mirror only ever adds files: a
machine downloads each batch once.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.errors import ConfigError, FeatureStoreError
from mlops.settings import Settings
from mlops.storage import Location, local_files, local_folder, locate, publish_file, staging_file
from mlops.timestamps import as_utc

logger = logging.getLogger(__name__)

INGESTED_AT = "__ingested_at"
"""Write time of the batch; Feast's created-timestamp column, so a later batch wins ties."""

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
# duckdb cannot cast pandas' default TIMESTAMPTZ_NS to the TIMESTAMP Feast filters on.

_BATCH_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def offline_location(spec: DatasetSpec, settings: Settings) -> Location:
    """Where the dataset's feature batches are stored (a folder, or an S3 prefix)."""
    return locate(settings, settings.feast_dir / "offline" / spec.name)


def labels_location(spec: DatasetSpec, settings: Settings) -> Location:
    """Where the dataset's label batches are stored (the entity frames of training sets)."""
    return locate(settings, settings.feast_dir / "labels" / spec.name)


def offline_dir(spec: DatasetSpec, settings: Settings) -> Path:
    """The local folder of the dataset's feature batches that DuckDB reads (the store
    itself, or its mirror in the object cache)."""
    return local_folder(offline_location(spec, settings))


def labels_dir(spec: DatasetSpec, settings: Settings) -> Path:
    """The local folder of the dataset's label batches (the store, or its mirror)."""
    return local_folder(labels_location(spec, settings))


def offline_glob(spec: DatasetSpec, settings: Settings) -> str:
    """The absolute path pattern the Feast source reads (duckdb resolves relative paths
    against the cwd, so it must be absolute)."""
    return str(offline_dir(spec, settings).resolve() / "*.parquet")


def offline_uri(spec: DatasetSpec, settings: Settings) -> str:
    """The feature batches' folder as references name it: a path, or an `s3://` prefix."""
    location = offline_location(spec, settings)
    return str(location.resolve()) if isinstance(location, Path) else str(location)


def batch_files(folder: Path) -> list[Path]:
    """The batch files of a local folder in a stable order (by name)."""
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def feature_batches(spec: DatasetSpec, settings: Settings) -> list[Path]:
    """Local files of every stored feature batch, by name; an S3 store is mirrored first,
    so DuckDB (reading `offline_glob`) sees every batch."""
    return local_files(offline_location(spec, settings), ".parquet")


def label_batches(spec: DatasetSpec, settings: Settings) -> list[Path]:
    """Local files of every stored label batch, by name (mirrored like `feature_batches`)."""
    return local_files(labels_location(spec, settings), ".parquet")


def feature_arrow_schema(
    spec: DatasetSpec, schema: FeatureSchema, entity: pa.DataType
) -> pa.Schema:
    """The Arrow schema every feature batch of the dataset is written with."""
    return pa.schema(
        [
            pa.field(spec.entity, entity, nullable=False),
            pa.field(spec.timestamp, TIMESTAMP_TYPE, nullable=False),
            *(pa.field(c, pa.float64()) for c in schema.numeric),
            *(pa.field(c, pa.string()) for c in schema.categorical),
            pa.field(INGESTED_AT, TIMESTAMP_TYPE, nullable=False),
        ]
    )


def stored_entity_type(spec: DatasetSpec, settings: Settings) -> pa.DataType | None:
    """The Arrow type of the entity column in the stored batches (None before the first)."""
    files = feature_batches(spec, settings)
    if not files:
        return None
    return pq.read_schema(files[0]).field(spec.entity).type


def stored_feature_schema(spec: DatasetSpec, settings: Settings) -> FeatureSchema | None:
    """The feature schema the stored batches were written with (None before the first)."""
    files = feature_batches(spec, settings)
    if not files:
        return None
    arrow = pq.read_schema(files[0])
    skip = {spec.entity, spec.timestamp, INGESTED_AT}
    numeric = tuple(f.name for f in arrow if f.name not in skip and pa.types.is_floating(f.type))
    categorical = tuple(f.name for f in arrow if f.name not in skip and pa.types.is_string(f.type))
    return FeatureSchema(numeric=numeric, categorical=categorical)


def write_offline_batch(
    spec: DatasetSpec,
    schema: FeatureSchema,
    frame: pd.DataFrame,
    batch_sha256: str,
    settings: Settings,
) -> Location:
    """Append a validated batch to the offline store; a batch already written is a no-op.

    The features file holds entity, timestamp (UTC), numeric features as float64 and
    categorical features as strings; the labels file holds entity, timestamp and label.
    Files are written to a hidden temporary name and renamed, so a crash never leaves a
    half-written batch that the glob would read.

    Returns:
        The location of the batch's features file.

    Raises:
        ConfigError: a column named by the spec or the schema is missing.
        FeatureStoreError: the batch is not compatible with the batches already stored
            (another entity type or feature schema), or has null keys.
    """
    if not _BATCH_NAME.match(batch_sha256):
        raise FeatureStoreError(f"batch hash {batch_sha256!r} is not a valid file name")
    needed = [spec.entity, spec.timestamp, spec.label, *schema.columns]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ConfigError(f"dataset {spec.name!r}: batch lacks columns {missing}")

    features_path = offline_location(spec, settings) / f"{batch_sha256}.parquet"
    labels_path = labels_location(spec, settings) / f"{batch_sha256}.parquet"
    if features_path.is_file() and labels_path.is_file():
        logger.info("batch %s of %s already in the offline store", batch_sha256[:12], spec.name)
        return features_path

    entity, entity_type = _entity_column(spec, frame)
    stamps = _utc_timestamps(spec, frame)
    labels = pa.table(
        {
            spec.entity: entity,
            spec.timestamp: stamps,
            spec.label: _label_array(frame[spec.label]),
        }
    )
    features_schema = feature_arrow_schema(spec, schema, entity_type)
    # Check both before writing either, so a refused batch leaves nothing behind.
    _check_compatible(spec, feature_batches(spec, settings), features_schema)
    _check_compatible(spec, label_batches(spec, settings), labels.schema)

    if not features_path.is_file():
        columns: dict[str, pa.Array] = {spec.entity: entity, spec.timestamp: stamps}
        for name in schema.numeric:
            columns[name] = pa.array(pd.to_numeric(frame[name]).astype("float64"), pa.float64())
        for name in schema.categorical:
            columns[name] = _string_array(frame[name])
        ingested_at = pa.scalar(pd.Timestamp.now(tz="UTC"), TIMESTAMP_TYPE)
        columns[INGESTED_AT] = pa.repeat(ingested_at, len(frame))
        _write_atomically(pa.Table.from_pydict(columns, schema=features_schema), features_path)
    if not labels_path.is_file():
        _write_atomically(labels, labels_path)
    logger.info(
        "wrote batch %s of %s to the offline store: %d rows",
        batch_sha256[:12],
        spec.name,
        len(frame),
    )
    return features_path


def read_labels(
    spec: DatasetSpec,
    settings: Settings,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """All label rows (entity, timestamp, label), optionally within [start, end].

    Rows are in a reproducible order: batch files by name, then a stable sort by
    timestamp, so the same stored batches always give the same frame.
    """
    files = label_batches(spec, settings)
    columns = [spec.entity, spec.timestamp, spec.label]
    if not files:
        return pd.DataFrame(columns=columns)
    table = pa.concat_tables(
        [pq.read_table(f, columns=columns) for f in files], promote_options="permissive"
    )
    if start is not None:
        table = table.filter(
            pc.greater_equal(table[spec.timestamp], pa.scalar(as_utc(start), TIMESTAMP_TYPE))
        )
    if end is not None:
        table = table.filter(
            pc.less_equal(table[spec.timestamp], pa.scalar(as_utc(end), TIMESTAMP_TYPE))
        )
    frame = table.to_pandas()
    return frame.sort_values(spec.timestamp, kind="stable", ignore_index=True)


def event_time_range(spec: DatasetSpec, settings: Settings) -> tuple[datetime, datetime] | None:
    """Earliest and latest feature timestamps stored (None when nothing is stored)."""
    files = feature_batches(spec, settings)
    if not files:
        return None
    stamps = pa.chunked_array(
        [
            c
            for f in files
            for c in pq.read_table(f, columns=[spec.timestamp])[spec.timestamp].chunks
        ],
        TIMESTAMP_TYPE,
    )
    if len(stamps) == 0:
        return None
    bounds = pc.min_max(stamps)
    return bounds["min"].as_py(), bounds["max"].as_py()


def _entity_column(spec: DatasetSpec, frame: pd.DataFrame) -> tuple[pa.Array, pa.DataType]:
    """Entity ids as int64 when the data holds integers, else as strings."""
    series = frame[spec.entity]
    if series.isna().any():
        raise FeatureStoreError(
            f"dataset {spec.name!r}: {int(series.isna().sum())} rows lack an entity id"
        )
    if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return pa.array(series.astype("int64"), pa.int64()), pa.int64()
    if pd.api.types.is_float_dtype(series) and bool((series == series.round()).all()):
        return pa.array(series.astype("int64"), pa.int64()), pa.int64()
    return pa.array(series.astype(str), pa.string()), pa.string()


def _utc_timestamps(spec: DatasetSpec, frame: pd.DataFrame) -> pa.Array:
    """Event timestamps as UTC microseconds; naive values are taken as UTC."""
    stamps = pd.to_datetime(frame[spec.timestamp], utc=True, errors="coerce")
    if stamps.isna().any():
        raise FeatureStoreError(
            f"dataset {spec.name!r}: {int(stamps.isna().sum())} rows lack a valid timestamp"
        )
    return pa.array(stamps.astype("datetime64[us, UTC]"), TIMESTAMP_TYPE)


def _string_array(series: pd.Series) -> pa.Array:
    """Categories as strings, nulls kept null (not the string 'nan')."""
    return pa.array(series.astype("string"), pa.string())


def _label_array(series: pd.Series) -> pa.Array:
    """Labels as int64 when integral (binary 0/1, class ids), else as strings."""
    if pd.api.types.is_bool_dtype(series):
        return pa.array(series.astype("int64"), pa.int64())
    if pd.api.types.is_integer_dtype(series):
        return pa.array(series.astype("int64"), pa.int64())
    if pd.api.types.is_float_dtype(series) and bool((series == series.round()).all()):
        return pa.array(series.astype("int64"), pa.int64())  # 0.0/1.0 read back from CSV
    return pa.array(series.astype("string"), pa.string())


def _check_compatible(spec: DatasetSpec, files: list[Path], arrow_schema: pa.Schema) -> None:
    """Refuse a batch whose schema differs from the stored ones: the files are read as
    one table, and a mismatch would surface later as a confusing query error."""
    if not files:
        return
    stored = pq.read_schema(files[0]).remove_metadata()
    if not stored.equals(arrow_schema.remove_metadata()):
        raise FeatureStoreError(
            f"dataset {spec.name!r}: the batch's schema differs from the stored batches "
            f"({files[0].parent.name}/{files[0].name}); stored {stored.names} {stored.types}, "
            f"new {arrow_schema.names} {arrow_schema.types}; "
            "use a new dataset name for a new schema"
        )


def _write_atomically(table: pa.Table, path: Location) -> None:
    with staging_file(path) as partial:  # one per writer
        pq.write_table(table, partial)
        publish_file(partial, path, overwrite=True)
