"""Closed-loop scenarios: the whole loop replayed in compressed time, with no human action.

`drift-recovery` (`mlops scenario run drift-recovery`) starts the real stack (Prefect
server, deployments, worker, prediction service), trains a champion on baseline data,
then replays live traffic window by window: a baseline period, a shift, labels that
arrive one window late, the drift monitor after every window. The alarm's event starts
the retraining deployment, the registered version's event starts the canary, and the
canary promotes on labelled evidence. The driver only plays the world (traffic, labels,
the monitor's schedule) and records what the loop did.

Modules: `timeline` (records and the JSON summary), `traffic` (the world: rows, HTTP
traffic, delayed labels, landed batches), `stack` (the compressed-time settings and the
processes), `observe` (what the loop did, read from Prefect, the ledger and the
registry), `drift_recovery` (the orchestration), `plot`, `soak` with `soak_plan` and
`soak_report` (the loop in real time for hours), and `cli` (`mlops scenario`).

Tooling above `flows/`: the driver runs flows in-process and imports them directly.
"""

from __future__ import annotations
