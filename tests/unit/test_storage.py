"""The object-store seam: one contract for a local directory and an S3 bucket.

The S3 side runs on moto's in-process mock (no server, no network); the integration
test of the production profile runs the same code against an S3 endpoint over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from mlops.errors import ConfigError, SourceError
from mlops.monitoring import training_set_path
from mlops.settings import Profile, Settings
from mlops.storage import (
    ArtifactStore,
    LocalStore,
    ObjectPath,
    S3Store,
    artifact_store,
    copy_file,
    local_files,
    local_path,
    locate,
    location_of,
    publish_file,
    sha256_of,
    staging_file,
    write_text,
)
from mlops.storage import s3 as s3_backend

BUCKET = "mlops-unit"
REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    s3_backend._s3_client.cache_clear()  # clients made outside the mock would reach AWS
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield
    s3_backend._s3_client.cache_clear()


@pytest.fixture
def bucket_settings(settings: Settings, aws: None) -> Settings:
    return settings.model_copy(update={"s3_bucket": BUCKET, "s3_prefix": "team-a/"})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "root")
    request.getfixturevalue("aws")
    return S3Store(bucket=BUCKET, prefix="p", region=REGION, cache_root=tmp_path / "cache")


def test_bytes_round_trip_and_existence(store: ArtifactStore) -> None:
    assert not store.exists("a/b.txt")
    assert store.put_bytes("a/b.txt", b"one")
    assert store.exists("a/b.txt") and store.get_bytes("a/b.txt") == b"one"
    assert store.put_bytes("a/b.txt", b"two")
    assert store.get_bytes("a/b.txt") == b"two", "overwrite by default"
    assert not store.put_bytes("a/b.txt", b"three", overwrite=False)
    assert store.get_bytes("a/b.txt") == b"two", "write-once keeps what is there"
    with pytest.raises(SourceError, match="no (file|object)"):
        store.get_bytes("a/missing.txt")


def test_files_round_trip_and_listing(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "data.parquet"
    source.write_bytes(b"PAR1 fake")
    store.put_file("batches/x.parquet", source)
    store.put_bytes("batches/y.parquet", b"PAR1 other")
    store.put_bytes("batches/notes.txt", b"text")
    store.put_bytes("batches/.x.parquet.1234.partial", b"half")
    store.put_bytes("batches/deeper/z.parquet", b"nested")
    assert store.list_keys("batches", ".parquet") == ["batches/x.parquet", "batches/y.parquet"]
    assert store.list_keys("batches") == [
        "batches/notes.txt",
        "batches/x.parquet",
        "batches/y.parquet",
    ], "hidden files (writes in progress) and sub-folders are left out"
    assert store.list_keys("nothing-here") == []
    target = store.get_file("batches/x.parquet", tmp_path / "out" / "x.parquet")
    assert target.read_bytes() == b"PAR1 fake"
    assert source.exists(), "put_file copies unless told to move"


def test_local_path_verifies_the_content_hash(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes("k/file.bin", b"payload")
    digest = sha256_of(store.local_path("k/file.bin"))
    assert store.local_path("k/file.bin", digest).read_bytes() == b"payload"
    with pytest.raises(SourceError, match="sha256"):
        store.local_path("k/file.bin", "0" * 64)
    with pytest.raises(SourceError, match="no (file|object)"):
        store.local_path("k/missing.bin")


def test_uris_name_a_path_or_an_object(tmp_path: Path, aws: None) -> None:
    assert LocalStore(tmp_path).uri("raw/a.csv") == str(tmp_path / "raw" / "a.csv")
    s3 = S3Store(bucket=BUCKET, prefix="/team/", region=REGION, cache_root=tmp_path)
    assert s3.uri("raw/a.csv") == f"s3://{BUCKET}/team/raw/a.csv"
    assert S3Store(bucket=BUCKET).uri("raw/a.csv") == f"s3://{BUCKET}/raw/a.csv"


def test_s3_reads_are_cached_once_and_moves_seed_the_cache(tmp_path: Path, aws: None) -> None:
    s3 = S3Store(bucket=BUCKET, region=REGION, cache_root=tmp_path / "cache")
    s3.put_bytes("immutable/a.bin", b"v1")
    cached = s3.local_path("immutable/a.bin")
    assert cached == tmp_path / "cache" / BUCKET / "immutable" / "a.bin"
    boto3.client("s3", region_name=REGION).delete_object(Bucket=BUCKET, Key="immutable/a.bin")
    assert s3.local_path("immutable/a.bin").read_bytes() == b"v1", "read from the cache"

    staged = tmp_path / "staged.bin"
    staged.write_bytes(b"uploaded")
    assert s3.put_file("immutable/b.bin", staged, move=True)
    assert not staged.exists()
    assert s3.cache_path("immutable/b.bin").read_bytes() == b"uploaded"
    assert s3.get_bytes("immutable/b.bin") == b"uploaded"


def test_object_paths_read_like_paths(tmp_path: Path, aws: None) -> None:
    s3 = S3Store(bucket=BUCKET, region=REGION, cache_root=tmp_path)
    folder = ObjectPath(s3, "quarantine/ds/abc")
    report = folder / "report.html"
    assert str(report) == f"s3://{BUCKET}/quarantine/ds/abc/report.html"
    assert report.name == "report.html" and report.suffix == ".html"
    assert report.parent == folder and report.resolve() == report
    assert str(report.with_suffix(".json")).endswith("abc/report.json")
    assert not report.exists() and not folder.is_dir()
    report.write_text("<html/>")
    assert report.is_file() and report.read_text() == "<html/>"
    assert folder.is_dir() and [p.name for p in folder.iterdir()] == ["report.html"]


def test_locate_mirrors_the_state_dir_in_the_bucket(
    settings: Settings, bucket_settings: Settings
) -> None:
    path = settings.raw_dir / "card_fraud" / "abc.parquet"
    assert locate(settings, path) == path, "no bucket: the state dir itself"
    assert isinstance(artifact_store(settings), LocalStore)
    remote = locate(bucket_settings, bucket_settings.raw_dir / "card_fraud" / "abc.parquet")
    assert str(remote) == f"s3://{BUCKET}/team-a/raw/card_fraud/abc.parquet"
    with pytest.raises(ConfigError, match="state directory"):
        locate(bucket_settings, Path("/elsewhere/file"))


def test_production_without_a_bucket_refuses_to_store_locally(settings: Settings) -> None:
    production = settings.model_copy(update={"profile": Profile.PRODUCTION})
    with pytest.raises(ConfigError, match="MLOPS_S3_BUCKET"):
        locate(production, production.raw_dir)
    with pytest.raises(ConfigError, match="MLOPS_S3_BUCKET"):
        artifact_store(production)


def test_references_resolve_to_locations(bucket_settings: Settings) -> None:
    local = location_of("/data/a.parquet", bucket_settings)
    assert local == Path("/data/a.parquet")
    remote = location_of(f"s3://{BUCKET}/team-a/raw/x.parquet", bucket_settings)
    assert isinstance(remote, ObjectPath) and remote.key == "team-a/raw/x.parquet"
    with pytest.raises(ConfigError, match="not an s3://bucket/key URI"):
        location_of("s3://only-a-bucket", bucket_settings)


def test_staged_files_are_published_atomically(
    settings: Settings, bucket_settings: Settings
) -> None:
    for current in (settings, bucket_settings):
        target = locate(current, current.training_sets_dir / "ds" / "t.parquet")
        with staging_file(target) as partial:
            partial.write_bytes(b"content")
            assert partial.name.startswith(".") and partial.name.endswith(".partial")
            assert publish_file(partial, target)
        assert not partial.exists()
        assert target.read_bytes() == b"content"
        assert local_path(str(target), current).read_bytes() == b"content"
        with staging_file(target) as again:
            again.write_bytes(b"other")
            assert not publish_file(again, target), "content-addressed: the first write stays"
        assert not again.exists() and target.read_bytes() == b"content"


def test_copies_and_mirrors(settings: Settings, bucket_settings: Settings) -> None:
    for current in (settings, bucket_settings):
        folder = locate(current, current.feast_dir / "offline" / "ds")
        write_text(folder / "b.parquet", "2")
        write_text(folder / "a.parquet", "1")
        assert copy_file(folder / "a.parquet", folder / "c.parquet")
        assert not copy_file(folder / "b.parquet", folder / "c.parquet"), "kept"
        files = local_files(folder, ".parquet")
        assert [f.name for f in files] == ["a.parquet", "b.parquet", "c.parquet"]
        assert [f.read_text() for f in files] == ["1", "2", "1"]
        assert all(f.is_file() for f in files)


def test_the_drift_reference_reads_a_training_set_stored_in_s3(
    bucket_settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "set.parquet"
    source.write_bytes(b"PAR1 training rows PAR1")
    key = "team-a/training_sets/card_fraud/abc.parquet"
    boto3.client("s3", region_name=REGION).upload_file(str(source), BUCKET, key)
    tags = {"training_set.uri": f"s3://{BUCKET}/{key}", "training_set.sha256": sha256_of(source)}
    path = training_set_path(tags, bucket_settings, "card_fraud")
    assert path.read_bytes() == source.read_bytes()
    with pytest.raises(ConfigError, match="not available"):
        training_set_path(tags | {"training_set.sha256": "0" * 64}, bucket_settings, "card_fraud")
