"""The control database the stores share: one way to name it, connect to it, create tables.

The retraining ledger, the data-quality incidents, the rollout audit trail and the
rollout lock each keep a few rows in SQL: a SQLite file under the state directory in
the embedded profile, the PostgreSQL database of `MLOPS_DATABASE_URL` in production.
They used to normalise URLs, build engines and create their tables each in its own
way; this module is the one copy, so the four stores cannot drift apart (a driver
prefix, a busy timeout, a schema race fixed in one and not in the others).

* `sqlalchemy_url` / `control_url`: what a store connects to (`postgresql://` gets
  the psycopg 3 driver, a bare path becomes a SQLite URL);
* `get_engine`: one engine per database and options, per process, shared by every
  store on it (PostgreSQL: one pre-pinged pool; SQLite: no pool, see `get_engine`);
* `ensure_schema`: a store's tables created (and upgraded) once per engine, under a
  lock, instead of on every call;
* `begin`: a transaction that holds a named lock (PostgreSQL advisory lock; on SQLite
  the engine's `BEGIN IMMEDIATE` already serialises writers);
* `UTCDateTime`: times stored as naive UTC (portable), read back aware.

No Prefect here: this is plain infrastructure under the flows and the CLI.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Dialect,
    Engine,
    MetaData,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool, StaticPool
from sqlalchemy.types import TypeDecorator

from mlops.settings import Profile, Settings
from mlops.timestamps import as_utc

DEFAULT_TIMEOUT_S = 30.0
"""How long a SQLite connection waits for another writer before `database is locked`."""

SCHEMA_LOCK = "mlops.schema"
"""The lock `ensure_schema` holds unless a store names its own."""

_DRIVERS = {"postgresql://": "postgresql+psycopg://", "postgres://": "postgresql+psycopg://"}

_engines: dict[tuple[object, ...], Engine] = {}
_engines_guard = threading.Lock()
_schemas: weakref.WeakKeyDictionary[Engine, dict[MetaData, object]] = weakref.WeakKeyDictionary()
_schema_locks: weakref.WeakKeyDictionary[Engine, dict[MetaData, threading.Lock]] = (
    weakref.WeakKeyDictionary()
)
_schemas_guard = threading.Lock()


# --------------------------------------------------------------------------- URLs


def sqlalchemy_url(url: str | Path) -> str:
    """The SQLAlchemy URL of a control database.

    * `postgresql://` and `postgres://` (what the settings and libpq use) would make
      SQLAlchemy load psycopg2: they get the psycopg 3 driver (`postgresql+psycopg://`);
    * a path (a `Path`, or a string with no `scheme://`) is a SQLite file;
    * anything else (`sqlite:///...`, `postgresql+psycopg://...`) is kept as it is.
    """
    if isinstance(url, Path):
        return f"sqlite:///{url}"
    for prefix, driver in _DRIVERS.items():
        if url.startswith(prefix):
            return driver + url.removeprefix(prefix)
    if "://" not in url and not url.startswith("sqlite:"):
        return f"sqlite:///{url}"
    return url


def control_url(settings: Settings, sqlite_file: str) -> str:
    """The production PostgreSQL database, or the SQLite file `sqlite_file` in the state dir.

    The embedded profile keeps its own file even when a database URL is set (for table
    sources): a store follows the profile, not the presence of the setting.
    """
    if settings.profile is Profile.PRODUCTION:
        return sqlalchemy_url(settings.require_database_url())
    return f"sqlite:///{settings.home / sqlite_file}"


# --------------------------------------------------------------------------- engines


def get_engine(
    url: str | Path, *, serialise_writers: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Engine:
    """The process's engine on `url`, created on first use (thread-safe).

    PostgreSQL: one pool per database (`pool_pre_ping`, so a restarted server costs no
    failed call); the SQLite options do not apply and every store shares it.

    SQLite (per file and options):
    * `timeout_s`: how long a connection waits for the file's write lock;
    * `serialise_writers`: every transaction is `BEGIN IMMEDIATE` (one writer at a
      time, reads included). pysqlite otherwise opens transactions lazily, so two
      processes could both read "nothing there yet" before either writes;
    * no pool (`NullPool`): each checkout opens the file (microseconds), as the
      ledger's per-call engines did. A pooled connection would outlive the file (a
      wiped state directory) and keep writing to the deleted one;
    * the file's directory is created when a connection opens it;
    * `:memory:`: one shared connection (`StaticPool`), so every thread sees one
      database.
    """
    normalised = sqlalchemy_url(url)
    parsed = make_url(normalised)
    sqlite = parsed.get_backend_name() == "sqlite"
    key: tuple[object, ...] = (
        (normalised, serialise_writers, float(timeout_s)) if sqlite else (normalised,)
    )
    with _engines_guard:
        engine = _engines.get(key)
        if engine is None:
            if sqlite:
                engine = _sqlite_engine(normalised, parsed.database, serialise_writers, timeout_s)
            else:
                engine = create_engine(normalised, pool_pre_ping=True)
            _engines[key] = engine
        return engine


def dispose(url: str | Path) -> None:
    """Release the pools of `url`'s engines and forget them (the next use starts afresh)."""
    normalised = sqlalchemy_url(url)
    with _engines_guard:
        gone = [key for key in _engines if key[0] == normalised]
        engines = [_engines.pop(key) for key in gone]
    for engine in engines:
        engine.dispose()


