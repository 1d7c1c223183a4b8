"""From a drift alarm to a retraining run (issue #6), without Prefect.

`models` names the requests, decisions and ledger rows; `rules` holds the pure
guardrails (data-quality incident, running or stale, cooldown, debounce, rollout in
progress, minimum new data); `ledger` keeps them in SQL; `guardrails` applies the rules
to the ledger (`check_retrain` for a retraining, `hold_alarm` for the drift monitor);
`heartbeat` beats a running retraining's row so a killed worker's run expires
(`expire_stale_runs`); `window` chooses the rows the retrained model learns from and
writes them as one immutable batch; `planning` (imported on its own: it reads
`mlops.quality`) puts window, guardrails and batch together for a retraining run.
"""

from __future__ import annotations

from mlops.retraining.guardrails import check_retrain, hold_alarm
from mlops.retraining.heartbeat import (
    FlowRunGone,
    expire_stale_runs,
    expiry_payload,
    keep_beating,
    retraining_alive,
)
from mlops.retraining.ledger import (
    beat,
    expire_run,
    ledger_url,
    oldest_waiting_alarm,
    pending_alarms,
    recent_alarms,
    record_outcome,
    retrain_runs,
    run_of_flow_run,
    running_retrainings,
    trained_until,
)
from mlops.retraining.models import (
    AlarmRecord,
    ExpiredRun,
    GuardDecision,
    GuardOutcome,
    RetrainRequest,
    RetrainRun,
    RetrainTrigger,
    RunStatus,
)
from mlops.retraining.rules import is_alive, overdue_reason, stale_reason
from mlops.retraining.window import (
    RetrainWindow,
    WindowBatch,
    collect_window,
    count_new_rows,
    landing_batches,
    load_window,
    new_rows_since,
    retraining_window,
    window_batch_dir,
    write_window_batch,
)

__all__ = [
    "AlarmRecord",
    "ExpiredRun",
    "FlowRunGone",
    "GuardDecision",
    "GuardOutcome",
    "RetrainRequest",
    "RetrainRun",
    "RetrainTrigger",
    "RetrainWindow",
    "RunStatus",
    "WindowBatch",
    "beat",
    "check_retrain",
    "collect_window",
    "count_new_rows",
    "new_rows_since",
    "expire_run",
    "expire_stale_runs",
    "expiry_payload",
    "hold_alarm",
    "is_alive",
    "keep_beating",
    "landing_batches",
    "ledger_url",
    "load_window",
    "oldest_waiting_alarm",
    "overdue_reason",
    "pending_alarms",
    "recent_alarms",
    "record_outcome",
    "retrain_runs",
    "retraining_alive",
    "retraining_window",
    "run_of_flow_run",
    "running_retrainings",
    "stale_reason",
    "trained_until",
    "window_batch_dir",
    "write_window_batch",
]
