"""Where the system keeps its files: the state directory, or an S3 bucket.

Every stored file has a *key* relative to the state root, the same in both profiles:
`raw/card_fraud/<sha256>.parquet` is `<home>/raw/card_fraud/<sha256>.parquet` in the
embedded profile and `s3://<bucket>/<prefix>raw/card_fraud/<sha256>.parquet` once
`MLOPS_S3_BUCKET` is set, so the bucket mirrors the state directory's layout.

- `ArtifactStore` puts and gets bytes and files under keys, lists, tests existence and
  names a key's URI. `LocalStore` is a directory (atomic renames); `S3Store` a bucket
  prefix reached through boto3 at `settings.s3_endpoint_url` (None: AWS itself). Both
  are immutable-friendly: `put_file(..., overwrite=False)` keeps what is there. The
  contract, `LocalStore` and `ObjectPath` are in `mlops.storage.stores`, `S3Store` in
  `mlops.storage.s3`; everything is importable from `mlops.storage`.
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

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlops.errors import ConfigError, SourceError
from mlops.settings import Settings
from mlops.storage.s3 import CACHE_FOLDER, S3_SCHEME, S3Client, S3Store, s3_store
from mlops.storage.stores import (
    ArtifactStore,
    LocalStore,
    Location,
    ObjectPath,
    partial_name,
    sha256_of,
)

__all__ = [
    "CACHE_FOLDER",
    "S3_SCHEME",
    "ArtifactStore",
    "LocalStore",
    "Location",
    "ObjectPath",
    "S3Client",
    "S3Store",
    "artifact_store",
    "copy_file",
    "is_remote",
    "local_files",
    "local_folder",
    "local_path",
    "locate",
    "location_of",
    "partial_name",
    "publish_file",
    "resolve_near",
    "s3_store",
    "sha256_of",
    "staging_file",
    "state_key",
    "write_bytes",
    "write_text",
]


def artifact_store(settings: Settings) -> ArtifactStore:
    """The store of the state root: the bucket when `MLOPS_S3_BUCKET` is set, else `home`.

    Raises:
        ConfigError: the production profile without a bucket.
    """
    settings.require_bucket_in_production()
    if settings.s3_bucket:
        return s3_store(settings, settings.s3_bucket, settings.s3_prefix)
    return LocalStore(settings.home)


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
