"""The performance alarm on simulated windows: false alarm rate and power, new rule vs old.

Windows, references and champions are drawn by `mlops.drift.alarm_simulation` (binormal
scores, true ROC AUC 0.80-0.95, 1-10 % positives, windows of 50-5,000 labelled rows,
holdout references of 2,000-20,000 rows). Each window is judged by:

* **new**: `judge_performance` with the settings' defaults (or the options below): a
  one-sided lower confidence bound of the ROC AUC drop (DeLong variances of window and
  reference) and of the accuracy drop (Newcombe), each at alpha / 2, against the
  tolerances; "insufficient labels" below `min_positives` / `min_negatives`;
* **old**: the fixed rule it replaces, degraded when the ROC AUC drop exceeds 0.05, on
  windows of at least 100 labelled rows with both classes.

First `--stable` windows with no true drop: the false alarm rate (FAR) of each rule,
among the windows it judged and per window (a window it did not judge raises nothing),
with 95 % Clopper-Pearson intervals; then `--windows` windows for each true drop of
`--drops`: the power, by window size bucket and by labelled positives. Ratios compare
the rules in the same run.

Run from the repository root: `.venv/bin/python benchmarks/performance_alarm.py` (about
a minute on one core); `--quick` for a short check. Exit status 1 when the new rule's
FAR among judged windows is above alpha beyond doubt (its interval lies above alpha).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from mlops.drift.alarm_simulation import (
    Rate,
    SimulationSpec,
    WindowOutcome,
    alarm_rate,
    old_alarm_rate,
    simulate_windows,
)
from mlops.settings import DriftSettings

ROW_BUCKETS = ((50, 199), (200, 999), (1_000, 5_000))
POSITIVE_BUCKETS = ((30, 59), (60, 149), (150, 10**9))


def _rate(rate: Rate) -> str:
    if not rate.trials:
        return "-"
    return f"{rate.value:.4f} [{rate.low:.4f}, {rate.high:.4f}]"


def _ratio(numerator: float, denominator: float) -> str:
    if denominator == 0:
        return "inf" if numerator > 0 else "-"
    return f"{numerator / denominator:.1f}x"


def _in_rows(bucket: tuple[int, int]) -> Callable[[WindowOutcome], bool]:
    return lambda o: bucket[0] <= o.rows <= bucket[1]


def _in_positives(bucket: tuple[int, int]) -> Callable[[WindowOutcome], bool]:
    return lambda o: bucket[0] <= o.positives <= bucket[1]


def _groups(
    outcomes: Sequence[WindowOutcome],
) -> list[tuple[str, list[WindowOutcome]]]:
    groups = [
        (f"{low:,}-{high:,}", [o for o in outcomes if _in_rows((low, high))(o)])
        for low, high in ROW_BUCKETS
    ]
    return [*groups, ("all", list(outcomes))]


def print_false_alarms(stable: Sequence[WindowOutcome], alpha: float) -> Rate:
    print(f"\n### Stable windows (no true drop): false alarm rate, alpha = {alpha:g}\n")
    print(
        "| window rows | windows | median positives | judged new | FAR new, judged [95 % CI] "
        "| FAR new, per window | judged old | FAR old, judged [95 % CI] | FAR old, per window "
        "| old / new (per window) |"
    )
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |")
    for label, group in _groups(stable):
        new_judged, new_all = alarm_rate(group), alarm_rate(group, judged_only=False)
        old_judged, old_all = old_alarm_rate(group), old_alarm_rate(group, judged_only=False)
        positives = statistics.median(o.positives for o in group) if group else 0
        print(
            f"| {label} | {len(group):,} | {positives:g} | {new_judged.trials:,} | "
            f"{_rate(new_judged)} | {new_all.value:.4f} | {old_judged.trials:,} | "
            f"{_rate(old_judged)} | {old_all.value:.4f} | "
            f"{_ratio(old_all.value, new_all.value)} |"
        )
    return alarm_rate(stable)


def print_power(by_drop: dict[float, list[WindowOutcome]]) -> None:
    print("\n### Power: alarm rate per window (an unjudged window counts as no alarm)\n")
    print(
        "| true ROC AUC drop | window rows | windows | judged new | power new | "
        "power new, judged | power old | new / old |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for drop, outcomes in by_drop.items():
        for label, group in _groups(outcomes):
            new_all, new_judged = alarm_rate(group, judged_only=False), alarm_rate(group)
            old_all = old_alarm_rate(group, judged_only=False)
            print(
                f"| {drop:.2f} | {label} | {len(group):,} | {new_judged.trials:,} | "
                f"{new_all.value:.3f} | {new_judged.value:.3f} | {old_all.value:.3f} | "
                f"{_ratio(new_all.value, old_all.value)} |"
            )
    print("\n### Power of the new rule by labelled positives in the window (judged windows)\n")
    header = " | ".join(
        f"{low}-{high}" if high < 10**9 else f">= {low}" for low, high in POSITIVE_BUCKETS
    )
    print(f"| true ROC AUC drop | {header} |")
    print("| ---: |" + " ---: |" * len(POSITIVE_BUCKETS))
    for drop, outcomes in by_drop.items():
        cells = []
        for bucket in POSITIVE_BUCKETS:
            group = [o for o in outcomes if o.judged and _in_positives(bucket)(o)]
            rate = alarm_rate(group)
            cells.append(f"{rate.value:.3f} (n={rate.trials})" if rate.trials else "-")
        print(f"| {drop:.2f} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stable", type=int, default=6_000, help="stable windows")
    parser.add_argument("--windows", type=int, default=3_000, help="windows per true drop")
    parser.add_argument("--drops", type=float, nargs="+", default=[0.03, 0.05, 0.10])
    parser.add_argument("--alpha", type=float, default=None, help="performance_alpha")
    parser.add_argument("--max-roc-auc-drop", type=float, default=None)
    parser.add_argument("--seed", type=int, default=20_261_124)
    parser.add_argument("--quick", action="store_true", help="1,000 stable, 500 per drop")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    args = parser.parse_args(argv)
    if args.quick:
        args.stable, args.windows = 1_000, 500
    overrides = {
        k: v
        for k, v in (
            ("performance_alpha", args.alpha),
            ("max_roc_auc_drop", args.max_roc_auc_drop),
        )
        if v is not None
    }
    settings = DriftSettings(**overrides)
    spec = SimulationSpec()
    print(
        f"new rule: alpha={settings.performance_alpha:g} (alpha/2 per metric), "
        f"max_roc_auc_drop={settings.max_roc_auc_drop:g}, "
        f"max_accuracy_drop={settings.max_accuracy_drop:g}, "
        f"min_positives={settings.min_positives}, min_negatives={settings.min_negatives}; "
        f"old rule: drop > {spec.old_max_drop:g} on >= {spec.old_min_rows} labelled rows"
    )
    print(
        f"windows: {spec.rows[0]:,}-{spec.rows[1]:,} labelled rows, positives "
        f"{spec.prevalence[0]:.0%}-{spec.prevalence[1]:.0%}, reference holdout "
        f"{spec.reference_rows[0]:,}-{spec.reference_rows[1]:,} rows, true ROC AUC "
        f"{spec.reference_auc[0]:.2f}-{spec.reference_auc[1]:.2f}; seed {args.seed}"
    )
    started = time.perf_counter()
    stable = simulate_windows(args.stable, true_drop=0.0, settings=settings, seed=args.seed)
    by_drop = {
        drop: simulate_windows(
            args.windows, true_drop=drop, settings=settings, seed=args.seed + 1 + i
        )
        for i, drop in enumerate(args.drops)
    }
    elapsed = time.perf_counter() - started
    far = print_false_alarms(stable, settings.performance_alpha)
    print_power(by_drop)
    total = args.stable + args.windows * len(args.drops)
    accuracy_only = sum(1 for o in stable if o.alarm and not o.roc_auc_alarm) + sum(
        1 for group in by_drop.values() for o in group if o.alarm and not o.roc_auc_alarm
    )
    print(
        f"\n{total:,} windows simulated and judged in {elapsed:.1f} s; "
        f"{accuracy_only} alarm(s) came from accuracy alone"
    )
    above = far.low > settings.performance_alpha
    print(
        f"new rule FAR among judged stable windows: {_rate(far)} vs alpha "
        f"{settings.performance_alpha:g}: "
        + ("ABOVE alpha" if above else "not above alpha")
        + ("" if far.high <= settings.performance_alpha else " (the interval reaches above alpha)")
    )
    if args.json:
        payload = {
            "stable": [asdict(o) for o in stable],
            **{f"drop_{d:g}": [asdict(o) for o in group] for d, group in by_drop.items()},
        }
        args.json.write_text(json.dumps(payload, default=str))
    return 1 if above else 0


if __name__ == "__main__":
    raise SystemExit(main())
