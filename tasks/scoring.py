"""Tasks: pin the model, cut the input into partitions, score one partition, finish the job."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.logging import get_run_logger

from mlops.scoring import (
    Partition,
    ScoredPart,
    ScoringModel,
    ScoringPlan,
    ScoringResult,
    plan_partitions,
    resolve_model,
    score_partition,
    write_manifest,
)
from mlops.settings import get_settings
from tasks.artifacts import artifact_key, fmt_count
from tasks.retry import transient_only


@task(
    name="resolve-model", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_only
)
def resolve_model_task(name: str, alias: str | None) -> ScoringModel:
    """Pin the version the alias names now: every partition is scored by the same one."""
    model = resolve_model(get_settings(), name, alias)
    get_run_logger().info("scoring with %s v%s", model.name, model.version)
    return model


@task(name="plan-partitions")
def plan_partitions_task(
    input_uri: str, rows_per_partition: int, output_uri: str | None, model: ScoringModel
) -> ScoringPlan:
    """Cut the input along its row groups."""
    plan = plan_partitions(input_uri, get_settings(), rows_per_partition, output_uri, model)
    get_run_logger().info(
        "%s rows of %s in %d partitions -> %s",
        fmt_count(plan.rows),
        input_uri,
        len(plan.partitions),
        plan.output_uri,
    )
    return plan


@task(
    name="score-partition",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
)
def score_partition_task(
    plan: ScoringPlan, partition: Partition, model: ScoringModel
) -> ScoredPart:
    """Score one partition (a retry or a re-run keeps a part already written)."""
    return score_partition(plan, partition, model, get_settings())


@task(name="write-scoring-manifest")
def write_manifest_task(
    plan: ScoringPlan, model: ScoringModel, parts: list[ScoredPart]
) -> ScoringResult:
    """Check every part is there, write the manifest and publish a summary."""
    result = write_manifest(plan, model, parts, get_settings())
    create_table_artifact(
        key=artifact_key("batch-scoring", model.name),
        table=[
            {
                "part": part.index,
                "rows": fmt_count(part.rows),
                "seconds": f"{part.seconds:.2f}",
                "uri": part.uri,
            }
            for part in result.parts
        ],
        description=(
            f"{fmt_count(result.rows)} rows of `{plan.input_uri}` scored by "
            f"{model.name} v{model.version} into `{result.output_uri}`"
        ),
    )
    return result
