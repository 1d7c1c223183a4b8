"""Task: snapshot a raw batch into the immutable raw store."""

from __future__ import annotations

from prefect import task
from prefect.logging import get_run_logger

from mlops.contracts import DatasetRef
from mlops.dataset_spec import DatasetSpec
from mlops.settings import get_settings
from mlops.sources import ingest_batch
from tasks.retry import transient_only


@task(
    name="ingest-batch",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def ingest_batch_task(spec: DatasetSpec) -> DatasetRef:
    """Copy the batch under its content hash; retried because sources can be remote."""
    _, ref = ingest_batch(spec, get_settings())
    get_run_logger().info(
        "ingested %s rows of %r as %s (%s .. %s)",
        ref.rows,
        spec.name,
        ref.sha256[:12],
        ref.start,
        ref.end,
    )
    return ref
