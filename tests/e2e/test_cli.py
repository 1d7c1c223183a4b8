"""The `mlops` command as a person types it: exit codes, messages, replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from mlops.synthetic import Defect, Scenario, generate, write_batch
from mlops.validation import load_manifest
from tests.e2e.conftest import SMALL_BUDGET

MLOPS = str(Path(sys.executable).with_name("mlops"))


def _mlops(*args: str, home: Path, api_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **SMALL_BUDGET, "MLOPS_HOME": str(home), "PREFECT_API_URL": api_url}
    return subprocess.run(
        [MLOPS, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_refused_batch_exits_nonzero_and_replay_releases_it_once_fixed(
    prefect_api_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "state"
    base = write_batch(
        generate(Scenario.BASELINE, 3_000, datetime(2026, 1, 1, tzinfo=UTC)), tmp_path / "b.parquet"
    )
    ok = _mlops(
        "pipeline", "run", "--data", str(base), "--json", home=home, api_url=prefect_api_url
    )
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["status"] == "registered"
    assert summary["model"]["name"] == "card_fraud" and summary["model"]["version"] == "1"
    assert set(summary["model"]["aliases"]) == {"champion", "challenger"}
    assert set(summary["metrics"]["holdout"]) >= {"roc_auc", "accuracy", "f1", "log_loss", "ece"}
    assert summary["mlflow_run_id"] and summary["flow_run_id"]

    bad = generate(
        Scenario.BAD_BATCH, 800, datetime(2026, 1, 8, tzinfo=UTC), defects=[Defect.NULLS]
    )
    bad_path = write_batch(bad, tmp_path / "nulls.parquet")
    refused = _mlops(
        "pipeline", "run", "--data", str(bad_path), "--json", home=home, api_url=prefect_api_url
    )
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["status"] == "rejected"
    assert "pipeline stopped" in refused.stderr
    assert "distance_from_home_km.not_null" in refused.stderr
    assert "report.html" in refused.stderr

    folder = next((home / "quarantine" / "card_fraud").iterdir())
    manifest = load_manifest(folder)
    # A person fixes the quarantined file in place, then replays it.
    fixed = pd.read_parquet(manifest.data_file)
    fixed["distance_from_home_km"] = fixed["distance_from_home_km"].fillna(0.0)
    fixed["merchant_category"] = fixed["merchant_category"].fillna("grocery")
    fixed.to_parquet(manifest.data_file, index=False)
    replayed = _mlops("data", "replay", str(folder), home=home, api_url=prefect_api_url)
    assert replayed.returncode == 0, replayed.stderr
    assert "released" in replayed.stdout
    assert load_manifest(folder).status.value == "released"


def test_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            MLOPS,
            "data",
            "generate",
            "--scenario",
            "chaos",
            "--rows",
            "10",
            "--out",
            str(tmp_path / "x.parquet"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "chaos" in result.stderr
