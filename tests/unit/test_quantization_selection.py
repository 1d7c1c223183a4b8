"""The retention gate and the selection policies, on hand-made reports."""

from __future__ import annotations

import math
import random

import pytest

from mlops.errors import ConfigError, QualityGateError, RetentionError
from mlops.modeling import Metrics
from mlops.settings import QuantizationSettings, SelectionPolicy, Settings
from quantization import Scheme, VariantReport, passes, require_retention, select_variant

PARENT = Metrics(accuracy=0.95, roc_auc=0.90, f1=0.7, log_loss=0.15, ece=0.02)


def _report(
    scheme: Scheme, retention: float, artifact_bytes: int, latency_1_ms: float = 0.1
) -> VariantReport:
    auc = PARENT.roc_auc * retention
    metrics = PARENT.model_copy(update={"roc_auc": auc})
    return VariantReport(
        scheme=scheme,
        metrics=metrics,
        parent_metrics=PARENT,
        retention=retention,
        accuracy_delta=0.0,
        roc_auc_delta=auc - PARENT.roc_auc,
        log_loss_delta=0.0,
        agreement=1.0,
        artifact_bytes=artifact_bytes,
        parent_artifact_bytes=100_000,
        weight_bytes=artifact_bytes,
        parent_weight_bytes=100_000,
        linear_bytes=artifact_bytes // 2,
        parent_linear_bytes=90_000,
        latency_1_ms=latency_1_ms,
        latency_256_ms=latency_1_ms * 3,
        parent_latency_1_ms=0.1,
        parent_latency_256_ms=0.3,
    )


FP32 = _report(Scheme.FP32, 1.0, 100_000, latency_1_ms=0.10)
INT8 = _report(Scheme.INT8, 0.998, 30_000, latency_1_ms=0.30)
FP16 = _report(Scheme.FP16, 0.9999, 52_000, latency_1_ms=0.09)
TERNARY = _report(Scheme.TERNARY, 0.97, 9_000, latency_1_ms=0.12)


def test_smallest_passing_skips_a_smaller_variant_that_failed() -> None:
    chosen = select_variant([FP32, INT8, FP16, TERNARY], SelectionPolicy.SMALLEST_PASSING)

    assert chosen.scheme is Scheme.INT8
    assert not passes(TERNARY, 0.99)


def test_smallest_passing_takes_ternary_when_it_passes() -> None:
    ternary = _report(Scheme.TERNARY, 0.995, 9_000)

    assert select_variant([FP32, INT8, ternary]).scheme is Scheme.TERNARY
    assert select_variant([FP32, INT8, ternary], threshold=0.996).scheme is Scheme.INT8


def test_fastest_passing_may_be_the_parent_itself() -> None:
    assert select_variant([FP32, INT8, FP16, TERNARY], "fastest-passing").scheme is Scheme.FP16
    assert select_variant([FP32, INT8, TERNARY], "fastest-passing").scheme is Scheme.FP32


def test_fastest_passing_calls_latencies_within_five_percent_a_tie_won_by_bytes() -> None:
    fp16 = _report(Scheme.FP16, 1.0, 52_000, latency_1_ms=0.103)
    int8 = _report(Scheme.INT8, 0.999, 30_000, latency_1_ms=0.104)
    slow_int8 = _report(Scheme.INT8, 0.999, 30_000, latency_1_ms=0.106)

    assert select_variant([FP32, fp16, int8], "fastest-passing").scheme is Scheme.INT8
    assert select_variant([FP32, fp16, slow_int8], "fastest-passing").scheme is Scheme.FP16


def test_fp32_policy_returns_the_parent() -> None:
    assert select_variant([INT8, FP32, FP16], SelectionPolicy.FP32) is FP32


def test_fp32_when_no_variant_passes() -> None:
    failing = [_report(s, 0.9, 1_000, latency_1_ms=0.01) for s in (Scheme.INT8, Scheme.TERNARY)]

    for policy in SelectionPolicy:
        assert select_variant([*failing, FP32], policy) is FP32


def test_undefined_retention_never_passes() -> None:
    nan = _report(Scheme.INT8, math.nan, 10)

    assert not passes(nan, 0.5)
    assert select_variant([FP32, nan]) is FP32


def test_selection_needs_the_fp32_fallback_and_a_known_policy() -> None:
    with pytest.raises(ConfigError, match="fp32"):
        select_variant([INT8, FP16])
    with pytest.raises(ConfigError, match="policy"):
        select_variant([FP32], "cheapest")


def test_a_failing_variant_is_never_selected_whatever_the_figures() -> None:
    rng = random.Random(0)
    for _ in range(300):
        threshold = rng.uniform(0.9, 1.0)
        reports = [FP32] + [
            _report(
                scheme,
                rng.uniform(0.85, 1.01),
                rng.randint(1_000, 120_000),
                latency_1_ms=rng.uniform(0.01, 0.5),
            )
            for scheme in rng.sample([Scheme.INT8, Scheme.FP16, Scheme.TERNARY], k=3)
        ]
        for policy in SelectionPolicy:
            chosen = select_variant(reports, policy, threshold=threshold)
            assert chosen is FP32 or passes(chosen, threshold)


def test_require_retention_raises_a_quality_gate_error() -> None:
    require_retention(INT8, 0.99)
    with pytest.raises(RetentionError, match="ternary variant kept 0.9700") as caught:
        require_retention(TERNARY, 0.99)
    assert isinstance(caught.value, QualityGateError)


def test_settings_carry_the_gate_and_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = QuantizationSettings()
    assert defaults.min_retention == 0.99
    assert defaults.policy is SelectionPolicy.SMALLEST_PASSING
    assert defaults.schemes == ("fp32", "int8", "fp16", "ternary")

    monkeypatch.setenv("MLOPS_QUANTIZATION__POLICY", "fastest-passing")
    monkeypatch.setenv("MLOPS_QUANTIZATION__QAT_EPOCHS", "0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.quantization.policy is SelectionPolicy.FASTEST_PASSING
    assert settings.quantization.qat_epochs == 0


def test_excluded_schemes_are_never_chosen() -> None:
    assert select_variant([FP32, INT8, FP16], exclude=frozenset({Scheme.INT8})).scheme is (
        Scheme.FP16
    )
    assert select_variant([FP32, INT8], exclude=frozenset({Scheme.INT8})) is FP32
