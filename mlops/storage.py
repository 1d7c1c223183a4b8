"""Where the system keeps its files: the state directory, or an S3 bucket.

Every stored file has a *key* relative to the state root, the same in both profiles:
`raw/card_fraud/<sha256>.parquet` is `<home>/raw/card_fraud/<sha256>.parquet` in the
embedded profile and `s3://<bucket>/<prefix>raw/card_fraud/<sha256>.parquet` once
`MLOPS_S3_BUCKET` is set, so the bucket mirrors the state directory's layout.

- `ArtifactStore` puts and gets bytes and files under keys, lists, tests existence and
  names a key's URI. `LocalStore` is a directory (atomic renames); `S3Store` a bucket
  prefix reached through boto3 at `settings.s3_endpoint_url` (None: AWS itself). Both
  are immutable-friendly: `put_file(..., overwrite=False)` keeps what is there.
- `locate(settings, path)` maps a path of the state directory (`settings.raw_dir /
  name`) to where it really lives: the same `Path` without a bucket, else an
  `ObjectPath`, a path-like reference to an S3 key (`/`, `name`, `with_suffix`,
  `exists`, `read_text`, `str()` is the `s3://` URI), so evidence folders are built
  the same way in both profiles.
- Readers that need a local file (pandas, DuckDB through Feast, PyTorch training) get
  one from `local_path`: the file itself, or a copy in the **object cache**
  `<home>/cache/s3/<bucket>/<key>`, downloaded once. Only immutable, content-addressed
  objects are cached; the cache is disposable (delete it any time).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from mlops.errors import ConfigError, SourceError
from mlops.settings import Settings

S3Client = Any
"""boto3's S3 client (boto3 ships no type stubs)."""

logger = logging.getLogger(__name__)

S3_SCHEME = "s3://"
CACHE_FOLDER = "s3"
"""Under `settings.cache_dir`: `s3/<bucket>/<key>` holds cached copies of objects."""

_CLIENT_LOCK = threading.Lock()


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
class S3Store(ArtifactStore):
    """A bucket (and key prefix) through boto3; objects read locally go to `cache_root`.

    Only the endpoint URL and region come from settings: credentials follow boto3's own
    chain (environment, profile, instance role), as for any AWS client.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    cache_root: Path = field(default_factory=lambda: Path(".mlops/cache/s3"))

    @property
    def client(self) -> S3Client:
        return _s3_client(self.endpoint_url, self.region)

    def full_key(self, key: str) -> str:
        """The object key in the bucket (the store's prefix plus `key`)."""
        key = key.strip("/")
        if not self.prefix:
            return key
        return f"{self.prefix.strip('/')}/{key}" if key else self.prefix.strip("/")

    def uri(self, key: str) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.full_key(key)}"

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            if _status(exc) == 404 or _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = True) -> bool:
        if not overwrite and self.exists(key):
            return False
        self.client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=data)
        return True

    def put_file(
        self, key: str, source: Path, *, overwrite: bool = True, move: bool = False
    ) -> bool:
        if not overwrite and self.exists(key):
            if move:
                source.unlink(missing_ok=True)
            return False
        # upload_file streams large files in parts; the object appears whole or not at all.
        self.client.upload_file(str(source), self.bucket, self.full_key(key))
        if move:
            cached = self.cache_path(key)
            cached.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, cached)
        return True

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise SourceError(f"no object {self.uri(key)}") from exc
            raise
        body: bytes = response["Body"].read()
        return body

    def list_keys(self, prefix: str, suffix: str = "") -> list[str]:
        folder = self.full_key(prefix)
        folder = f"{folder}/" if folder else ""
        base = prefix.strip("/")
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
            for item in page.get("Contents", []):
                name = item["Key"][len(folder) :]
                if name and not name.startswith(".") and name.endswith(suffix):
                    keys.append(f"{base}/{name}" if base else name)
        return sorted(keys)

    def cache_path(self, key: str) -> Path:
        return self.cache_root / self.bucket / self.full_key(key)

    def local_path(self, key: str, sha256: str | None = None) -> Path:
        cached = self.cache_path(key)
        if not cached.is_file():
            from botocore.exceptions import ClientError

            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = partial_name(cached)
            try:
                self.client.download_file(self.bucket, self.full_key(key), str(partial))
            except ClientError as exc:
                partial.unlink(missing_ok=True)
                if _status(exc) == 404 or _code(exc) in ("404", "NoSuchKey"):
                    raise SourceError(f"no object {self.uri(key)}") from exc
                raise
            os.replace(partial, cached)
            logger.debug("cached %s in %s", self.uri(key), cached)
        if sha256 is not None and sha256_of(cached) != sha256:
            cached.unlink(missing_ok=True)
            raise SourceError(f"{self.uri(key)} changed: its sha256 is not {sha256[:12]}")
        return cached


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


