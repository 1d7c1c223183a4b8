"""Wall time of one hyperparameter study, run by 1 worker and by N parallel workers.

For each worker count, in a fresh temporary state directory (SQLite Optuna study,
SQLite MLflow store with one nested run per trial under a parent run), the same study
budget (`--trials`) is run on the same training set (`--rows` synthetic baseline
transactions, written as a parquet training set):

* 1 worker: `run_trials` in this process;
* N workers: N spawned processes (`ProcessPoolExecutor`), each calling `run_trials` on
  the same study; the study's storage holds the shared budget.

The clock runs from handing out the work to the last worker's return: worker start-up
(spawn, imports), reading and splitting the data, Optuna and MLflow bookkeeping and the
fits themselves. Store creation, the study and the parent run are set up before it.
Every `fit` is timed inside the trials (including those pruned mid-fit), so

    overhead = 1 - sum(fit seconds) / (workers x wall seconds)

is the share of the workers' time not spent training. Trial sequences differ between
modes (each worker samples with its own seed), so the epochs trained are printed too.

Run from the repository root: `.venv/bin/python benchmarks/training.py` (100k rows,
20 trials, 1 and 2 workers, the settings' epoch budget); a quick check:
`--rows 20000 --trials 4 --max-epochs 5`.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from mlops.dataset_spec import DatasetSpec, FeatureSchema, load_spec
from mlops.modeling import TrainConfig, as_training_frame, split_time_ordered
from mlops.modeling.train import fit as real_fit
from mlops.settings import Settings
from mlops.sources import sha256_file
from mlops.synthetic import Scenario, generate
from mlops.tracking import TrialTracker, configure_tracking, start_parent_run
from mlops.tuning import TuningData, open_study, run_trials
from mlops.tuning.study import ATTR_EPOCHS_RUN

SPEC = load_spec(Path(__file__).resolve().parent.parent / "datasets" / "card_fraud.yaml")
FIT_TIMES = "fit-times"


@dataclass(frozen=True)
class TimedFit:
    """`mlops.modeling.train.fit`, timed; each process writes its own list of durations."""

    folder: Path
    seconds: list[float] = field(default_factory=list)

    def __call__(
        self,
        config: TrainConfig,
        train: pd.DataFrame,
        valid: pd.DataFrame,
        spec: DatasetSpec,
        schema: FeatureSchema,
        *,
        on_epoch: Callable[[Any], None] | None = None,
    ) -> Any:
        started = time.perf_counter()
        try:
            return real_fit(config, train, valid, spec, schema, on_epoch=on_epoch)
        finally:  # a pruned trial leaves `fit` by TrialPruned: its epochs count too
            self.seconds.append(time.perf_counter() - started)
            out = self.folder / f"{os.getpid()}.json"
            out.write_text(json.dumps(self.seconds))


@dataclass(frozen=True)
class WorkerJob:
    """One worker's share of the study (pickled to a spawned process)."""

    study_name: str
    data: TuningData
    settings: Settings
    tracker: TrialTracker
    worker: int
    fit: TimedFit
    submitted: float


@dataclass(frozen=True)
class WorkerReport:
    worker: int
    trials: list[int]
    startup_s: float
    """From hand-out to `run_trials` starting (spawn and imports; 0 in-process)."""


def run_worker(job: WorkerJob) -> WorkerReport:
    """Entry point of a worker (module level, so a spawned process can import it)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    startup = time.time() - job.submitted
    trials = run_trials(
        job.study_name, None, job.data, job.settings, job.tracker, worker=job.worker, fit=job.fit
    )
    return WorkerReport(job.worker, trials, startup)


@dataclass(frozen=True)
class ModeResult:
    workers: int
    wall_s: float
    startup_s: float
    fit_s: float
    fits: int
    epochs: int
    complete: int
    pruned: int
    failed: int
    shares: list[int]

    @property
    def overhead(self) -> float:
        """Share of the workers' wall time not spent inside `fit`."""
        return 1.0 - self.fit_s / (self.workers * self.wall_s)


def make_training_set(rows: int, folder: Path) -> TuningData:
    """A synthetic baseline batch in the training-set layout, stored as parquet."""
    raw = generate(Scenario.BASELINE, rows, datetime(2026, 1, 1, tzinfo=UTC), days=30, seed=0)
    schema = SPEC.resolve_schema(raw)
    path = folder / "training_set.parquet"
    as_training_frame(raw, SPEC, schema).to_parquet(path, index=False)
    return TuningData(uri=str(path), sha256=sha256_file(path), spec=SPEC, feature_schema=schema)


