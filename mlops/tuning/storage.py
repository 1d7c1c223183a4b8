"""Optuna storage shared by many worker processes, with a hard study-wide trial budget.

`MaxTrialsCallback` only looks at the study after a trial ends, so N workers overshoot
the budget by up to N-1 trials. Here the check sits where a trial is born: creating a
fresh trial takes a lock shared by every process (a PostgreSQL advisory lock, or a lock
file beside a SQLite database), counts the study's trials and refuses with
`BudgetSpent` once the budget is reached. Trials re-queued for a dead worker (made from
a template by `RetryHeartbeatStaleTrialCallback`) are not gated: a retry replaces work
that was lost, it is not new work.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial
from sqlalchemy import text
from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

_LOCAL_LOCK = threading.Lock()  # in-memory SQLite and unknown dialects: one process only
SQLITE_BUSY_TIMEOUT_S = 60.0


class BudgetSpent(Exception):
    """No fresh trial may start: the study already holds its budget of trials."""


StaleTrialCallback = Callable[[optuna.Study, FrozenTrial], None]


class BudgetedRDBStorage(RDBStorage):
    """`RDBStorage` that refuses fresh trials beyond `budget` trials per study."""

    def __init__(
        self,
        url: str,
        *,
        budget: int | None,
        heartbeat_interval: int | None = None,
        heartbeat_stale_trial_callback: StaleTrialCallback | None = None,
    ) -> None:
        super().__init__(
            url,
            engine_kwargs=_engine_kwargs(url),
            heartbeat_interval=heartbeat_interval,
            heartbeat_stale_trial_callback=heartbeat_stale_trial_callback,
        )
        self.budget = budget
        if self.engine.dialect.name == "sqlite" and _sqlite_path(url) is not None:
            # WAL lets readers (sampler, pruner, heartbeats) proceed while one process writes.
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")

    # `_CachedStorage` (which `create_study` wraps around every RDBStorage) calls the
    # private `_create_new_trial`; the public one is overridden too for direct callers.
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._create_new_trial(study_id, template_trial)._trial_id

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        if template_trial is not None or self.budget is None:
            return super()._create_new_trial(study_id, template_trial)
        with self._study_lock(study_id):
            existing = self.get_n_trials(study_id)
            if existing >= self.budget:
                raise BudgetSpent(f"study {study_id} holds {existing}/{self.budget} trials")
            return super()._create_new_trial(study_id, None)

    @contextmanager
    def _study_lock(self, study_id: int) -> Iterator[None]:
        """Serialize trial creation of one study across processes and machines."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            key = _lock_key(f"optuna-study-{study_id}")
            with self.engine.connect() as connection, connection.begin():
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                yield
            return
        path = _sqlite_path(self.url) if dialect == "sqlite" else None
        if path is None:
            if dialect != "sqlite":
                logger.warning("no cross-process trial lock for %s: budget is per process", dialect)
            with _LOCAL_LOCK:
                yield
            return
        with open(f"{path}.trials.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_sqlite_dir(url: str) -> None:
    """Create the folder of a file-backed SQLite URL (SQLite creates only the file)."""
    path = _sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _engine_kwargs(url: str) -> dict[str, Any]:
    if make_url(url).get_backend_name() == "sqlite":
        # Several processes write one file: wait for the lock instead of failing at once.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True}


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _lock_key(name: str) -> int:
    """A signed 64-bit key for `pg_advisory_xact_lock`, stable across processes."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
