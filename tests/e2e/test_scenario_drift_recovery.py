"""`mlops scenario run drift-recovery`: the whole loop stays quiet on baseline traffic, then
heals itself after a concept shift.

The run is the real command in a process of its own (Prefect reads its settings at
import), with its own Prefect server, worker, prediction service and state directory
under a temporary folder, in compressed time: small windows, small data, a small
tuning budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--rows-per-window", "600", "--window-seconds", "3"]
QUIET_WINDOWS = 5


def run_scenario(out: Path, *options: str) -> tuple[dict[str, Any], float]:
    """Run the command with `--json`; the parsed summary and the seconds it took."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mlops_cli.main", "scenario", "run", "drift-recovery", "--json"]
        + ["--out", str(out), *SMALL, *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - began
    assert done.returncode == 0, (
        f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    )
    summary: dict[str, Any] = json.loads(done.stdout)
    print(  # noqa: T201 - the figures are this test's report
        f"\n{summary['shift']}: {elapsed:.0f} s; detection delay "
        f"{summary['detection_delay_windows']} windows; shift -> alarm "
        f"{summary['shift_to_detection_s']} s, -> retrain {summary['shift_to_retrain_s']} s, "
        f"-> registered {summary['shift_to_registered_s']} s, -> promoted "
        f"{summary['shift_to_promotion_s']} s; post-shift accuracy old "
        f"{summary['old_accuracy_post_drift']} new {summary['new_accuracy_post_drift']}, "
        f"ROC AUC old {summary['old_roc_auc_post_drift']} new {summary['new_roc_auc_post_drift']}"
    )
    return summary, elapsed


def test_a_concept_shift_is_detected_retrained_on_and_promoted_with_no_human(
    tmp_path: Path,
) -> None:
    # Five baseline windows first: the loop must stay quiet on traffic like its training
    # data (what `--no-drift` replays alone) before it is shifted.
    summary, _ = run_scenario(
        tmp_path / "drift", "--windows", "45", "--baseline-windows", str(QUIET_WINDOWS)
    )

    assert summary["recovered"] is True
    assert summary["alarms_before_shift"] == 0 and summary["retraining_runs_before_shift"] == 0
    quiet = summary["window_records"][:QUIET_WINDOWS]
    assert [r["monitor_status"] for r in quiet] == ["evaluated"] * QUIET_WINDOWS
    assert not any(r["alarm"] for r in quiet)
    assert {r["champion_version"] for r in quiet} == {summary["old_version"]}
    assert 0 <= summary["detection_delay_windows"] <= 2
    new = summary["new_version"]
    assert new is not None and new != summary["old_version"]
    assert summary["new_accuracy_post_drift"] > summary["old_accuracy_post_drift"]
    assert summary["new_roc_auc_post_drift"] > summary["old_roc_auc_post_drift"] + 0.1
    assert (
        summary["shift_at_s"]
        <= summary["detected_at_s"]
        <= summary["retrain_started_at_s"]
        <= summary["registered_at_s"]
        <= summary["promoted_at_s"]
    )
    # The new champion learned from post-shift rows: its training window starts at the
    # drift onset (the alarm's window) and its batch is made of rows sent after the shift.
    [retraining] = [r for r in summary["retraining_runs"] if r["status"] == "registered"]
    assert retraining["post_shift_rows"] >= 0.9 * retraining["rows"] > 0
    assert retraining["window_end_s"] > summary["shift_at_s"]
    plot = Path(summary["plot"])
    assert plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["artifact_id"]
    assert json.loads((tmp_path / "drift" / "summary.json").read_text()) == summary
    served = pd.DataFrame(summary["window_records"])
    assert set(served["champion_version"]) == {summary["old_version"], new}
    # Healed: judged on the new champion's own answers, the last window is quiet.
    assert served.iloc[-1]["champion_version"] == new and not served.iloc[-1]["alarm"]
