"""The stores themselves: the `ArtifactStore` contract, `LocalStore` (a directory) and
`ObjectPath`, a store's key read like a `Path`; the S3 store is in `mlops.storage.s3`.
See `mlops.storage` for keys, locations and the object cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlops.errors import SourceError


def sha256_of(path: Path) -> str:
    """Content hash of a local file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def partial_name(path: Path) -> Path:
    """A hidden name beside `path` to write to before an atomic rename (one per writer);
    it never matches `*.parquet`, so readers globbing a folder never see half a file."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")


class ArtifactStore(ABC):
    """Files under keys (`a/b/c.parquet`, `/`-separated, no leading slash)."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """What references carry: a local path, or `s3://bucket/key`."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a file is stored under `key`."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        """Store `data` under `key` atomically; returns False when it kept an existing one."""

    @abstractmethod
    def put_file(
        self, key: str, source: Path, *, overwrite: bool = True, move: bool = False
    ) -> bool:
        """Store a local file under `key` atomically; `move` lets the store take the file
        (a rename locally, a seeded cache entry on S3). Returns False when kept."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The stored bytes.

        Raises:
            SourceError: nothing is stored under `key`.
        """

    @abstractmethod
    def list_keys(self, prefix: str, suffix: str = "") -> list[str]:
        """Keys of the files directly under the folder `prefix` ending with `suffix`, by
        name; hidden files (a leading dot: writes in progress) are left out."""

    @abstractmethod
    def local_path(self, key: str, sha256: str | None = None) -> Path:
        """A local file holding the object (for readers that need one).

        Only for immutable objects: a cached copy is never refreshed. With `sha256` the
        bytes are verified before the path is returned.

        Raises:
            SourceError: nothing is stored under `key`, or its content hash differs.
        """

    @abstractmethod
    def cache_path(self, key: str) -> Path:
        """Where `local_path` keeps the file of `key` (or the files under a prefix)."""

    def get_file(self, key: str, target: Path) -> Path:
        """Write the stored file to `target` (atomically) and return it."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_name(target)
        shutil.copyfile(self.local_path(key), partial)
        os.replace(partial, target)
        return target

    def mirror(self, prefix: str, suffix: str) -> list[Path]:
        """Local copies of every file of `prefix` ending with `suffix`, by name."""
        return [self.local_path(key) for key in self.list_keys(prefix, suffix)]

    def path(self, key: str) -> Location:
        """A path-like handle on `key` (a `Path` locally, an `ObjectPath` on S3)."""
        return ObjectPath(self, key.strip("/"))


@dataclass(frozen=True)
class LocalStore(ArtifactStore):
    """A directory: keys are relative paths, writes go through a hidden file and a rename."""

    root: Path

    def _file(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self._file(key))

    def exists(self, key: str) -> bool:
        return self._file(key).exists()

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        target = self._file(key)
        if not overwrite and target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_name(target)
        partial.write_bytes(data)
        os.replace(partial, target)
        return True

    def put_file(
        self, key: str, source: Path, *, overwrite: bool = True, move: bool = False
    ) -> bool:
        target = self._file(key)
        if not overwrite and target.exists():
            if move:
                source.unlink(missing_ok=True)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            os.replace(source, target)
            return True
        partial = partial_name(target)
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        return True

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError as exc:
            raise SourceError(f"no file {self._file(key)}") from exc

    def list_keys(self, prefix: str, suffix: str = "") -> list[str]:
        folder = self._file(prefix)
        if not folder.is_dir():
            return []
        base = prefix.strip("/")
        return [
            f"{base}/{p.name}" if base else p.name
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.name.endswith(suffix)
        ]

    def local_path(self, key: str, sha256: str | None = None) -> Path:
        path = self._file(key)
        if not path.is_file():
            raise SourceError(f"no file {path}")
        if sha256 is not None and sha256_of(path) != sha256:
            raise SourceError(f"{path} changed: its sha256 is not {sha256[:12]}")
        return path

    def cache_path(self, key: str) -> Path:
        return self._file(key)

    def path(self, key: str) -> Location:
        return self._file(key)


@dataclass(frozen=True)
class ObjectPath:
    """A key of an `ArtifactStore` that reads like a `pathlib.Path`.

    Enough of `Path` for building evidence folders (`folder / "report.html"`,
    `ledger.with_suffix(".html")`) and checking them (`exists`, `is_file`,
    `read_text`); `str()` is the store's URI, what reports and references carry.
    """

    store: ArtifactStore
    key: str

    def __str__(self) -> str:
        return self.store.uri(self.key)

    def __truediv__(self, part: str) -> ObjectPath:
        return ObjectPath(self.store, f"{self.key}/{part}".strip("/"))

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def parent(self) -> ObjectPath:
        parent = str(PurePosixPath(self.key).parent)
        return ObjectPath(self.store, "" if parent == "." else parent)

    def with_suffix(self, suffix: str) -> ObjectPath:
        return ObjectPath(self.store, str(PurePosixPath(self.key).with_suffix(suffix)))

    def resolve(self) -> ObjectPath:
        return self

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def is_file(self) -> bool:
        return self.store.exists(self.key)

    def is_dir(self) -> bool:
        return bool(self.store.list_keys(self.key))

    def iterdir(self) -> Iterator[ObjectPath]:
        return iter(ObjectPath(self.store, key) for key in self.store.list_keys(self.key))

    def read_bytes(self) -> bytes:
        return self.store.get_bytes(self.key)

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> int:
        self.store.put_bytes(self.key, data)
        return len(data)

    def write_text(self, text: str) -> int:
        return self.write_bytes(text.encode())

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Object stores have no folders: nothing to create."""


Location = Path | ObjectPath
"""Where a stored file is: a local path (embedded) or an object key (S3)."""
