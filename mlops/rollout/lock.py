"""The rollout lock: one writer at a time per model, across processes and machines.

The rollout state lives in MLflow registered-model tags, which have no compare-and-set
of their own. Every state change is therefore a read-check-write done while holding
this lock (see `mlops.rollout.state.write_rollout`): flow runs on two workers, the
scheduled `canary-rollout/resume` run next to the one its registration started, a
person's `mlops canary` command and a serving replica's pause never lose an update.

The lock lives in the control database: a PostgreSQL transaction-scoped advisory lock
(`pg_advisory_xact_lock`, keyed by the model) in the production profile, and in the
embedded profile a SQLite `BEGIN IMMEDIATE` transaction on `rollout-lock.db` under
the state directory (one writer per file: models are serialised together, which costs
nothing at the rate rollouts change). Either is released when its transaction ends,
so a process that dies holding it frees it at once.

The lock is re-entrant within one thread: an operation that holds it may call another
that takes it (a start that writes the state) without deadlocking on itself.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, select, text

from mlops.settings import Profile, Settings, get_settings

logger = logging.getLogger(__name__)

LOCK_FILE = "rollout-lock.db"
DEFAULT_TIMEOUT_S = 60.0
_held = threading.local()


class RolloutLock:
    """A lock per model in a SQL database (SQLite file or PostgreSQL), re-entrant per thread."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = _sqlalchemy_url(url)
        self.timeout_s = timeout_s
        self._engine: Engine | None = None
        self._engine_guard = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings) -> RolloutLock:
        """The lock of this deployment: the production database, or SQLite in the state dir."""
        return _shared_lock(lock_url(settings), settings.rollout.lock_timeout_s)

    @property
    def engine(self) -> Engine:
        with self._engine_guard:
            if self._engine is None:
                self._engine = _connect(self.url, self.timeout_s)
            return self._engine

    @contextmanager
    def hold(self, model_name: str) -> Iterator[None]:
        """Hold the lock of `model_name` for the duration of the block.

        Raises:
            sqlalchemy.exc.OperationalError: the lock was not free within `timeout_s`
                (a transient failure: retry the step).
        """
        key = (self.url, model_name)
        depth: dict[tuple[str, str], int] = getattr(_held, "depth", None) or {}
        _held.depth = depth
        if depth.get(key):
            depth[key] += 1
            try:
                yield
            finally:
                depth[key] -= 1
            return
        with self.engine.begin() as conn:
            _acquire(conn, model_name, self.timeout_s)
            depth[key] = 1
            try:
                yield
            finally:
                depth.pop(key, None)

    def close(self) -> None:
        """Release the connection pool."""
        with self._engine_guard:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def lock_url(settings: Settings) -> str:
    """Where the rollout lock lives: the production PostgreSQL, or SQLite in the state dir."""
    if settings.profile is Profile.PRODUCTION:
        return _sqlalchemy_url(settings.require_database_url())
    return f"sqlite:///{settings.home / LOCK_FILE}"


def default_lock() -> RolloutLock:
    """The lock of the current settings (`get_settings()`), for callers that pass none."""
    return RolloutLock.for_settings(get_settings())


@lru_cache(maxsize=16)
def _shared_lock(url: str, timeout_s: float) -> RolloutLock:
    """One lock object (one connection pool) per database and process."""
    return RolloutLock(url, timeout_s=timeout_s)


def _lock_key(model_name: str) -> int:
    digest = hashlib.sha256(f"mlops.rollout.{model_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _acquire(conn: Connection, model_name: str, timeout_s: float) -> None:
    if conn.dialect.name == "postgresql":
        # SET LOCAL cannot take a bind parameter: the value is a number we formatted.
        conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'"))
        conn.execute(select(func.pg_advisory_xact_lock(_lock_key(model_name))))
    # SQLite: the engine's `BEGIN IMMEDIATE` already holds the database's write lock.


def _sqlalchemy_url(url: str) -> str:
    """`postgresql://` would ask SQLAlchemy for psycopg2: use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _connect(url: str, timeout_s: float) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": timeout_s})

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
