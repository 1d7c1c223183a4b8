"""HPO wall time with 1, 2 and 4 Dask worker processes sharing one PostgreSQL study.

Every configuration runs the same study configuration (trial budget, epoch budget,
data, sampler seed) from a fresh PostgreSQL database on a `LocalCluster` of N
single-threaded worker processes, each running `mlops.tuning.run_trials` (what the
flow's `run-trials` task calls) until the study holds its budget. The cluster is
started and its workers have imported torch before the clock starts (a long-lived
cluster is warm); each worker's data loading is inside the clock.

Printed per N: wall time, speed-up over N=1, efficiency (speed-up / N), the summed time
inside trials, the pruned count (TPE proposes differently as N changes, so the work
differs a little between rows) and the 1-minute load average when the row ended: on a
shared machine other processes' load inflates the time inside trials, and a row with a
load above the core count measures contention, not scaling. A serial fraction is
fitted (Amdahl) from the rows with N no larger than this machine's cores, and a
one-line prediction for a cluster with a core per worker follows.

Run from the repository root: `.venv/bin/python benchmarks/hpo_scaling.py [--quick]`
(PostgreSQL from `TEST_POSTGRES_URL`, default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Measurement:
    workers: int
    wall_s: float
    inside_s: float
    pruned: int
    per_worker: tuple[int, ...]


def share(study: str, data: Any, settings: Any, worker: int) -> tuple[int, list[int]]:
    """One worker's share of the study (pickled by value: this is `__main__`)."""
    from mlops.tuning import run_trials

    return os.getpid(), run_trials(study, None, data, settings, worker=worker)


def warm() -> int:
    import torch  # noqa: F401  (a long-lived worker has it loaded)

    import mlops.tuning  # noqa: F401

    return os.getpid()


def measure(workers: int, data: Any, base: Any, trials: int, max_epochs: int) -> Measurement:
    import psycopg
    from distributed import Client, LocalCluster

    from mlops.settings import TuningSettings
    from mlops.tuning import open_study

    database = f"mlops_bench_{uuid.uuid4().hex[:8]}_{workers}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    settings = base.model_copy(
        update={
            "optuna_storage": f"{url}/{database}",
            "tuning": TuningSettings(n_trials=trials, max_epochs=max_epochs, workers=workers),
        }
    )
    study = "hpo-scaling"
    try:
        open_study(study, settings)  # tables and study exist before the workers race
        with (
            LocalCluster(
                n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(warm)
            started = time.perf_counter()
            futures = [
                client.submit(share, study, data, settings, w, pure=False) for w in range(workers)
            ]
            shares = client.gather(futures)
            wall = time.perf_counter() - started
        from optuna.trial import TrialState

        done = open_study(study, settings).get_trials(deepcopy=False)
        assert len(done) == trials, f"the study holds {len(done)} trials, not {trials}"
        inside = sum(
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in done
            if t.datetime_complete and t.datetime_start
        )
        pruned = sum(t.state is TrialState.PRUNED for t in done)
        return Measurement(workers, wall, inside, pruned, tuple(len(n) for _, n in shares))
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def serial_fraction(rows: list[Measurement], cores: int) -> float | None:
    """Amdahl's serial fraction, least squares over N in (1, cores]: S = 1/(f + (1-f)/N)."""
    base = rows[0].wall_s
    points = [(r.workers, base / r.wall_s) for r in rows if 1 < r.workers <= cores]
    if not points:
        return None
    # 1/S = f (1 - 1/N) + 1/N  ->  fit f through the origin on x = 1 - 1/N, y = 1/S - 1/N.
    xs = [1 - 1 / n for n, _ in points]
    ys = [1 / s - 1 / n for n, s in points]
    f = sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
    return min(max(f, 0.0), 1.0)


def amdahl(f: float, n: int) -> float:
    return 1.0 / (f + (1.0 - f) / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--quick", action="store_true", help="10k rows, 6 trials, 4 epochs")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.trials, args.max_epochs = 10_000, 6, 4
    counts = sorted({int(n) for n in args.workers.split(",")})
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-hpo-"))

    from mlops.dataset_spec import load_spec
    from mlops.modeling import as_training_frame
    from mlops.settings import Settings
    from mlops.sources import sha256_file
    from mlops.synthetic import Scenario, generate
    from mlops.tuning import TuningData

    spec = load_spec(Path("datasets/card_fraud.yaml"))
    raw = generate(Scenario.BASELINE, args.rows, datetime(2026, 1, 1, tzinfo=UTC), days=30)
    schema = spec.resolve_schema(raw)
    path = tmp / "training_set.parquet"
    as_training_frame(raw, spec, schema).to_parquet(path, index=False)
    data = TuningData(uri=str(path), sha256=sha256_file(path), spec=spec, feature_schema=schema)
    base = Settings(home=tmp / "state", _env_file=None)  # type: ignore[call-arg]
    cores = len(os.sched_getaffinity(0))

    print(
        f"{args.rows:,} rows, {args.trials} trials of at most {args.max_epochs} epochs, "
        f"one PostgreSQL study; {cores} cores"
    )
    print(
        f"{'workers':>7} {'wall s':>8} {'speed-up':>9} {'efficiency':>10} "
        f"{'in trials s':>11} {'pruned':>6} {'load':>5}  trials per worker"
    )
    rows: list[Measurement] = []
    for n in counts:
        row = measure(n, data, base, args.trials, args.max_epochs)
        rows.append(row)
        speedup = rows[0].wall_s / row.wall_s
        print(
            f"{row.workers:>7} {row.wall_s:>8.1f} {speedup:>8.2f}x {speedup / n:>10.0%} "
            f"{row.inside_s:>11.1f} {row.pruned:>6} {os.getloadavg()[0]:>5.1f}  "
            f"{list(row.per_worker)}",
            flush=True,
        )
    f = serial_fraction(rows, cores)
    if f is None:
        print("no worker count in (1, cores]: no serial fraction to fit")
        return
    if f >= 1.0:
        print("no speed-up measured over N <= cores: was the machine busy (see load)?")
        return
    print(
        f"Amdahl fit over N <= {cores}: serial fraction {f:.2f}; a cluster with a core per "
        f"worker predicts {amdahl(f, 4):.1f}x at 4, {amdahl(f, 8):.1f}x at 8, "
        f"{amdahl(f, 16):.1f}x at 16 workers (limit {1 / max(f, 1e-9):.0f}x; "
        f"this {args.trials}-trial budget allows at most {args.trials} busy workers)"
    )


if __name__ == "__main__":
    main()
