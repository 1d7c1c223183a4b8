"""`mlops.db`: the URL forms the stores accept, one engine per database, tables made once.

SQLite here; the PostgreSQL tests (marked `integration`) run on a fresh database from
the `postgres_url` fixture.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Column, Connection, Integer, MetaData, Table, inspect, select, text
from sqlalchemy.exc import OperationalError

from mlops import db
from mlops.db import UTCDateTime
from mlops.errors import ConfigError
from mlops.settings import FeastSettings, Profile, Settings
from mlops.timestamps import as_utc


@pytest.fixture(autouse=True)
def fresh_engines() -> Iterator[None]:
    """Every test starts and ends with no cached engine."""
    db.dispose_all()
    yield
    db.dispose_all()


def things() -> tuple[MetaData, Table]:
    metadata = MetaData()
    table = Table("things", metadata, Column("id", Integer, primary_key=True))
    return metadata, table


class Upgrades:
    """An `upgrade` hook that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, conn: Connection) -> None:
        self.calls += 1


def production(database_url: str, tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=tmp_path,
        profile=Profile.PRODUCTION,
        database_url=database_url,
        tracking_uri="http://mlflow:5000",
        optuna_storage="postgresql://mlops@db:5432/optuna",
        feast=FeastSettings(online_store="redis"),
        admin_token=SecretStr("not-the-default"),
    )


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://mlops@db:5432/mlops", "postgresql+psycopg://mlops@db:5432/mlops"),
        ("postgres://mlops@db/mlops", "postgresql+psycopg://mlops@db/mlops"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg2://h/db", "postgresql+psycopg2://h/db"),
        ("sqlite:////var/state/rollout.db", "sqlite:////var/state/rollout.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("/var/state/rollout.db", "sqlite:////var/state/rollout.db"),
        ("state/rollout.db", "sqlite:///state/rollout.db"),
        (Path("/var/state/lock.db"), "sqlite:////var/state/lock.db"),
    ],
)
def test_sqlalchemy_url_accepts_what_the_stores_accept(given: str | Path, expected: str) -> None:
    assert db.sqlalchemy_url(given) == expected


