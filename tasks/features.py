"""Tasks: write validated rows to Feast, materialize them, build the training set."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger

from mlops.contracts import FeatureSetRef, TrainingSetRef, ValidationReport
from mlops.dataset_spec import DatasetSpec, FeatureSchema
from mlops.features import apply_and_materialize, build_training_set, write_offline_batch
from mlops.settings import get_settings
from mlops.sources import read_batch
from tasks.artifacts import artifact_key, fmt_count
from tasks.retry import transient_only


@task(
    name="materialize-features",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def materialize_features_task(
    spec: DatasetSpec, schema: FeatureSchema, report: ValidationReport
) -> FeatureSetRef:
    """Append the accepted rows to the offline store, apply definitions, materialize online.

    Idempotent on the batch hash, so a retry (stores can be remote) writes nothing twice.
    """
    settings = get_settings()
    accepted = report.accepted
    assert accepted is not None and accepted.end is not None, "validation passed without rows"
    frame = read_batch(spec, accepted.uri, settings)
    write_offline_batch(spec, schema, frame, accepted.sha256, settings)
    ref = apply_and_materialize(spec, schema, settings, until=accepted.end, since=accepted.start)
    get_run_logger().info(
        "feature service %s: %s rows materialized to %s in %.2f s",
        ref.feature_service,
        ref.rows_written,
        ref.online_store,
        ref.duration_s,
    )
    create_markdown_artifact(
        key=artifact_key("features", spec.name),
        markdown=(
            f"## Feature set `{ref.feature_service}`\n\n"
            f"| | |\n|---|---|\n"
            f"| project | `{ref.project}` |\n"
            f"| feature view | `{ref.feature_view}` ({len(ref.features)} features) |\n"
            f"| entity | `{ref.entity}` |\n"
            f"| offline store | `{ref.offline_uri}` |\n"
            f"| online store | {ref.online_store} |\n"
            f"| rows written | {fmt_count(ref.rows_written)} |\n"
            f"| materialized until | {ref.materialized_until} |\n"
            f"| duration | {ref.duration_s:.2f} s |\n\n"
            f"Features: {', '.join(f'`{f}`' for f in ref.features)}\n"
        ),
        description="Feast feature set",
    )
    return ref


@task(name="build-training-set")
def build_training_set_task(
    spec: DatasetSpec,
    schema: FeatureSchema,
    features: FeatureSetRef,
    start: datetime | None = None,
    end: datetime | None = None,
) -> TrainingSetRef:
    """Point-in-time join of the labelled rows stamped in [start, end] (default: every
    one) with the features known at their time."""
    ref = build_training_set(spec, schema, get_settings(), start, end)
    get_run_logger().info("training set of %s rows at %s", ref.rows, ref.uri)
    create_table_artifact(
        key=artifact_key("training-set", spec.name),
        table=[
            {"property": "rows", "value": fmt_count(ref.rows)},
            {"property": "window", "value": f"{ref.start} .. {ref.end}"},
            {"property": "feature service", "value": ref.feature_service},
            {"property": "features", "value": str(len(ref.features))},
            {"property": "label counts", "value": str(ref.label_counts)},
            {"property": "sha256", "value": ref.sha256[:16]},
            {"property": "uri", "value": ref.uri},
        ],
        description="Point-in-time training set",
    )
    return ref
