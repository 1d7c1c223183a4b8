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
so a process that dies holding it frees it at once. The engine (one per database and
process) and the advisory lock are `mlops.db`'s.

The lock is re-entrant within one thread: an operation that holds it may call another
that takes it (a start that writes the state) without deadlocking on itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from mlops import db
from mlops.settings import Settings, get_settings

logger = logging.getLogger(__name__)

LOCK_FILE = "rollout-lock.db"
DEFAULT_TIMEOUT_S = 60.0
_held = threading.local()


class RolloutLock:
    """A lock per model in a SQL database (SQLite file or PostgreSQL), re-entrant per thread."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = db.sqlalchemy_url(url)
        self.timeout_s = timeout_s

    @classmethod
    def for_settings(cls, settings: Settings) -> RolloutLock:
        """The lock of this deployment: the production database, or SQLite in the state dir."""
        return cls(lock_url(settings), timeout_s=settings.rollout.lock_timeout_s)

    @property
    def engine(self) -> Engine:
        """The process's engine on the lock's database (one pool per database)."""
        return db.get_engine(self.url, serialise_writers=True, timeout_s=self.timeout_s)

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
        # SQLite: the engine's `BEGIN IMMEDIATE` already holds the database's write lock.
        with db.begin(
            self.engine, lock=f"mlops.rollout.{model_name}", lock_timeout_s=self.timeout_s
        ):
            depth[key] = 1
            try:
                yield
            finally:
                depth.pop(key, None)

    def close(self) -> None:
        """Release the connection pool (shared with the other stores on the database)."""
        db.dispose(self.url)


def lock_url(settings: Settings) -> str:
    """Where the rollout lock lives: the production PostgreSQL, or SQLite in the state dir."""
    return db.control_url(settings, LOCK_FILE)


def default_lock() -> RolloutLock:
    """The lock of the current settings (`get_settings()`), for callers that pass none."""
    return RolloutLock.for_settings(get_settings())