def run_mode(
    workers: int, data: TuningData, base: Settings, trials: int, max_epochs: int
) -> ModeResult:
    """One study with `workers` workers in a fresh state directory."""
    with tempfile.TemporaryDirectory(prefix=f"mlops-bench-train-{workers}w-") as tmp:
        home = Path(tmp) / "state"
        tuning = base.tuning.model_copy(
            update={"n_trials": trials, "max_epochs": max_epochs, "workers": workers}
        )
        settings = base.model_copy(
            update={"home": home, "tracking_uri": None, "optuna_storage": None, "tuning": tuning}
        )
        times = Path(tmp) / FIT_TIMES
        times.mkdir()
        timed_fit = TimedFit(times)
        study_name = f"bench-{workers}w"
        configure_tracking(settings)
        open_study(study_name, settings)  # tables and study exist before workers race
        with start_parent_run(
            settings,
            SPEC.name,
            dataset_sha256=data.sha256,
            validation_verdict="accepted",
            feature_service=f"{SPEC.name}_v1",
            study_name=study_name,
            run_name=f"benchmark-{workers}w",
        ) as parent:
            tracker = TrialTracker.for_parent_run(settings, parent)
            started = time.perf_counter()
            submitted = time.time()
            jobs = [
                WorkerJob(study_name, data, settings, tracker, i, timed_fit, submitted)
                for i in range(workers)
            ]
            if workers == 1:
                reports = [run_worker(jobs[0])]
            else:
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                    reports = list(pool.map(run_worker, jobs))
            wall = time.perf_counter() - started

        durations = [s for f in times.glob("*.json") for s in json.loads(f.read_text())]
        study = open_study(study_name, settings)
        done = study.get_trials(deepcopy=False)
        return ModeResult(
            workers=workers,
            wall_s=wall,
            startup_s=max(r.startup_s for r in reports),
            fit_s=sum(durations),
            fits=len(durations),
            epochs=sum(int(t.user_attrs.get(ATTR_EPOCHS_RUN, 0)) for t in done),
            complete=sum(t.state is TrialState.COMPLETE for t in done),
            pruned=sum(t.state is TrialState.PRUNED for t in done),
            failed=sum(t.state is TrialState.FAIL for t in done),
            shares=[len(r.trials) for r in reports],
        )


def print_table(results: Sequence[ModeResult]) -> None:
    reference = next((r for r in results if r.workers == 1), None)
    header = (
        f"{'workers':>7} {'wall s':>8} {'speed-up':>8} {'complete':>8} {'pruned':>6} "
        f"{'failed':>6} {'epochs':>6} {'fit s':>8} {'s/epoch':>7} {'start-up s':>10} "
        f"{'overhead':>8}  trials per worker"
    )
    print("\n" + header)
    print("-" * len(header))
    for r in results:
        speedup = f"{reference.wall_s / r.wall_s:.2f}x" if reference else "-"
        per_epoch = f"{r.fit_s / r.epochs:.2f}" if r.epochs else "-"
        print(
            f"{r.workers:>7} {r.wall_s:>8.1f} {speedup:>8} {r.complete:>8} {r.pruned:>6} "
            f"{r.failed:>6} {r.epochs:>6} {r.fit_s:>8.1f} {per_epoch:>7} {r.startup_s:>10.1f} "
            f"{r.overhead:>7.1%}  {r.shares}"
        )
    print(
        "\noverhead = 1 - sum(fit s) / (workers x wall s); speed-up = wall(1 worker) / wall;\n"
        "s/epoch = fit s / epochs (trial sequences differ between modes, epochs do too)."
    )


def main() -> None:
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="training-set rows")
    parser.add_argument("--trials", type=int, default=20, help="study-wide trial budget")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="modes to run")
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=base.tuning.max_epochs,
        help=f"epoch budget of one trial (default {base.tuning.max_epochs})",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial ... tables"
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="mlops-bench-train-data-") as tmp:
        data = make_training_set(args.rows, Path(tmp))
        frame = pd.read_parquet(data.path)
        splits = split_time_ordered(frame, SPEC)
        print(
            f"{args.rows:,} rows ({len(splits.train):,} train, {len(splits.valid):,} valid), "
            f"{len(data.feature_schema.columns)} features; {args.trials} trials of at most "
            f"{args.max_epochs} epochs (pruner {base.tuning.pruner}); "
            f"{os.cpu_count()} CPUs; MLflow trial tracking on",
            flush=True,
        )
        results = []
        for workers in args.workers:
            print(f"running the study with {workers} worker(s)...", flush=True)
            result = run_mode(workers, data, base, args.trials, args.max_epochs)
            print(
                f"  {result.wall_s:.1f} s wall, {result.complete} complete, "
                f"{result.pruned} pruned, overhead {result.overhead:.1%}",
                flush=True,
            )
            results.append(result)
    print_table(results)


if __name__ == "__main__":
    main()
