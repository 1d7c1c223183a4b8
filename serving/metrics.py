"""Prometheus metrics of the prediction service (`GET /metrics`).

Names and labels:

- `mlops_serving_requests_total{model,version,variant,status}`: predict requests per
  model version and variant that answered rows of them (`status` ok | error); a request
  split between champion and challenger counts once for each.
- `mlops_serving_request_latency_seconds{model,version,variant}`: histogram of the
  predict request latency (body read to answer), per version and variant.
- `mlops_serving_predictions_total{model,version,variant,shadow}`: rows scored,
  shadow rows included (`shadow="true"`).
- `mlops_serving_errors_total{model,version,variant,kind}`: rows that failed to score.
- `mlops_serving_http_responses_total{route,code}`: every answer, refusals included.
- `mlops_serving_batch_rows` / `mlops_serving_batch_seconds{model,version,variant}`:
  micro-batch sizes and forward-pass times.
- `mlops_serving_feature_lookup_seconds`: Feast online reads (batched).
- `mlops_serving_model_info{model,version,variant,scheme}`: 1 per loaded model, 0 once
  swapped out.
- `mlops_serving_model_loads_total{model,version,result}`: loads (ok | refused).
- `mlops_serving_rollout_share{model}`: the challenger's traffic share being applied.
- `mlops_prediction_log_<stat>`: the prediction log's own counters.
- `mlops_feature_rows_total{model}`: rows whose features were checked (the denominator).
- `mlops_feature_null_total{model,feature}`: null (or absent) feature values.
- `mlops_feature_out_of_range_total{model,feature}`: numeric values outside the range
  the data contract learned at ingestion (widened by `validation.range_margin`).
- `mlops_feature_unseen_category_total{model,feature}`: categories the contract never saw.
  A broken pipe shows here within a scrape; the drift monitor opens the incident.

Each app gets its own `CollectorRegistry` (tests build several apps in one process).
With several uvicorn workers `PROMETHEUS_MULTIPROC_DIR` is set by `serving.server`
before the workers start, and `/metrics` aggregates every worker's values (Feast's own
online-read metrics, kept in the same folder, come along).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mlops.quality.bounds import FeatureBounds

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROC_ENV_OLD = "PROMETHEUS_MULTIPROCESS_DIR"
"""The older name, still read by `prometheus_client` and set by Feast if missing."""


class ModelMetrics:
    """Pre-labelled children for one loaded model in one variant (no label lookups per request)."""

    def __init__(self, metrics: ServingMetrics, model: str, version: str, variant: str) -> None:
        labels = {"model": model, "version": version, "variant": variant}
        self.ok = metrics.requests.labels(**labels, status="ok")
        self.failed = metrics.requests.labels(**labels, status="error")
        self.latency = metrics.latency.labels(**labels)
        self.rows = metrics.predictions.labels(**labels, shadow="false")
        self.shadow_rows = metrics.predictions.labels(**labels, shadow="true")
        self.batch_rows = metrics.batch_rows.labels(**labels)
        self.batch_seconds = metrics.batch_seconds.labels(**labels)
        self._errors = metrics.errors
        self._labels = labels

    def error(self, kind: str, rows: int = 1) -> None:
        """Count rows that failed to score."""
        self._errors.labels(**self._labels, kind=kind).inc(rows)

    def observe_batch(self, rows: int, seconds: float) -> None:
        """One forward pass of `rows` rows."""
        self.batch_rows.observe(rows)
        self.batch_seconds.observe(seconds)


class FeatureQualityMetrics:
    """Pre-labelled per-feature counters of one model's feature schema and data contract."""

    def __init__(self, metrics: ServingMetrics, model: str, bounds: FeatureBounds) -> None:
        self.bounds = bounds
        self.rows = metrics.feature_rows.labels(model=model)
        self.numeric_nulls = [
            metrics.feature_nulls.labels(model=model, feature=f) for f in bounds.numeric
        ]
        self.out_of_range = [
            metrics.feature_out_of_range.labels(model=model, feature=f) for f in bounds.numeric
        ]
        self.categorical_nulls = [
            metrics.feature_nulls.labels(model=model, feature=f) for f in bounds.categorical
        ]
        self.unseen = [
            metrics.feature_unseen.labels(model=model, feature=f)
            for f, known in zip(bounds.categorical, bounds.categories, strict=True)
            if known is not None
        ]
        self._unseen_index = [j for j, known in enumerate(bounds.categories) if known is not None]

    def observe(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Count one request's rows (one numpy pass per batch; zeros are not incremented)."""
        counts = self.bounds.count(rows)
        self.rows.inc(counts.rows)
        for child, value in zip(self.numeric_nulls, counts.numeric_nulls.tolist(), strict=True):
            if value:
                child.inc(value)
        for child, value in zip(self.out_of_range, counts.out_of_range.tolist(), strict=True):
            if value:
                child.inc(value)
        for child, value in zip(
            self.categorical_nulls, counts.categorical_nulls.tolist(), strict=True
        ):
            if value:
                child.inc(value)
        unseen = counts.unseen.tolist()
        for child, j in zip(self.unseen, self._unseen_index, strict=True):
            if unseen[j]:
                child.inc(unseen[j])


class ServingMetrics:
    """Every metric of one app, registered on its own registry."""

    def __init__(self, multiprocess: bool = False) -> None:
        """
        Args:
            multiprocess: aggregate every worker's values (`PROMETHEUS_MULTIPROC_DIR` must
                have been set before `prometheus_client` was imported in the workers).
                Decided by the caller, not by the environment: Feast sets that variable
                for its own purposes when it is imported.
        """
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess
        registry = self.registry
        model = ("model", "version", "variant")
        self.requests = Counter(
            "mlops_serving_requests",
            "Predict requests per model version and variant.",
            (*model, "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "mlops_serving_request_latency_seconds",
            "Predict request latency per model version and variant.",
            model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "mlops_serving_predictions",
            "Rows scored per model version and variant (shadow rows included).",
            (*model, "shadow"),
            registry=registry,
        )
        self.errors = Counter(
            "mlops_serving_errors",
            "Rows that failed to score, per model version, variant and kind.",
            (*model, "kind"),
            registry=registry,
        )
        self.http = Counter(
            "mlops_serving_http_responses",
            "HTTP answers per route and status code (refusals included).",
            ("route", "code"),
            registry=registry,
        )
        self.batch_rows = Histogram(
            "mlops_serving_batch_rows",
            "Rows per micro-batch (one forward pass).",
            model,
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "mlops_serving_batch_seconds",
            "Seconds per micro-batch forward pass (preprocessing included).",
            model,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.feature_lookup_seconds = Histogram(
            "mlops_serving_feature_lookup_seconds",
            "Seconds per batched online-store read.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "mlops_serving_model_info",
            "1 for each loaded model (0 once swapped out): version, variant and scheme.",
            ("model", "version", "variant", "scheme"),
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.model_loads = Counter(
            "mlops_serving_model_loads",
            "Model loads by outcome (ok, refused).",
            ("model", "version", "result"),
            registry=registry,
        )
        self.rollout_share = Gauge(
            "mlops_serving_rollout_share",
            "Challenger traffic share applied by this replica.",
            ("model",),
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.feature_rows = Counter(
            "mlops_feature_rows",
            "Rows whose features were checked against the data contract.",
            ("model",),
            registry=registry,
        )
        self.feature_nulls = Counter(
            "mlops_feature_null",
            "Null or absent feature values per feature.",
            ("model", "feature"),
            registry=registry,
        )
        self.feature_out_of_range = Counter(
            "mlops_feature_out_of_range",
            "Numeric feature values outside the data contract's learned range.",
            ("model", "feature"),
            registry=registry,
        )
        self.feature_unseen = Counter(
            "mlops_feature_unseen_category",
            "Categorical feature values the data contract never saw.",
            ("model", "feature"),
            registry=registry,
        )
        self._shown: set[tuple[str, str, str, str]] = set()
        self._http_children: dict[tuple[str, int], Counter] = {}
        self._models: dict[tuple[str, str, str], ModelMetrics] = {}

    def for_model(self, model: str, version: str, variant: str) -> ModelMetrics:
        """The metrics of a model version in a variant (cached)."""
        key = (model, version, variant)
        found = self._models.get(key)
        if found is None:
            found = self._models[key] = ModelMetrics(self, model, version, variant)
        return found

    def feature_quality(self, model: str, bounds: FeatureBounds) -> FeatureQualityMetrics:
        """Per-feature null and violation counters of a model's features."""
        return FeatureQualityMetrics(self, model, bounds)

    def http_response(self, route: str, code: int) -> None:
        """Count one HTTP answer."""
        key = (route, code)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self.http.labels(route=route, code=str(code))
        child.inc()

    def show_models(self, loaded: Mapping[str, tuple[str, str, str]]) -> None:
        """Set `model_info` to the loaded models: variant -> (model, version, scheme)."""
        shown = {
            (name, version, variant, scheme) for variant, (name, version, scheme) in loaded.items()
        }
        for labels in self._shown - shown:  # 0, not removed: removal is not multiprocess-safe
            self.model_info.labels(*labels).set(0)
        for labels in shown:
            self.model_info.labels(*labels).set(1)
        self._shown = shown

    def add_stats(self, prefix: str, stats: Callable[[], Mapping[str, int | float]]) -> None:
        """Expose a component's `stats()` dict as gauges `<prefix>_<key>`."""
        self.registry.register(_StatsCollector(prefix, stats))

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type (every worker's values in multiprocess mode)."""
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE_LATEST


class _StatsCollector(Collector):
    def __init__(self, prefix: str, stats: Callable[[], Mapping[str, int | float]]) -> None:
        self._prefix = prefix
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        try:
            values = self._stats()
        except Exception:  # a stats call must never break the scrape
            return
        for key, value in values.items():
            name = f"{self._prefix}_{key}".replace(".", "_").replace("-", "_")
            yield GaugeMetricFamily(name, f"{self._prefix} stat {key}", value=float(value))

    def describe(self) -> Iterator[Metric]:
        return iter(())
