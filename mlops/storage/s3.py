"""The S3 store: a bucket prefix reached through boto3, its objects read locally through
the object cache (`<home>/cache/s3/<bucket>/<key>`); one boto3 client per endpoint and
region per process."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlops.errors import SourceError
from mlops.settings import Settings
from mlops.storage.stores import ArtifactStore, partial_name, sha256_of

S3Client = Any
"""boto3's S3 client (boto3 ships no type stubs)."""

logger = logging.getLogger(__name__)

S3_SCHEME = "s3://"
CACHE_FOLDER = "s3"
"""Under `settings.cache_dir`: `s3/<bucket>/<key>` holds cached copies of objects."""

_CLIENT_LOCK = threading.Lock()


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


def s3_store(settings: Settings, bucket: str, prefix: str = "") -> S3Store:
    """A bucket reached with the settings' endpoint and region, cached under `cache_dir`."""
    return S3Store(
        bucket=bucket,
        prefix=prefix.strip("/"),
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        cache_root=settings.cache_dir / CACHE_FOLDER,
    )


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
