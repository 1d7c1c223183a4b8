"""What each quantization scheme saves and keeps, on the demo model and on a wide model.

Two fp32 parents are trained on the same synthetic card-fraud rows (`--rows` baseline
transactions, time-split into train and validation, early stopping on validation):

* demo: the default `TrainConfig` architecture (2 hidden layers of 128);
* wide: `--wide-layers` hidden layers of `--wide-width` (default 4 x 1024), trained for
  `--wide-epochs` epochs at most.

Each is quantized to fp32 (the parent's copy: a noise check), int8, fp16 and ternary
(after `--qat-epochs` epochs of quantization-aware fine-tuning on the training rows),
and every variant is scored by `quantization.evaluate_variant` on `--holdout-rows`
fresh transactions of a later week (ROC AUC on a split's small holdout moves too much
between seeds to measure retention). Latencies are medians of `--repeats` calls
interleaved with the parent's, one torch thread, on encoded rows (network and softmax).

Per model, one row per scheme: artifact bytes and their share of the fp32 artifact;
the Linear layers' stored bytes (weights, scales, zero points, biases) against the fp32
ones, also without the biases ("weights"); ROC AUC and accuracy kept (variant /
parent), log-loss delta (variant - parent, positive is worse), agreement of predicted
classes; batch-1 and batch-256 latency against the parent's. Then the int8 variant of
each model re-packed for each other int8 engine (`quantization.int8.repack`: same
stored tensors, other kernels), and the issue's targets with PASS / FAIL and margins.

Run from the repository root: `.venv/bin/python benchmarks/quantization.py` (40k rows,
about 3-4 minutes on 2 cores); a quick check: `--quick`.
"""

# ruff: noqa: E402 (imports after the sys.path fix below)
from __future__ import annotations

import sys
from pathlib import Path

# Run as `python benchmarks/quantization.py`, this file's folder is first on sys.path and
# the file's own name would shadow the `quantization` package: take the folder off.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import copy
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import torch
from safetensors.torch import load as load_safetensors

from mlops.dataset_spec import load_spec
from mlops.modeling import TabularModel, TrainConfig, as_training_frame, fit, split_time_ordered
from mlops.modeling.artifact import WEIGHTS
from mlops.settings import QuantizationSettings
from mlops.synthetic import Scenario, generate
from quantization import (
    QuantizedModel,
    Scheme,
    VariantReport,
    artifact_files,
    evaluate_variant,
    quantize,
)
from quantization.int8 import Int8Engine, repack

SPEC = load_spec(Path(__file__).resolve().parent.parent / "datasets" / "card_fraud.yaml")
TRAIN_START = datetime(2026, 1, 5, tzinfo=UTC)
HOLDOUT_START = datetime(2026, 2, 2, tzinfo=UTC)
ENGINES: tuple[Int8Engine, ...] = ("x86", "fbgemm", "onednn", "qnnpack")


@dataclass(frozen=True)
class Data:
    train: pd.DataFrame
    valid: pd.DataFrame
    holdout: pd.DataFrame

    @property
    def calibration(self) -> pd.DataFrame:
        """The rows ternary fine-tuning learns from: all the parent's training rows."""
        return pd.concat([self.train, self.valid], ignore_index=True)


@dataclass(frozen=True)
class Row:
    report: VariantReport
    weights_only_ratio: float
    quantize_s: float

    @property
    def accuracy_kept(self) -> float:
        return self.report.metrics.accuracy / self.report.parent_metrics.accuracy


@dataclass(frozen=True)
class ModelResult:
    name: str
    description: str
    rows: dict[Scheme, Row]
    engines: dict[str, VariantReport]


@dataclass(frozen=True)
class Target:
    label: str
    value: float
    limit: float
    at_most: bool
    percent: bool

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def margin(self) -> str:
        gap = (self.limit - self.value) if self.at_most else (self.value - self.limit)
        return f"{gap * 100:+.2f} pp" if self.percent else f"{gap:+.4f}"

    def shown(self, value: float) -> str:
        return f"{value:.2%}" if self.percent else f"{value:.4f}"


def make_data(rows: int, holdout_rows: int) -> Data:
    """Synthetic baseline rows, time-split, and a later week's fresh rows to score on."""
    raw = generate(Scenario.BASELINE, rows, TRAIN_START, days=21, seed=5)
    schema = SPEC.resolve_schema(raw)
    splits = split_time_ordered(as_training_frame(raw, SPEC, schema), SPEC)
    later = generate(Scenario.BASELINE, holdout_rows, HOLDOUT_START, days=7, seed=55)
    return Data(splits.train, splits.valid, as_training_frame(later, SPEC, schema))


def weights_bytes(variant: QuantizedModel) -> int:
    """Stored bytes of the MLP's weight tensors (with scales and zero points), no biases."""
    tensors = load_safetensors(artifact_files(variant)[WEIGHTS])
    return sum(
        t.numel() * t.element_size()
        for name, t in tensors.items()
        if name.startswith("mlp.") and not name.endswith(".bias")
    )


