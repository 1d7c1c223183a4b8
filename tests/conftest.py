"""Shared fixtures: real PostgreSQL and Redis, an isolated state directory per test.

Tests that need a service skip when it is unreachable on a developer machine, but
fail loudly when `CI=true`: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import redis

from mlops.settings import Settings

TIERS = ("unit", "model", "integration", "e2e")
"""The test tiers, one folder each: a test is marked with its folder's tier (`-m unit`),
unless it carries a tier of its own (a PostgreSQL test kept beside its unit tests)."""

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))


def _unavailable(service: str, reason: object) -> NoReturn:
    message = f"{service} is unreachable: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: services are required, not skipped)")
    pytest.skip(message)


@pytest.fixture
def run_id() -> str:
    """A short unique name for what one test creates in shared services."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-profile settings whose state directory lives in the test's tmp dir."""
    return Settings(home=tmp_path / "state", _env_file=None)  # type: ignore[call-arg]


@contextmanager
def fresh_databases(*roles: str) -> Iterator[dict[str, str]]:
    """One fresh PostgreSQL database per role (`mlops_test_<tag>_<role>`), dropped after."""
    tag = uuid.uuid4().hex[:10]
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    names = {role: f"mlops_test_{tag}_{role}" for role in roles}
    with admin:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield {role: f"{base}/{name}" for role, name in names.items()}
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            for name in names.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with fresh_databases("db") as urls:
        yield urls["db"]


@pytest.fixture
def redis_db() -> Iterator[int]:
    """A reachable Redis; yields the logical database number tests use.

    Tests namespace their keys (a unique Feast project per test) and remove them.
    """
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    yield 0
    client.close()


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """One temporary Prefect server (SQLite) for the whole session, started by the first
    test that asks; flows of every tier report to it. Tests that restart or break a
    server start their own."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        assert url, "the test harness did not set PREFECT_API_URL"
        yield url


LONGEST_FIRST = (
    "e2e/test_scenario_drift_recovery.py",
    "e2e/test_hostile_timings.py",
    "e2e/test_training_pipeline.py",
    "e2e/test_cli.py",
    "e2e/test_event_retraining.py",
    "integration/test_production_profile.py",
    "integration/test_localstack_production.py",
    "integration/test_batch_scoring.py",
    "e2e/test_two_workers.py",
    "integration/test_dask_study.py",
    "e2e/test_silent_runs.py",
)
"""The modules that take longest (minutes each), started first: `make test` spreads whole
modules over its processes (`--dist loadfile`) in collection order, so a long module
collected last would keep one process busy after the other ran out of work."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier; put the longest modules first."""
    root = Path(__file__).parent
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        folder = item.path.relative_to(root).parts[0]
        if folder in TIERS:
            item.add_marker(getattr(pytest.mark, folder))
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}

    def order(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(root).as_posix(), len(rank))

    items.sort(key=order)  # stable: the rest keep their order
