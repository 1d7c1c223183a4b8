"""Prefect's share of a tuning study: the `tune-model` subflow vs the trials inside it.

`benchmarks/training.py` times trials without Prefect. This script runs the same kind of
study through the real `tune-model` flow (Prefect tasks, a Dask cluster of worker
processes, MLflow tracking) and splits its wall time into time inside trials (Optuna's
own start/complete stamps) and everything else: Prefect task orchestration, Dask
cluster start-up, data loading, summarizing. Prefect runs on its ephemeral server,
started (and warmed by a trivial flow) before the clock starts.

Run from the repository root: `.venv/bin/python benchmarks/tuning_flow.py
[--rows 100000 --trials 20 --workers 2]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-flow-"))
    # Settings are read from the environment, by this process and by the Dask workers.
    os.environ.update(
        {
            "MLOPS_HOME": str(tmp / "state"),
            "MLOPS_TUNING__N_TRIALS": str(args.trials),
            "MLOPS_TUNING__WORKERS": str(args.workers),
            "PREFECT_HOME": str(tmp / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
    )
    from optuna.trial import TrialState
    from prefect import flow

    from flows.tuning import trial_runner, tune_model
    from mlops.dataset_spec import load_spec
    from mlops.modeling import as_training_frame
    from mlops.settings import get_settings
    from mlops.sources import sha256_file
    from mlops.synthetic import Scenario, generate
    from mlops.tracking import start_parent_run
    from mlops.tuning import TuningData, open_study

    @flow(name="warm-up")
    def warm_up() -> None:
        """Start the ephemeral server before the clock does."""

    settings = get_settings()
    spec = load_spec(Path("datasets/card_fraud.yaml"))
    raw = generate(Scenario.BASELINE, args.rows, datetime(2026, 1, 1, tzinfo=UTC), days=30)
    schema = spec.resolve_schema(raw)
    path = tmp / "training_set.parquet"
    as_training_frame(raw, spec, schema).to_parquet(path, index=False)
    data = TuningData(uri=str(path), sha256=sha256_file(path), spec=spec, feature_schema=schema)
    warm_up()
    study_name = f"bench-{args.rows}-{args.trials}"
    with start_parent_run(
        settings,
        spec.name,
        dataset_sha256=data.sha256,
        validation_verdict="accepted",
        feature_service="card_fraud_v1",
        study_name=study_name,
    ) as parent:
        started = time.perf_counter()
        tuner = tune_model.with_options(task_runner=trial_runner(settings.tuning))
        summary = tuner(study_name, data, parent, args.workers)
        wall = time.perf_counter() - started
    trials = open_study(study_name, settings).get_trials(deepcopy=False)
    inside = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_complete and t.datetime_start
    )
    busy = inside / (args.workers * wall)
    pruned = sum(t.state is TrialState.PRUNED for t in trials)
    print(f"{args.rows:,} rows, {args.trials} trials, {args.workers} worker(s), via Prefect")
    print(f"  flow wall time            {wall:8.1f} s")
    print(f"  time inside trials        {inside:8.1f} s (all workers; {pruned} pruned)")
    print(f"  workers busy in trials    {busy:8.1%}")
    print(
        f"  outside trials            {1 - busy:8.1%}  (Prefect tasks, Dask start-up, "
        "data loading, summary)"
    )
    print(f"  best trial {summary.best_trial_number}: valid loss {summary.best_value:.4f}")


if __name__ == "__main__":
    main()