def measure(
    name: str,
    config: TrainConfig,
    data: Data,
    settings: QuantizationSettings,
    repeats: int,
    engines: Sequence[Int8Engine],
) -> ModelResult:
    """Train one parent, quantize it every way, score every variant against it."""
    schema = SPEC.resolve_schema(data.train)
    started = time.perf_counter()
    result = fit(config, data.train, data.valid, SPEC, schema)
    model = result.model
    train_s = time.perf_counter() - started
    parameters = sum(p.numel() for p in model.net.mlp.parameters())
    description = (
        f"{name}: {config.hidden_layers} x {config.width} hidden, {parameters:,} MLP "
        f"parameters; best epoch {result.best_epoch} of {len(result.history)}, "
        f"trained in {train_s:.0f} s"
    )
    print(description, flush=True)
    parent_weights = weights_bytes(QuantizedModel(model, Scheme.FP32))
    rows: dict[Scheme, Row] = {}
    variants: dict[Scheme, QuantizedModel] = {}
    for scheme in Scheme:
        started = time.perf_counter()
        variant = quantize(model, scheme, data.calibration, spec=SPEC, settings=settings)
        quantize_s = time.perf_counter() - started
        report = evaluate_variant(model, variant, data.holdout, SPEC, repeats=repeats)
        rows[scheme] = Row(report, weights_bytes(variant) / parent_weights, quantize_s)
        variants[scheme] = variant
        print(
            f"  {scheme.value:<8} quantized in {quantize_s:5.1f} s: retention "
            f"{report.retention:.4f}, {report.bytes_ratio:.2%} of fp32 bytes",
            flush=True,
        )
    engine_reports: dict[str, VariantReport] = {}
    for engine in engines:
        repacked = copy_variant(variants[Scheme.INT8])
        repack(repacked.net, engine)
        engine_reports[engine] = evaluate_variant(
            model, repacked, data.holdout, SPEC, repeats=repeats
        )
    return ModelResult(name, description, rows, engine_reports)


def copy_variant(variant: QuantizedModel) -> QuantizedModel:
    """An independent copy (re-packing works in place)."""
    model = variant.model
    net = copy.deepcopy(model.net)
    return QuantizedModel(
        TabularModel(net, model.preprocessor, model.labels, model.config, model.roles),
        variant.scheme,
        variant.metadata,
    )


LATENCY_HEADER = f"{'1 row ms / fp32':>15} {'x fp32':>6} {'256 rows ms / fp32':>18} {'x fp32':>6}"


def latencies(r: VariantReport) -> str:
    """Variant and parent medians of one interleaved measurement, and their ratio."""
    one = f"{r.latency_1_ms:.3f} / {r.parent_latency_1_ms:.3f}"
    many = f"{r.latency_256_ms:.2f} / {r.parent_latency_256_ms:.2f}"
    return f"{one:>15} {r.latency_1_ratio:>6.2f} {many:>18} {r.latency_256_ratio:>6.2f}"


def print_model(result: ModelResult) -> None:
    parent = result.rows[Scheme.FP32].report
    m = parent.parent_metrics
    print(f"\n== {result.description}")
    print(
        f"parent on the holdout: ROC AUC {m.roc_auc:.4f}, accuracy {m.accuracy:.4f}, "
        f"log loss {m.log_loss:.4f}; fp32 artifact {parent.parent_artifact_bytes:,} bytes, "
        f"latency {parent.parent_latency_1_ms:.3f} ms (1 row) / "
        f"{parent.parent_latency_256_ms:.3f} ms (256 rows)"
    )
    header = (
        f"{'scheme':<8} {'artifact B':>11} {'ratio':>7} {'linear':>7} {'weights':>7} "
        f"{'resident':>8} {'AUC kept':>8} {'acc kept':>8} {'logloss Δ':>9} {'agree':>7} "
        f"{LATENCY_HEADER} {'quant s':>7}"
    )
    print(header)
    print("-" * len(header))
    for scheme, row in result.rows.items():
        r = row.report
        print(
            f"{scheme.value:<8} {r.artifact_bytes:>11,} {r.bytes_ratio:>7.2%} "
            f"{r.linear_bytes_ratio:>7.2%} {row.weights_only_ratio:>7.2%} "
            f"{r.weight_bytes / r.parent_weight_bytes:>8.2%} {r.retention:>8.4f} "
            f"{row.accuracy_kept:>8.4f} {r.log_loss_delta:>+9.4f} {r.agreement:>7.4f} "
            f"{latencies(r)} {row.quantize_s:>7.1f}"
        )
    if result.engines:
        default = torch.backends.quantized.engine
        print(f"\nint8 of {result.name} re-packed per engine (default here: {default}):")
        header = f"{'engine':<8} {LATENCY_HEADER}"
        header += f" {'AUC kept':>8} {'agree':>7} {'artifact B':>11}"
        print(header)
        print("-" * len(header))
        for engine, r in result.engines.items():
            print(
                f"{engine:<8} {latencies(r)} {r.retention:>8.4f} "
                f"{r.agreement:>7.4f} {r.artifact_bytes:>11,}"
            )


