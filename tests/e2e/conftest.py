"""End-to-end fixtures: a real Prefect server and an isolated state directory per scope."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlops.settings import Settings, get_settings


@pytest.fixture(scope="session")
def prefect_api_url() -> Iterator[str]:
    """A temporary Prefect server (SQLite) for the whole session; flows report to it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        assert url, "the test harness did not set PREFECT_API_URL"
        yield url


@contextmanager
def mlops_home(path: Path) -> Iterator[Settings]:
    """Point the process-wide settings (what tasks read) at another state directory."""
    previous = os.environ.get("MLOPS_HOME")
    os.environ["MLOPS_HOME"] = str(path)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        if previous is None:
            os.environ.pop("MLOPS_HOME", None)
        else:
            os.environ["MLOPS_HOME"] = previous
        get_settings.cache_clear()