def dispose_all() -> None:
    """Release every engine of this process (tests, shutdown)."""
    with _engines_guard:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def _sqlite_engine(
    url: str, database: str | None, serialise_writers: bool, timeout_s: float
) -> Engine:
    memory = database in (None, "", ":memory:")
    options: dict[str, Any] = {"check_same_thread": False, "timeout": timeout_s}
    engine = create_engine(url, connect_args=options, poolclass=StaticPool if memory else NullPool)
    if not memory:
        folder = Path(str(database)).parent

        @event.listens_for(engine, "do_connect")
        def _make_folder(*_args: Any) -> None:
            folder.mkdir(parents=True, exist_ok=True)

    if serialise_writers:

        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _after_fork_in_child() -> None:
    """A forked child must not use its parent's connections: fresh pools, fresh locks."""
    global _engines_guard, _schemas_guard
    _engines_guard = threading.Lock()
    _schemas_guard = threading.Lock()
    _schema_locks.clear()
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- transactions


def advisory_key(name: str) -> int:
    """The 64-bit PostgreSQL advisory-lock key of a lock name (stable across versions)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def begin(
    engine: Engine, *, lock: str | None = None, lock_timeout_s: float | None = None
) -> Iterator[Connection]:
    """A transaction, committed on exit, holding the lock `lock` until then.

    PostgreSQL: a transaction-scoped advisory lock (`pg_advisory_xact_lock`), waited for
    at most `lock_timeout_s` (then `OperationalError`; None: as long as the server lets
    it). SQLite: nothing more to take when the engine serialises writers (its
    `BEGIN IMMEDIATE` holds the whole file). Either is released when the transaction
    ends, so a process that dies holding it frees it at once.
    """
    with engine.begin() as conn:
        if lock is not None and conn.dialect.name == "postgresql":
            if lock_timeout_s is not None:
                # SET LOCAL takes no bind parameter: the value is a number formatted here.
                conn.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'"))
            conn.execute(select(func.pg_advisory_xact_lock(advisory_key(lock))))
        yield conn


# --------------------------------------------------------------------------- schema


def ensure_schema(
    engine: Engine,
    metadata: MetaData,
    *,
    upgrade: Callable[[Connection], None] | None = None,
    lock: str = SCHEMA_LOCK,
) -> None:
    """Create `metadata`'s missing tables (then run `upgrade`), once per engine.

    The first call on an engine does the work in one transaction holding `lock`, so two
    processes never both create a table or add a column; later calls return at once.
    A SQLite file that was removed or replaced since (a wiped state directory) is
    created again. `upgrade` receives the connection: `create_all` adds missing tables,
    not missing columns.
    """
    if _created(engine, metadata):  # the usual case: no lock but the map's
        return
    with _schemas_guard:
        guard = _schema_locks.setdefault(engine, {}).setdefault(metadata, threading.Lock())
    with guard:  # one thread creates; the others wait, then find it done
        if _created(engine, metadata):
            return
        with begin(engine, lock=lock) as conn:
            metadata.create_all(conn)
            if upgrade is not None:
                upgrade(conn)
        identity = _database_identity(engine)
        with _schemas_guard:
            _schemas.setdefault(engine, {})[metadata] = identity


def _created(engine: Engine, metadata: MetaData) -> bool:
    identity = _database_identity(engine)
    with _schemas_guard:
        return identity is not None and _schemas.get(engine, {}).get(metadata) == identity


def _database_identity(engine: Engine) -> object:
    """What the schema was created in: the SQLite file (None while it does not exist), or
    the server database (its URL: one per engine)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        return str(engine.url)
    try:
        found = os.stat(str(database))
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino)


# --------------------------------------------------------------------------- types


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (portable across SQLite and PostgreSQL), read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)
