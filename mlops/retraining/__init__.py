"""From a drift alarm to a retraining run (issue #6), without Prefect.

`guardrails` decides whether a retraining may start (cooldown, debounce, rollout in
progress, minimum new data) and keeps every decision in a SQL ledger; `window` chooses
the rows the retrained model learns from and writes them as one immutable batch.
"""

from __future__ import annotations

from mlops.retraining.guardrails import (
    AlarmRecord,
    GuardDecision,
    GuardOutcome,
    RetrainRequest,
    RetrainRun,
    RetrainTrigger,
    RunStatus,
    check_retrain,
    hold_alarm,
    ledger_url,
    pending_alarms,
    recent_alarms,
    record_outcome,
    retrain_runs,
    trained_until,
)
from mlops.retraining.window import (
    RetrainWindow,
    WindowBatch,
    as_utc,
    collect_window,
    count_new_rows,
    landing_batches,
    load_window,
    retraining_window,
    window_batch_dir,
    write_window_batch,
)

__all__ = [
    "AlarmRecord",
    "GuardDecision",
    "GuardOutcome",
    "RetrainRequest",
    "RetrainRun",
    "RetrainTrigger",
    "RetrainWindow",
    "RunStatus",
    "WindowBatch",
    "as_utc",
    "check_retrain",
    "collect_window",
    "count_new_rows",
    "hold_alarm",
    "landing_batches",
    "ledger_url",
    "load_window",
    "pending_alarms",
    "recent_alarms",
    "record_outcome",
    "retrain_runs",
    "retraining_window",
    "trained_until",
    "window_batch_dir",
    "write_window_batch",
]
