"""Where prediction-log batches land: local parquet parts or PostgreSQL tables.

A sink takes one Arrow table of one kind (`predictions` or `feedback`) per call and
either stores all of it or raises. Both sinks are idempotent, so the writer may
replay a spilled batch that did land before (an ambiguous commit, a crash between
writing and deleting a spill file) without duplicating rows:

- `ParquetSink` names each part file by a digest of the rows it holds, so a replay
  rewrites the same file with the same content;
- `PostgresSink` inserts through a staging table with `ON CONFLICT DO NOTHING` on the
  primary key `prediction_id` (feedback: the latest label wins).

A table an older version created gets the columns added since
(`ADDED_PREDICTION_COLUMNS`) on a writer's first connection, with a default that an
older writer still inserting beside it relies on.

Only the writer thread of one `PredictionLog` calls a sink; sinks are not thread-safe.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from mlops.errors import ConfigError
from mlops.settings import Profile, Settings
from serving.prediction_log.records import (
    ADDED_PREDICTION_COLUMNS,
    SCHEMAS,
    RecordKind,
    content_digest,
)

logger = logging.getLogger(__name__)

PREDICTIONS_TABLE = "prediction_log"
FEEDBACK_TABLE = "prediction_feedback"

POSTGRES_DDL = f"""
CREATE TABLE IF NOT EXISTS {PREDICTIONS_TABLE} (
    prediction_id  text PRIMARY KEY,
    request_id     text NOT NULL,
    model_name     text NOT NULL,
    model_version  text NOT NULL,
    variant        text NOT NULL,
    shadow         boolean NOT NULL,
    pinned         boolean NOT NULL DEFAULT false,
    entity         text,
    features       jsonb NOT NULL,
    probabilities  double precision[] NOT NULL,
    prediction     text NOT NULL,
    latency_ms     double precision NOT NULL,
    status         text NOT NULL,
    error          text,
    ts             timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {PREDICTIONS_TABLE}_model_ts_idx
    ON {PREDICTIONS_TABLE} (model_name, ts);
CREATE INDEX IF NOT EXISTS {PREDICTIONS_TABLE}_ts_idx ON {PREDICTIONS_TABLE} (ts);
CREATE TABLE IF NOT EXISTS {FEEDBACK_TABLE} (
    prediction_id  text PRIMARY KEY,
    label          text NOT NULL,
    ts             timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {FEEDBACK_TABLE}_ts_idx ON {FEEDBACK_TABLE} (ts);
"""
"""The two tables (created when absent). No foreign key from feedback to predictions:
a label may land before its prediction does (while that one waits in a spill file)."""

_ADDED_COLUMN_TYPES: dict[str, str] = {"pinned": "boolean"}
"""The SQL types of `ADDED_PREDICTION_COLUMNS`, for a table created without them."""

_STAGING_DDL = f"""
CREATE TEMP TABLE IF NOT EXISTS _stage_{PREDICTIONS_TABLE}
    (LIKE {PREDICTIONS_TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _stage_{FEEDBACK_TABLE}
    (LIKE {FEEDBACK_TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
"""

_PREDICTION_COLUMNS = SCHEMAS["predictions"].names
_FEEDBACK_COLUMNS = SCHEMAS["feedback"].names

_INSERT: dict[RecordKind, str] = {
    "predictions": (
        f"INSERT INTO {PREDICTIONS_TABLE} ({', '.join(_PREDICTION_COLUMNS)}) "
        f"SELECT {', '.join(_PREDICTION_COLUMNS)} FROM _stage_{PREDICTIONS_TABLE} "
        "ON CONFLICT (prediction_id) DO NOTHING"
    ),
    # Latest label wins; replaying the same row changes nothing.
    "feedback": (
        f"INSERT INTO {FEEDBACK_TABLE} AS f (prediction_id, label, ts) "
        f"SELECT DISTINCT ON (prediction_id) prediction_id, label, ts "
        f"FROM _stage_{FEEDBACK_TABLE} ORDER BY prediction_id, ts DESC, label "
        "ON CONFLICT (prediction_id) DO UPDATE SET label = EXCLUDED.label, ts = EXCLUDED.ts "
        "WHERE f.ts < EXCLUDED.ts"
    ),
}

_ADVISORY_LOCK_KEY = "mlops.prediction_log.schema"


class PredictionSink(Protocol):
    """Stores one batch (all of it, or raises) and is idempotent on replays."""

    def write(self, kind: RecordKind, table: pa.Table) -> None: ...

    def close(self) -> None: ...


def postgres_conninfo(url: str) -> str:
    """A psycopg URL from any of `postgresql://`, `postgres://`, `postgresql+psycopg://`."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in {"postgresql", "postgres"}:
        raise ConfigError(f"the prediction log needs a postgresql:// URL, not {url!r}")
    return "postgresql://" + rest


def prediction_log_url(settings: Settings) -> str | None:
    """The PostgreSQL URL of the prediction log, or None for local parquet.

    `serving.prediction_log_url` wins; the production profile falls back to the
    shared `database_url`; the embedded profile writes parquet under the state dir.
    """
    if settings.serving.prediction_log_url:
        return settings.serving.prediction_log_url
    if settings.profile is Profile.PRODUCTION:
        return settings.require_database_url()
    return None


# --- parquet -------------------------------------------------------------------------


def partition_dir(directory: Path, kind: RecordKind, day: date) -> Path:
    """`<directory>/<kind>/date=YYYY-MM-DD` (the UTC day of the rows' `ts`)."""
    return directory / kind / f"date={day.isoformat()}"


def write_parquet_atomically(table: pa.Table, path: Path, *, fsync: bool = False) -> None:
    """Write `path` through a hidden temporary name and a rename: readers never see
    half a file, and a crash leaves at most a `.tmp` file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ParquetSink:
    """Append-only parquet parts, partitioned by UTC day, safe for several processes.

    Layout: `<directory>/predictions/date=YYYY-MM-DD/part-<digest>.parquet` and the
    same under `feedback/`. The digest is computed from the rows (see
    `content_digest`), so parts written by different uvicorn workers never collide,
    and a replayed batch overwrites its own earlier copy instead of duplicating it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, kind: RecordKind, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        days = pc.strftime(table.column("ts"), format="%Y-%m-%d")
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, day))
            name = f"part-{content_digest(kind, part)}.parquet"
            target = partition_dir(self.directory, kind, date.fromisoformat(day)) / name
            write_parquet_atomically(part, target)

    def close(self) -> None:
        return None


# --- PostgreSQL ----------------------------------------------------------------------


def connect_postgres(
    url: str, *, connect_timeout: float = 5.0, autocommit: bool = True
) -> psycopg.Connection[Any]:
    """A connection with short timeouts and TCP keepalives, so a dead server is
    noticed in seconds instead of hanging the writer."""
    return psycopg.connect(
        postgres_conninfo(url),
        autocommit=autocommit,
        connect_timeout=max(1, round(connect_timeout)),
        keepalives=1,
        keepalives_idle=5,
        keepalives_interval=2,
        keepalives_count=3,
    )


def table_columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    """The columns of `table`, its name resolved as a query would; empty when absent."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s::text) "
        "AND attnum > 0 AND NOT attisdropped",
        (table,),
    ).fetchall()
    return {str(row[0]) for row in rows}


def ensure_postgres_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the tables when absent, and add the columns an older version's table
    lacks; an advisory lock serialises concurrent workers (two `CREATE TABLE IF NOT
    EXISTS` racing can otherwise fail, and two workers would add a column twice).

    Only a missing column is altered: `ALTER TABLE` takes an exclusive lock even when
    it changes nothing, and would queue every insert behind a long read.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_ADVISORY_LOCK_KEY,))
        conn.execute(POSTGRES_DDL)
        present = table_columns(conn, PREDICTIONS_TABLE)
        for name, value in ADDED_PREDICTION_COLUMNS.items():
            if name in present:
                continue
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {} NOT NULL DEFAULT {}").format(
                    sql.Identifier(PREDICTIONS_TABLE),
                    sql.Identifier(name),
                    sql.SQL(_ADDED_COLUMN_TYPES[name]),
                    sql.Literal(value),
                )
            )
            logger.info("prediction log: added column %s.%s", PREDICTIONS_TABLE, name)


class PostgresSink:
    """Batched, idempotent inserts into `prediction_log` and `prediction_feedback`.

    Each batch is one transaction: COPY into a temporary staging table, then one
    `INSERT ... SELECT ... ON CONFLICT` into the real table. The connection is opened
    lazily on the first write (the service starts even while the database is down)
    and dropped on any error; the next write reconnects and re-checks the schema.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        statement_timeout_ms: int = 60_000,
    ) -> None:
        self._conninfo = postgres_conninfo(url)
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = statement_timeout_ms
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._discard()
        conn = connect_postgres(self._conninfo, connect_timeout=self._connect_timeout)
        try:
            conn.execute(
                sql.SQL("SET statement_timeout = {}").format(
                    sql.Literal(self._statement_timeout_ms)
                )
            )
            ensure_postgres_schema(conn)
            conn.execute(_STAGING_DDL)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _discard(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a broken connection may fail to close: it is gone anyway
                pass
            self._conn = None

    def write(self, kind: RecordKind, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        target = PREDICTIONS_TABLE if kind == "predictions" else FEEDBACK_TABLE
        names = SCHEMAS[kind].names
        rows = zip(*(table.column(name).to_pylist() for name in names), strict=True)
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(f"_stage_{target}"),
            sql.SQL(", ").join(sql.Identifier(name) for name in names),
        )
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(_INSERT[kind])
        except BaseException:
            self._discard()
            raise

    def close(self) -> None:
        self._discard()
