"""The spill directory: batches the sink could not take (yet), one parquet file each.

File names are `<time_ns, 20 digits>-<pid>-<random>.<kind>.parquet`, so sorting by
name replays the oldest first, whichever process wrote them. Files appear by atomic
rename after an fsync (a crash leaves at most a hidden `.tmp`), and a file is
deleted only after its rows are in the sink.

Several processes (uvicorn workers) may share one spill directory: before replaying
a file, a process takes an exclusive `flock` on it and checks the name still points
to the same inode, so two processes never replay the same file at once; the lock
dies with its process, so a crashed replayer leaves nothing stuck.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from serving.prediction_log.records import RECORD_KINDS, RecordKind, conform
from serving.prediction_log.sinks import write_parquet_atomically

logger = logging.getLogger(__name__)

CORRUPT_DIR = "corrupt"


class SpillDir:
    """Write, list, claim and read spill files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, kind: RecordKind, table: pa.Table) -> Path:
        """Persist one batch durably (fsync + rename) and return its path."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:12]}.{kind}.parquet"
        path = self.directory / name
        write_parquet_atomically(table, path, fsync=True)
        return path

    def files(self) -> list[Path]:
        """Complete spill files, oldest first (hidden temporaries excluded)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return [
            self.directory / name
            for name in sorted(names)
            if name.endswith(".parquet") and not name.startswith(".")
        ]

    @staticmethod
    def kind_of(path: Path) -> RecordKind | None:
        """The stream a spill file belongs to, from its name."""
        suffix = path.name.removesuffix(".parquet").rsplit(".", 1)[-1]
        for kind in RECORD_KINDS:
            if suffix == kind:
                return kind
        return None

    @contextmanager
    def claim(self, path: Path) -> Iterator[bool]:
        """Hold an exclusive lock on `path` for the block; yields False when another
        process holds it or the file is gone (nothing to do then)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False  # replayed and deleted by another process meanwhile
            yield same
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def read(kind: RecordKind, path: Path) -> pa.Table:
        """A spill file's rows in the schema of its kind."""
        return conform(kind, pq.read_table(path))

    def quarantine(self, path: Path, reason: object) -> None:
        """Move an unreadable file aside (kept for a person, never retried)."""
        target = self.directory / CORRUPT_DIR / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        logger.error("prediction log: unreadable spill file moved to %s: %s", target, reason)
