"""Task: validate a batch against the data contract learned from the reference.

Every quarantine (a rejected batch, or the bad rows split off a batch) is announced as
`mlops.batch.quarantined` about the dataset, so people hear of it through the
notification automations.
"""

from __future__ import annotations

import uuid

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.logging import get_run_logger
from prefect.states import Failed, State

from mlops.contracts import DatasetRef, ValidationReport, Verdict
from mlops.dataset_spec import DatasetSpec
from mlops.errors import DataValidationError
from mlops.events import BATCH_QUARANTINED, dataset_resource
from mlops.settings import RowPolicy, get_settings
from mlops.sources import read_batch
from mlops.validation import (
    ReferenceProfile,
    learn_profile,
    load_profile,
    save_profile,
    validate_batch,
)
from tasks.artifacts import artifact_key, fmt_count


@task(name="load-reference-profile")
def load_reference_profile_task(spec: DatasetSpec, batch: DatasetRef) -> ReferenceProfile:
    """The stored reference profile, or one learned from this batch when none exists yet."""
    settings = get_settings()
    profile = load_profile(spec, settings)
    if profile is None:
        frame = read_batch(spec, batch.uri, settings)
        profile = learn_profile(spec, frame, batch.sha256)
        save_profile(profile, settings)
        get_run_logger().warning(
            "no reference profile for %r yet: learned one from batch %s (run `mlops data profile` "
            "to choose the reference explicitly)",
            spec.name,
            batch.sha256[:12],
        )
    return profile


@task(name="validate-batch")
def validate_batch_task(
    spec: DatasetSpec,
    batch: DatasetRef,
    profile: ReferenceProfile,
    policy: RowPolicy | None = None,
) -> ValidationReport | State:
    """Run the suite; a rejected batch is quarantined and the task ends Failed.

    A refusal is an expected outcome, not a crash: the task returns a Failed state whose
    message is the readable summary (no traceback in the logs) and whose data is the
    `DataValidationError` the caller of the flow receives.
    """
    settings = get_settings()
    if policy is not None:
        settings = settings.model_copy(
            update={"validation": settings.validation.model_copy(update={"policy": policy})}
        )
    frame = read_batch(spec, batch.uri, settings)
    report = validate_batch(frame, batch, spec, profile, settings)
    _publish(report)
    if report.quarantine_dir is not None:
        announce_quarantine(report)
    if not report.passed:
        return Failed(message=report.headline(), data=DataValidationError(report))
    get_run_logger().info(report.headline())
    return report


QUARANTINE_REASONS = 5
"""Failed expectations named in a quarantine event's reason (the rest are counted)."""


def quarantine_payload(report: ValidationReport) -> dict[str, object]:
    """What a `mlops.batch.quarantined` event says: which batch, why, where, how many rows."""
    failed = [o for o in report.failed if o.blocked_by is None]
    clauses = [
        f"{o.name}: {o.error or o.observed or f'{o.unexpected_count} unexpected'}"
        for o in failed[:QUARANTINE_REASONS]
    ]
    if len(failed) > QUARANTINE_REASONS:
        clauses.append(f"and {len(failed) - QUARANTINE_REASONS} more")
    whole = report.verdict is Verdict.REJECTED
    return {
        "dataset": report.dataset,
        "batch_sha256": report.batch.sha256,
        "verdict": report.verdict.value,
        "kind": "batch" if whole else "rows",
        "reason": "; ".join(clauses) or report.headline(),
        "failed_expectations": [o.name for o in failed],
        "quarantine_path": report.quarantine_dir,
        "report_html": report.report_html,
        "rows": report.batch.rows if whole else report.bad_rows,
        "batch_rows": report.batch.rows,
    }


def announce_quarantine(report: ValidationReport) -> dict[str, object]:
    """Emit `mlops.batch.quarantined` about the dataset; returns the payload.

    The event id is derived from the batch hash and the verdict: validating the same
    batch again (a retried task, a re-run flow) does not announce it twice.
    """
    payload = quarantine_payload(report)
    event_id = uuid.uuid5(
        uuid.NAMESPACE_URL,
        f"{BATCH_QUARANTINED}/{report.dataset}/{report.batch.sha256}/{report.verdict.value}",
    )
    emit_event(
        event=BATCH_QUARANTINED,
        resource=dataset_resource(report.dataset),
        payload=payload,
        id=event_id,
    )
    return payload


def _publish(report: ValidationReport) -> None:
    rows = [
        {
            "expectation": o.name,
            "result": "pass" if o.success else "FAIL",
            "unexpected": fmt_count(o.unexpected_count),
            "observed": o.error or o.observed or "",
            "example keys": ", ".join(o.example_keys[:3]),
        }
        for o in sorted(report.outcomes, key=lambda o: (o.success, o.name))
    ]
    create_table_artifact(
        key=artifact_key("validation", report.dataset),
        table=rows,
        description=f"Validation of batch {report.batch.sha256[:12]}: {report.verdict.value}",
    )
    failed = "\n".join(f"- `{o.name}`" for o in report.failed) or "- none"
    create_markdown_artifact(
        key=artifact_key("validation-summary", report.dataset),
        markdown=(
            f"## Validation: {report.verdict.value}\n\n"
            f"| | |\n|---|---|\n"
            f"| dataset | `{report.dataset}` |\n"
            f"| batch | `{report.batch.sha256[:16]}` ({fmt_count(report.batch.rows)} rows) |\n"
            f"| window | {report.batch.start} .. {report.batch.end} |\n"
            f"| policy | {report.policy} |\n"
            f"| clean rows | {fmt_count(report.clean_rows)} |\n"
            f"| quarantined rows | {fmt_count(report.bad_rows)} |\n"
            f"| duration | {report.duration_s:.2f} s |\n"
            f"| HTML report | `{report.report_html or '-'}` |\n\n"
            f"### Failed expectations\n{failed}\n"
        ),
        description="Validation verdict",
    )