def artifact_store(settings: Settings) -> ArtifactStore:
    """The store of the state root: the bucket when `MLOPS_S3_BUCKET` is set, else `home`.

    Raises:
        ConfigError: the production profile without a bucket.
    """
    settings.require_bucket_in_production()
    if settings.s3_bucket:
        return s3_store(settings, settings.s3_bucket, settings.s3_prefix)
    return LocalStore(settings.home)


def s3_store(settings: Settings, bucket: str, prefix: str = "") -> S3Store:
    """A bucket reached with the settings' endpoint and region, cached under `cache_dir`."""
    return S3Store(
        bucket=bucket,
        prefix=prefix.strip("/"),
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        cache_root=settings.cache_dir / CACHE_FOLDER,
    )


def state_key(settings: Settings, path: Path) -> str:
    """The key of a path inside the state directory (`<home>/raw/x` → `raw/x`).

    Raises:
        ConfigError: the path is outside the state directory.
    """
    try:
        key = path.relative_to(settings.home).as_posix()
    except ValueError as exc:
        raise ConfigError(f"{path} is not inside the state directory {settings.home}") from exc
    return "" if key == "." else key


def locate(settings: Settings, path: Path) -> Location:
    """Where a path of the state directory really lives: itself, or its object in S3.

    Raises:
        ConfigError: the production profile without a bucket.
    """
    settings.require_bucket_in_production()
    if not settings.s3_bucket:
        return path
    return artifact_store(settings).path(state_key(settings, path))


def is_remote(uri: str | os.PathLike[str] | ObjectPath) -> bool:
    """Whether a reference names an object in S3 (`s3://...`)."""
    return str(uri).startswith(S3_SCHEME)


def location_of(uri: str | Path | ObjectPath, settings: Settings) -> Location:
    """The location a reference (a local path or an `s3://bucket/key` URI) names."""
    if isinstance(uri, (Path, ObjectPath)):
        return uri
    if not is_remote(uri):
        return Path(uri)
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket or not key:
        raise ConfigError(f"{uri!r} is not an s3://bucket/key URI")
    return ObjectPath(s3_store(settings, bucket), key)


def local_path(uri: str | Path | ObjectPath, settings: Settings, sha256: str | None = None) -> Path:
    """A local file with the content of an immutable stored file (cached once for S3).

    Raises:
        SourceError: the file does not exist, or its content hash differs from `sha256`.
    """
    location = location_of(uri, settings)
    if isinstance(location, ObjectPath):
        return location.store.local_path(location.key, sha256)
    if sha256 is not None and location.is_file() and sha256_of(location) != sha256:
        raise SourceError(f"{location} changed: its sha256 is not {sha256[:12]}")
    return location


def write_bytes(location: Location, data: bytes, *, overwrite: bool = True) -> bool:
    """Write atomically (readers never see half a file); False when an existing file was
    kept because `overwrite` is off."""
    if isinstance(location, ObjectPath):
        return location.store.put_bytes(location.key, data, overwrite=overwrite)
    return LocalStore(location.parent).put_bytes(location.name, data, overwrite=overwrite)


