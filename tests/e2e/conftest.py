"""End-to-end fixtures: an isolated state directory per scope (the session's Prefect server
is `prefect_api_url` of tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlops.settings import Settings, get_settings

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
