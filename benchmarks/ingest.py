"""Wall time of the first pipeline stages for 100k and 1M rows of the card-fraud domain.

Prints, per size: validation (GX suite of the learned contract, warm process), the Feast offline
write, apply + materialize to the SQLite online store, and the point-in-time training
set, each with rows per second. Run: `make bench` or `.venv/bin/python benchmarks/ingest.py
[--sizes 100000 1000000]`. Each size runs in a fresh temporary state directory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from mlops.dataset_spec import load_spec
from mlops.features.offline import write_offline_batch
from mlops.features.store import apply_and_materialize
from mlops.features.training import build_training_set
from mlops.settings import Settings
from mlops.sources import ingest_batch
from mlops.synthetic import Scenario, generate, write_batch
from mlops.validation import learn_profile, validate_batch

T = TypeVar("T")
SPEC = load_spec(Path(__file__).resolve().parent.parent / "datasets" / "card_fraud.yaml")


def timed(label: str, rows: int, action: Callable[[], T], results: list[tuple[str, float]]) -> T:
    started = time.perf_counter()
    value = action()
    elapsed = time.perf_counter() - started
    results.append((label, elapsed))
    print(f"  {label:<34} {elapsed:8.2f} s  {rows / elapsed:>12,.0f} rows/s", flush=True)
    return value


def run(rows: int) -> list[tuple[str, float]]:
    results: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as tmp:
        settings = Settings(home=Path(tmp) / "state", _env_file=None)  # type: ignore[call-arg]
        start = datetime(2026, 1, 1, tzinfo=UTC)
        reference = generate(Scenario.BASELINE, 100_000, start, days=30)
        profile = learn_profile(SPEC, reference, "reference")
        frame = generate(Scenario.BASELINE, rows, datetime(2026, 2, 1, tzinfo=UTC), days=30)
        path = write_batch(frame, Path(tmp) / "batch.parquet")
        spec = SPEC.with_source_path(path)
        print(
            f"{rows:,} rows, {len(profile.feature_schema.columns)} features, "
            f"{frame['card_id'].nunique():,} entities",
            flush=True,
        )
        frame, batch = ingest_batch(spec, settings)
        # The first suite in a process imports Great Expectations (~5 s): warm it up so
        # the figure is the steady-state cost a long-lived worker pays per batch.
        validate_batch(frame.head(1_000), batch, spec, profile, settings)
        report = timed(
            "validate (GX)",
            rows,
            lambda: validate_batch(frame, batch, spec, profile, settings),
            results,
        )
        assert report.passed, report.summary()
        schema = profile.feature_schema
        timed(
            "offline write (parquet)",
            rows,
            lambda: write_offline_batch(spec, schema, frame, batch.sha256, settings),
            results,
        )
        assert batch.end is not None
        end = batch.end
        timed(
            "apply + materialize (SQLite)",
            rows,
            lambda: apply_and_materialize(spec, schema, settings, until=end),
            results,
        )
        training = timed(
            "training set (point-in-time)",
            rows,
            lambda: build_training_set(spec, schema, settings),
            results,
        )
        assert training.rows == rows, f"training set lost rows: {training.rows} != {rows}"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    summary = {rows: run(rows) for rows in args.sizes}
    print("\nsummary (seconds)")
    labels = [label for label, _ in next(iter(summary.values()))]
    print(f"  {'stage':<34}" + "".join(f"{rows:>14,}" for rows in summary))
    for index, label in enumerate(labels):
        print(f"  {label:<34}" + "".join(f"{summary[r][index][1]:>14.2f}" for r in summary))
    if len(summary) > 1:
        small, large = min(summary), max(summary)
        for index, label in enumerate(labels):
            ratio = summary[large][index][1] / summary[small][index][1]
            print(f"  {label:<34} {large // small}x rows -> {ratio:.1f}x time")


if __name__ == "__main__":
    main()