def targets(demo: ModelResult, wide: ModelResult) -> list[Target]:
    """The issue's acceptance figures."""
    found: list[Target] = []
    for result in (demo, wide):
        t = result.rows[Scheme.TERNARY]
        found.append(
            Target(
                f"ternary linear layers / fp32 ({result.name})",
                t.report.linear_bytes_ratio,
                0.065,
                True,
                True,
            )
        )
        found.append(
            Target(
                f"ternary linear weights, no biases / fp32 ({result.name})",
                t.weights_only_ratio,
                0.065,
                True,
                True,
            )
        )
    for result, limit in ((wide, 0.08), (demo, 0.12)):
        t = result.rows[Scheme.TERNARY]
        found.append(
            Target(
                f"ternary artifact / fp32 ({result.name})", t.report.bytes_ratio, limit, True, True
            )
        )
    for result in (demo, wide):
        t = result.rows[Scheme.TERNARY]
        found.append(
            Target(f"ternary ROC AUC kept ({result.name})", t.report.retention, 0.99, False, False)
        )
    i = wide.rows[Scheme.INT8].report
    found += [
        Target(f"int8 artifact / fp32 ({wide.name})", i.bytes_ratio, 0.30, True, True),
        Target(f"int8 ROC AUC kept ({wide.name})", i.retention, 0.995, False, False),
        Target(
            f"int8 batch-256 latency x fp32 ({wide.name})", i.latency_256_ratio, 1.0, True, False
        ),
    ]
    return found


def print_targets(found: Sequence[Target]) -> None:
    width = max(len(t.label) for t in found)
    header = f"{'target':<{width}} {'measured':>9} {'limit':>9} {'verdict':>7} {'margin':>10}"
    print("\n" + header)
    print("-" * len(header))
    for t in found:
        limit = ("<= " if t.at_most else ">= ") + t.shown(t.limit)
        verdict = "PASS" if t.passed else "FAIL"
        print(f"{t.label:<{width}} {t.shown(t.value):>9} {limit:>9} {verdict:>7} {t.margin():>10}")
    print(
        "\nratio: artifact bytes / fp32 artifact; linear: the MLP's Linear layers' stored bytes "
        "(weights, scales,\nzero points, biases) / fp32's; weights: the same without biases; "
        "resident: loaded network bytes / fp32's;\nAUC kept, acc kept: variant / parent; "
        "logloss Δ: variant - parent; agree: share of rows with the same predicted\nclass; "
        "ms / fp32: median latency of the variant / of the parent, measured interleaved in one "
        "call\n(one torch thread; the machine's load moves both alike); x fp32: their ratio. "
        "The fp32 row is the parent\nre-stored in the quantized format (compact model.json)."
    )


def main() -> None:
    settings = QuantizationSettings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=40_000, help="training + validation rows")
    parser.add_argument("--holdout-rows", type=int, default=20_000, help="rows scored")
    parser.add_argument("--demo-epochs", type=int, default=30, help="demo model epoch budget")
    parser.add_argument("--wide-layers", type=int, default=4, help="wide model hidden layers")
    parser.add_argument("--wide-width", type=int, default=1024, help="wide model layer width")
    parser.add_argument("--wide-epochs", type=int, default=3, help="wide model epoch budget")
    parser.add_argument(
        "--qat-epochs",
        type=int,
        default=settings.qat_epochs,
        help=f"ternary fine-tuning epochs (default {settings.qat_epochs})",
    )
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per latency")
    parser.add_argument(
        "--engines",
        nargs="*",
        choices=ENGINES,
        default=[e for e in ("x86", "onednn") if e in torch.backends.quantized.supported_engines],
        help="int8 engines to re-pack for (none: skip)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run: does it all work")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.holdout_rows, args.demo_epochs = 4_000, 3_000, 3
        args.wide_width, args.wide_epochs, args.qat_epochs, args.repeats = 256, 1, 1, 5
    logging.basicConfig(level=logging.WARNING)

    settings = settings.model_copy(update={"qat_epochs": args.qat_epochs})
    data = make_data(args.rows, args.holdout_rows)
    print(
        f"{args.rows:,} rows ({len(data.train):,} train, {len(data.valid):,} valid), "
        f"{len(data.holdout):,} holdout rows of a later week; ternary fine-tuning "
        f"{args.qat_epochs} epochs; latency medians of {args.repeats} interleaved calls; "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs",
        flush=True,
    )
    demo_config = TrainConfig(max_epochs=args.demo_epochs)
    wide_config = TrainConfig(
        hidden_layers=args.wide_layers, width=args.wide_width, max_epochs=args.wide_epochs
    )
    started = time.perf_counter()
    demo = measure("demo", demo_config, data, settings, args.repeats, args.engines)
    wide = measure("wide", wide_config, data, settings, args.repeats, args.engines)
    print_model(demo)
    print_model(wide)
    print_targets(targets(demo, wide))
    if args.quick:
        print("--quick: a toy run (tiny models, 1 epoch): the targets are for the full run.")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
