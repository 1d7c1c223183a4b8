"""Drift of one window: our `compute_drift` against a plain Evidently `DataDriftPreset` run.

For each column count (`--columns`, default 20 and 500) a synthetic reference and
window of `--rows` rows each (default 10,000) are made: three numeric columns in four
(normal, log-normal, integer-valued, few-valued, some with missing values) and one
categorical in four (3 to 8 levels, some missing); one column in five is shifted, by
amounts from barely to clearly detectable, so that verdicts near the thresholds are
exercised too. Then, on the same frames:

* **evidently**: `Report([DataDriftPreset()]).run(current, reference)` with the column
  kinds declared (`mlops.drift.run_evidently`); Evidently is imported beforehand and
  its import time is printed apart;
* **ours, cold**: `load_or_build_reference` on an empty cache folder (the reference's
  statistics are computed and written), then `compute_drift`;
* **ours, cached**: `load_or_build_reference` on the warm cache (read from disk), then
  `compute_drift` - what a monitor run costs once the champion's reference is cached;
* **ours, in memory**: `compute_drift` alone on statistics already loaded.

Wall seconds are the median of `--repeats` runs. Memory is the tracemalloc peak during
one further run of each variant, above what was allocated before it (the input frames
are not counted): it traces Python and numpy allocations, not memory-mapped files or
the interpreter itself. Per-column verdicts (drifted flag and method) of ours and of
Evidently's "Value Drift" tests are compared; the mismatch count must be 0.

Run from the repository root: `.venv/bin/python benchmarks/drift.py` (several minutes:
Evidently takes tens of seconds at 500 columns); a short check: `--quick` (5,000 rows,
20 and 100 columns, one repeat).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.drift import (
    DriftColumns,
    DriftReport,
    DriftSettings,
    compute_drift,
    evidently_drift_share,
    evidently_verdicts,
    load_or_build_reference,
    load_reference,
    run_evidently,
)

REFERENCE_ID = "bench-reference"


@dataclass
class Measurement:
    variant: str
    wall_s: float
    walls: list[float]
    peak_mb: float


@dataclass
class ConfigResult:
    rows: int
    columns: int
    numeric: int
    categorical: int
    shifted: int
    measurements: list[Measurement]
    drifted_ours: int
    drifted_evidently: int
    share_ours: float
    share_evidently_tests: float
    share_evidently_metric: float
    mismatches: int
    mismatch_details: list[str]


def make_frames(
    rows: int, n_columns: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, DriftColumns, int]:
    """A reference and a window with the same columns, one column in five shifted."""
    rng = np.random.default_rng(seed)
    reference: dict[str, Any] = {}
    current: dict[str, Any] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    shifted = 0
    for i in range(n_columns):
        shift = 0.0
        if i % 5 == 4:
            shift = float(rng.choice([0.05, 0.08, 0.1, 0.12, 0.2, 0.5]))
            shifted += 1
        if i % 4 == 3:
            name = f"cat_{i:03d}"
            levels = [f"v{k}" for k in range(int(rng.integers(3, 9)))]
            base = rng.dirichlet(np.full(len(levels), 5.0))
            moved = np.roll(base, 1) * shift * 2 + base * (1 - shift * 2) if shift else base
            reference[name] = _with_missing(rng, rng.choice(levels, rows, p=base), i)
            current[name] = _with_missing(rng, rng.choice(levels, rows, p=moved), i)
            categorical.append(name)
            continue
        name = f"num_{i:03d}"
        kind = i % 4
        if kind == 0:
            ref_values = rng.normal(0.0, 1.0, rows)
            cur_values = rng.normal(shift, 1.0, rows)
        elif kind == 1:
            ref_values = rng.lognormal(0.0, 0.5, rows)
            cur_values = rng.lognormal(shift, 0.5, rows)
        elif i % 8 == 2:
            ref_values = rng.integers(0, 200, rows).astype(np.float64)
            cur_values = rng.integers(0, 200 + int(shift * 400), rows).astype(np.float64)
        else:
            p = np.array([0.5, 0.3, 0.2])
            q = p + np.array([-shift, shift / 2, shift / 2]) if shift else p
            ref_values = rng.choice([0.0, 1.0, 2.0], rows, p=p)
            cur_values = rng.choice([0.0, 1.0, 2.0], rows, p=q)
        reference[name] = _with_missing(rng, ref_values, i)
        current[name] = _with_missing(rng, cur_values, i)
        numeric.append(name)
    columns = DriftColumns(numeric=tuple(numeric), categorical=tuple(categorical))
    return pd.DataFrame(reference), pd.DataFrame(current), columns, shifted


def _with_missing(rng: np.random.Generator, values: np.ndarray, i: int) -> np.ndarray:
    if i % 7 != 0:
        return values
    out = values.astype(object) if values.dtype.kind in "OU" else values.astype(np.float64)
    out[rng.random(values.size) < 0.05] = None if out.dtype == object else np.nan
    return out


def measure(variant: str, fn: Callable[[], Any], repeats: int) -> tuple[Measurement, Any]:
    """Median wall time of `repeats` runs, then one traced run for the memory peak.

    Returns the measurement and the result of the last untraced run.
    """
    walls = []
    result = None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Measurement(variant, statistics.median(walls), walls, (peak - base) / 2**20), result


def compare(report: DriftReport, snapshot: Any) -> tuple[int, list[str], float, float]:
    """Mismatched columns (drifted flag or method), and Evidently's shares."""
    verdicts = evidently_verdicts(snapshot)
    details = []
    for ours in report.columns:
        theirs = verdicts.get(ours.column)
        if theirs is None:
            details.append(f"{ours.column}: missing in Evidently")
            continue
        if ours.drifted != theirs.drifted or ours.method_label != theirs.method:
            details.append(
                f"{ours.column}: ours {ours.method_label} {ours.score} {ours.drifted}, "
                f"Evidently {theirs.method} {theirs.score} {theirs.drifted}"
            )
    extra = set(verdicts) - {c.column for c in report.columns}
    details += [f"{name}: missing in ours" for name in sorted(extra)]
    tests_share = sum(v.drifted for v in verdicts.values()) / max(1, len(verdicts))
    return len(details), details, tests_share, evidently_drift_share(snapshot)