def test_control_url_follows_the_profile(tmp_path: Path) -> None:
    embedded = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert db.control_url(embedded, "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    # a database URL set for table sources does not move an embedded store
    with_database = embedded.model_copy(update={"database_url": "postgresql://h/db"})
    assert db.control_url(with_database, "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    prod = production("postgresql://mlops@db:5432/mlops", tmp_path)
    assert db.control_url(prod, "x.db") == "postgresql+psycopg://mlops@db:5432/mlops"
    libpq = prod.model_copy(update={"database_url": "postgres://mlops@db/mlops"})
    assert db.control_url(libpq, "x.db") == "postgresql+psycopg://mlops@db/mlops"
    with pytest.raises(ConfigError, match="MLOPS_DATABASE_URL"):
        db.control_url(prod.model_copy(update={"database_url": None}), "x.db")


# --------------------------------------------------------------------------- engines


def test_one_engine_per_database_and_options(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    engine = db.get_engine(f"sqlite:///{path}")
    assert db.get_engine(f"sqlite:///{path}") is engine
    assert db.get_engine(path) is engine  # the same file, named by its path
    assert db.get_engine(f"sqlite:///{path}", serialise_writers=True) is not engine
    assert db.get_engine(f"sqlite:///{path}", timeout_s=1) is not engine
    assert db.get_engine(f"sqlite:///{tmp_path / 'b.db'}") is not engine


def test_a_server_database_has_one_engine_whatever_the_sqlite_options() -> None:
    engine = db.get_engine("postgresql://u@h/one")  # no connection is made yet
    assert str(engine.url) == "postgresql+psycopg://u@h/one"
    assert db.get_engine("postgres://u@h/one", serialise_writers=True, timeout_s=1) is engine
    assert db.get_engine("postgresql+psycopg://u@h/one") is engine
    assert db.get_engine("postgresql://u@h/two") is not engine


def test_dispose_forgets_the_engines_of_a_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    plain, serialised = db.get_engine(url), db.get_engine(url, serialise_writers=True)
    other = db.get_engine(tmp_path / "b.db")
    db.dispose(url)
    assert db.get_engine(url) is not plain
    assert db.get_engine(url, serialise_writers=True) is not serialised
    assert db.get_engine(tmp_path / "b.db") is other


def test_concurrent_first_uses_share_one_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    seen: list[object] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        seen.append(db.get_engine(url))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len({id(engine) for engine in seen}) == 1


def test_a_sqlite_engine_makes_its_folder_and_waits_as_long_as_asked(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deeper" / "a.db"
    engine = db.get_engine(path, timeout_s=2.5)
    assert not path.parent.exists()  # nothing is touched before a connection is made
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 2500
    assert path.is_file()


def test_serialised_writers_hold_the_file_from_their_first_read(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    serialised = db.get_engine(path, serialise_writers=True, timeout_s=0.1)
    impatient = db.get_engine(path, timeout_s=0.1)
    with serialised.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with serialised.connect() as reader:
        reader.execute(text("SELECT count(*) FROM t")).scalar_one()  # BEGIN IMMEDIATE
        with pytest.raises(OperationalError, match="locked"), impatient.begin() as writer:
            writer.execute(text("INSERT INTO t VALUES (1)"))
    with impatient.begin() as writer:  # free again once the reader's transaction ended
        writer.execute(text("INSERT INTO t VALUES (1)"))


def test_plain_sqlite_transactions_start_lazily(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    plain = db.get_engine(path, timeout_s=0.1)
    with plain.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with plain.connect() as reader:
        reader.execute(text("SELECT count(*) FROM t")).scalar_one()
        with plain.begin() as writer:  # a read holds no write lock
            writer.execute(text("INSERT INTO t VALUES (1)"))


def test_an_in_memory_database_is_one_database_for_every_thread() -> None:
    engine = db.get_engine("sqlite://")
    metadata, table = things()
    db.ensure_schema(engine, metadata)
    with engine.begin() as conn:
        conn.execute(table.insert().values(id=1))
    counted: list[int] = []

    def count() -> None:
        with engine.connect() as conn:
            counted.append(len(conn.execute(select(table)).all()))

    thread = threading.Thread(target=count)
    thread.start()
    thread.join()
    assert counted == [1]


# --------------------------------------------------------------------------- schema


def test_the_schema_is_created_once_per_engine(tmp_path: Path) -> None:
    engine = db.get_engine(tmp_path / "a.db", serialise_writers=True)
    metadata, _ = things()
    upgrades = Upgrades()
    for _ in range(3):
        db.ensure_schema(engine, metadata, upgrade=upgrades)
    assert upgrades.calls == 1
    assert inspect(engine).has_table("things")
    # another store's tables on the same engine are created on their own first use
    other = MetaData()
    Table("others", other, Column("id", Integer, primary_key=True))
    db.ensure_schema(engine, other)
    assert inspect(engine).has_table("others")
    # a new engine on the same file checks once more (another process may be older)
    db.dispose_all()
    db.ensure_schema(
        db.get_engine(tmp_path / "a.db", serialise_writers=True), metadata, upgrade=upgrades
    )
    assert upgrades.calls == 2


def test_concurrent_first_uses_create_the_schema_once(tmp_path: Path) -> None:
    engine = db.get_engine(tmp_path / "a.db", serialise_writers=True)
    metadata, _ = things()
    upgrades = Upgrades()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def first_use() -> None:
        barrier.wait()
        try:
            db.ensure_schema(engine, metadata, upgrade=upgrades)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and upgrades.calls == 1


def test_a_removed_sqlite_file_gets_its_tables_again(tmp_path: Path) -> None:
    path = tmp_path / "state" / "a.db"
    engine = db.get_engine(path)
    metadata, table = things()
    db.ensure_schema(engine, metadata)
    with engine.begin() as conn:
        conn.execute(table.insert().values(id=1))
    path.unlink()
    path.parent.rmdir()  # a wiped state directory
    db.ensure_schema(engine, metadata)
    with engine.connect() as conn:
        assert conn.execute(select(table)).all() == []


# --------------------------------------------------------------------------- transactions


def test_begin_commits_and_rolls_back(tmp_path: Path) -> None:
    engine = db.get_engine(tmp_path / "a.db", serialise_writers=True)
    metadata, table = things()
    db.ensure_schema(engine, metadata)
    with db.begin(engine, lock="mlops.test.a") as conn:
        conn.execute(table.insert().values(id=1))
    with pytest.raises(RuntimeError, match="undone"), db.begin(engine, lock="mlops.test.a") as conn:
        conn.execute(table.insert().values(id=2))
        raise RuntimeError("undone")
    with engine.connect() as conn:
        assert conn.execute(select(table.c.id)).scalars().all() == [1]


def test_advisory_keys_are_stable() -> None:
    """The lock ids running processes of an older version take: changing them would let
    two versions hold "the same" lock at once during a rolling upgrade."""
    assert db.advisory_key("mlops.rollout.card_fraud") == -5416897796932455118
    assert db.advisory_key("mlops.retraining.schema") == -634014348891460296


# --------------------------------------------------------------------------- types


def test_utc_datetimes_are_stored_naive_and_read_back_aware(tmp_path: Path) -> None:
    metadata = MetaData()
    table = Table(
        "moments",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("at", UTCDateTime),
    )
    engine = db.get_engine(tmp_path / "a.db")
    db.ensure_schema(engine, metadata)
    paris = timezone(timedelta(hours=2))
    with engine.begin() as conn:
        conn.execute(table.insert().values(id=1, at=datetime(2026, 3, 1, 14, tzinfo=paris)))
        conn.execute(table.insert().values(id=2, at=datetime(2026, 3, 1, 12)))  # naive: UTC
        conn.execute(table.insert().values(id=3, at=None))
        stored = conn.execute(text("SELECT at FROM moments WHERE id = 1")).scalar_one()
    assert str(stored).startswith("2026-03-01 12:00:00")
    with engine.connect() as conn:
        found = dict(conn.execute(select(table.c.id, table.c.at)).tuples().all())
    noon = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert found == {1: noon, 2: noon, 3: None}
    assert as_utc(datetime(2026, 3, 1, 14, tzinfo=paris)) == noon


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.integration
def test_postgresql_engines_schema_and_locks(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    engine = db.get_engine(postgres_url)
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
    assert db.get_engine(db.sqlalchemy_url(postgres_url), serialise_writers=True) is engine

    metadata, table = things()
    upgrades = Upgrades()
    for _ in range(3):
        db.ensure_schema(engine, metadata, upgrade=upgrades)
    assert upgrades.calls == 1 and inspect(engine).has_table("things")

    key = db.advisory_key("mlops.test.model")
    with db.begin(engine, lock="mlops.test.model") as holder:
        holder.execute(table.insert().values(id=1))
        with engine.connect() as other:
            taken = other.execute(select(text(f"pg_try_advisory_xact_lock({key})"))).scalar()
            assert taken is False
        # a second transaction that wants the lock gives up after its lock timeout
        with pytest.raises(OperationalError, match="lock timeout"):
            with db.begin(engine, lock="mlops.test.model", lock_timeout_s=0.2):
                pass
    with engine.connect() as other:  # released with the transaction
        assert other.execute(select(text(f"pg_try_advisory_xact_lock({key})"))).scalar()
        assert other.execute(select(table.c.id)).scalars().all() == [1]
    db.dispose(postgres_url)  # before the fixture drops the database