def write_text(location: Location, text: str, *, overwrite: bool = True) -> bool:
    """`write_bytes` for text (UTF-8)."""
    return write_bytes(location, text.encode(), overwrite=overwrite)


def publish_file(
    source: Path, target: Location, *, overwrite: bool = False, move: bool = True
) -> bool:
    """Put a finished local file at `target`: a rename (or copy) locally, an upload to S3.

    By default an existing target is kept (content-addressed files never change) and the
    source is consumed. Returns False when the target was kept.
    """
    if isinstance(target, ObjectPath):
        return target.store.put_file(target.key, source, overwrite=overwrite, move=move)
    return LocalStore(target.parent).put_file(target.name, source, overwrite=overwrite, move=move)


def copy_file(source: Location, target: Location, *, overwrite: bool = False) -> bool:
    """Copy a stored file (server-side within one bucket); False when the target was kept."""
    if not overwrite and target.is_file():
        return False
    if (
        isinstance(source, ObjectPath)
        and isinstance(target, ObjectPath)
        and isinstance(source.store, S3Store)
        and isinstance(target.store, S3Store)
        and source.store.bucket == target.store.bucket
    ):
        bucket = source.store
        bucket.client.copy_object(
            Bucket=bucket.bucket,
            Key=target.store.full_key(target.key),
            CopySource={"Bucket": bucket.bucket, "Key": bucket.full_key(source.key)},
        )
        return True
    local = source if isinstance(source, Path) else source.store.local_path(source.key)
    return publish_file(local, target, overwrite=overwrite, move=False)


@contextmanager
def staging_file(target: Location) -> Iterator[Path]:
    """A local file to write `target`'s content to before `publish_file`.

    A hidden name beside the target for a local one (publishing is a rename on one file
    system), beside the target's cached copy for S3 (publishing uploads it and keeps it
    as that copy). Whatever is left of it when the block exits is removed. The target
    may be a placeholder in the right folder when the name is the content's hash.
    """
    local = target if isinstance(target, Path) else target.store.cache_path(target.key)
    local.parent.mkdir(parents=True, exist_ok=True)
    staging = partial_name(local)
    try:
        yield staging
    finally:
        staging.unlink(missing_ok=True)


def local_files(folder: Location, suffix: str) -> list[Path]:
    """Local copies of the files of a folder ending with `suffix`, by name.

    A local folder lists itself; an S3 folder is mirrored into the object cache first
    (each object downloaded once: this is for immutable files only).
    """
    if isinstance(folder, ObjectPath):
        return folder.store.mirror(folder.key, suffix)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{suffix}") if not p.name.startswith("."))


def local_folder(folder: Location) -> Path:
    """The local folder `local_files` fills for `folder` (the folder itself when local)."""
    if isinstance(folder, ObjectPath):
        return folder.store.cache_path(folder.key)
    return folder


def resolve_near(uri: str, near: Location) -> Location:
    """The location `uri` names, reached like `near` (same S3 endpoint and cache)."""
    if not is_remote(uri):
        return Path(uri)
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if isinstance(near, ObjectPath) and isinstance(near.store, S3Store):
        store = S3Store(
            bucket=bucket,
            endpoint_url=near.store.endpoint_url,
            region=near.store.region,
            cache_root=near.store.cache_root,
        )
        return ObjectPath(store, key)
    raise ConfigError(f"{uri} is in S3 but the settings name no bucket to reach it with")


@lru_cache(maxsize=8)
def _s3_client(endpoint_url: str | None, region: str | None) -> S3Client:
    """One client per endpoint and region per process (clients are thread-safe)."""
    import boto3
    from botocore.config import Config

    with _CLIENT_LOCK:
        session = boto3.session.Session()
        client: S3Client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
    return client


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(exc: Exception) -> int:
    response = getattr(exc, "response", {}) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