def run_config(rows: int, n_columns: int, repeats: int, settings: DriftSettings) -> ConfigResult:
    reference, current, columns, shifted = make_frames(rows, n_columns, seed=n_columns)
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        root = Path(tmp)
        warm = root / "warm"
        cold_runs = iter(range(10**6))

        def evidently() -> Any:
            return run_evidently(reference, current, columns, settings)

        def ours_cold() -> DriftReport:
            folder = root / f"cold-{next(cold_runs)}"
            stats = load_or_build_reference(folder, REFERENCE_ID, columns, lambda: reference)
            return compute_drift(stats, current, settings)

        def ours_cached() -> DriftReport:
            stats = load_or_build_reference(warm, REFERENCE_ID, columns, _no_rebuild)
            return compute_drift(stats, current, settings)

        load_or_build_reference(warm, REFERENCE_ID, columns, lambda: reference)
        loaded = load_reference(warm, REFERENCE_ID, columns)

        def ours_in_memory() -> DriftReport:
            return compute_drift(loaded, current, settings)

        with warnings.catch_warnings():  # Evidently's numpy warnings on missing values
            warnings.simplefilter("ignore")
            evidently_measurement, snapshot = measure("evidently", evidently, repeats)
        measurements = [evidently_measurement]
        for variant, fn in [
            ("ours, cold reference", ours_cold),
            ("ours, cached reference", ours_cached),
            ("ours, in-memory reference", ours_in_memory),
        ]:
            measurement, report = measure(variant, fn, repeats)
            measurements.append(measurement)
    mismatches, details, tests_share, metric_share = compare(report, snapshot)
    return ConfigResult(
        rows=rows,
        columns=n_columns,
        numeric=len(columns.numeric),
        categorical=len(columns.categorical),
        shifted=shifted,
        measurements=measurements,
        drifted_ours=report.n_drifted,
        drifted_evidently=round(tests_share * len(columns.features)),
        share_ours=report.share_drifted,
        share_evidently_tests=tests_share,
        share_evidently_metric=metric_share,
        mismatches=mismatches,
        mismatch_details=details,
    )


def _no_rebuild() -> pd.DataFrame:
    raise RuntimeError("the warm cache was expected to hold the reference")


def print_results(results: list[ConfigResult], repeats: int, import_s: float) -> None:
    print(f"\nEvidently import: {import_s:.1f} s (not counted below)")
    print(
        f"wall: median of {repeats} run(s); peak: tracemalloc peak above the baseline "
        "during one more run (MiB)\n"
    )
    print("| rows | columns (num/cat) | variant | wall s | peak MiB | speed-up vs Evidently |")
    print("| ---: | --- | --- | ---: | ---: | ---: |")
    for result in results:
        evidently_s = result.measurements[0].wall_s
        label = f"{result.columns} ({result.numeric}/{result.categorical})"
        for m in result.measurements:
            speedup = "1.0x" if m.variant == "evidently" else f"{evidently_s / m.wall_s:.1f}x"
            print(
                f"| {result.rows:,} | {label} | {m.variant} | {m.wall_s:.3f} | "
                f"{m.peak_mb:.1f} | {speedup} |"
            )
    print(
        "\n| columns | shifted | drifted (ours / Evidently tests) | share ours | "
        "share Evidently tests | Evidently DriftedColumnsCount | verdict mismatches |"
    )
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r.columns} | {r.shifted} | {r.drifted_ours} / {r.drifted_evidently} | "
            f"{r.share_ours:.4f} | {r.share_evidently_tests:.4f} | "
            f"{r.share_evidently_metric:.4f} | {r.mismatches} |"
        )
        for line in r.mismatch_details[:20]:
            print(f"  mismatch: {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows of reference and window")
    parser.add_argument("--columns", type=int, nargs="+", default=[20, 500])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=DriftSettings().max_workers)
    parser.add_argument(
        "--quick", action="store_true", help="5,000 rows, 20 and 100 columns, 1 run"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.columns, args.repeats = 5_000, [20, 100], 1
    settings = DriftSettings(max_workers=args.workers)

    start = time.perf_counter()
    import evidently.presets  # noqa: F401  (the import is timed apart from the runs)

    import_s = time.perf_counter() - start
    results = []
    for n_columns in args.columns:
        print(f"running {args.rows:,} x {n_columns} columns ...", flush=True)
        results.append(run_config(args.rows, n_columns, args.repeats, settings))
    print_results(results, args.repeats, import_s)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.mismatches for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
