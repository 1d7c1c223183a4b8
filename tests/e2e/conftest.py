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


# A small tuning budget keeps whole-pipeline tests to seconds. Such a model on a few
# thousand rows may not beat logistic regression, so the gate's margin is relaxed here:
# these tests are about the wiring. The margin itself is tested in
# test_a_candidate_that_fails_the_gate_changes_nothing_in_the_registry and in
# tests/unit/test_registry_gate.py; model quality in tests/model.
SMALL_BUDGET = {
    "MLOPS_TUNING__N_TRIALS": "3",
    "MLOPS_TUNING__MAX_EPOCHS": "6",
    "MLOPS_TUNING__WORKERS": "1",
    "MLOPS_GATE__MIN_GAIN_OVER_BASELINE": "-1",
    "MLOPS_QUANTIZATION__QAT_EPOCHS": "2",
}


@contextmanager
def mlops_env(home: Path, **overrides: str) -> Iterator[Settings]:
    """Point the process-wide settings (what tasks read) at another state directory.

    `overrides` are more `MLOPS_*` variables; Dask worker processes inherit them too.
    """
    wanted = {**SMALL_BUDGET, **overrides, "MLOPS_HOME": str(home)}
    previous = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
