"""Validate one raw batch against its data contract and act on the verdict.

The verdict decides what happens to the data: an accepted batch goes on as it is; with
quarantined rows, the clean rows go on as a new content-addressed batch and the bad rows
wait in a quarantine folder with the expectations each failed; a rejected batch is
copied into a quarantine folder with its report, and nothing goes on.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from mlops.contracts import DatasetRef, ValidationReport, Verdict
from mlops.dataset_spec import DatasetSpec
from mlops.errors import DataValidationError
from mlops.settings import Settings
from mlops.validation.engine import result_json, run_suite, validation_view
from mlops.validation.outcomes import evaluate
from mlops.validation.policy import decide, failure_notes
from mlops.validation.profile import RESERVED_PREFIX, ReferenceProfile
from mlops.validation.report import render_report_html
from mlops.validation.store import (
    FAILED_COLUMN,
    REPORT,
    RESULT,
    ROW_COLUMN,
    ledger_path,
    quarantine_folder,
    write_accepted_rows,
    write_ledger,
    write_quarantine,
    write_text,
)
from mlops.validation.suite import build_suite

logger = logging.getLogger(__name__)


def validate_batch(
    frame: pd.DataFrame,
    batch: DatasetRef,
    spec: DatasetSpec,
    profile: ReferenceProfile,
    settings: Settings,
) -> ValidationReport:
    """Run the suite learned from `profile` on `frame` (the content of `batch`).

    Never raises for bad data: the verdict says what happened and the report where the
    evidence is. Re-validating the same batch rewrites the same files.
    """
    started = time.perf_counter()
    suite = build_suite(spec, profile, settings.validation)
    view = validation_view(frame, spec.timestamp)
    results = run_suite(view, suite)
    evaluations = evaluate(suite, results, view, spec.key_columns)
    decision = decide(evaluations, len(view), settings.validation)
    data = _data_columns(frame)

    accepted: DatasetRef | None = None
    bad_frame: pd.DataFrame | None = None
    if decision.verdict is Verdict.ACCEPTED_WITH_QUARANTINED_ROWS:
        accepted = write_accepted_rows(data[~decision.bad].reset_index(drop=True), spec, settings)
        positions = np.flatnonzero(decision.bad).astype(np.int64)
        bad_frame = data.iloc[positions].reset_index(drop=True)
        bad_frame[ROW_COLUMN] = positions
        bad_frame[FAILED_COLUMN] = failure_notes(evaluations, positions)
    elif decision.verdict is Verdict.ACCEPTED:
        # A batch carrying pipeline columns (a replayed rows.parquet) goes on without them.
        accepted = (
            batch if data.shape[1] == frame.shape[1] else write_accepted_rows(data, spec, settings)
        )

    quarantined = decision.verdict is not Verdict.ACCEPTED
    folder = quarantine_folder(settings, spec.name, batch.sha256)
    ledger = ledger_path(settings, spec.name, batch.sha256)
    report = ValidationReport(
        dataset=spec.name,
        batch=batch,
        suite=suite.name,
        policy=settings.validation.policy.value,
        verdict=decision.verdict,
        outcomes=tuple(e.outcome for e in evaluations),
        bad_rows=decision.bad_rows,
        clean_rows=len(view) - decision.bad_rows,
        accepted=accepted,
        quarantine_dir=str(folder) if quarantined else None,
        report_json=str(folder / RESULT if quarantined else ledger),
        report_html=str(folder / REPORT if quarantined else ledger.with_suffix(".html")),
        duration_s=round(time.perf_counter() - started, 4),
    )
    html = render_report_html(report)
    if quarantined:
        write_quarantine(
            folder,
            report=report,
            spec=spec,
            frame=frame,
            bad_rows=bad_frame,
            gx_result=result_json(results, suite),
            html=html,
        )
    else:
        write_text(ledger.with_suffix(".html"), html)
    if report.passed:
        write_ledger(report, settings)
    log = logger.info if report.verdict is Verdict.ACCEPTED else logger.warning
    log("%s%s", report.headline(), f" ({decision.reason})" if decision.reason else "")
    return report


def ensure_accepted(report: ValidationReport) -> DatasetRef:
    """The batch that goes on to the feature stage.

    Raises:
        DataValidationError: the batch was rejected; the message names the failed
            expectations and the report.
    """
    if not report.passed or report.accepted is None:
        raise DataValidationError(report)
    return report.accepted


def _data_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The batch's own columns, without pipeline columns, with a positional index."""
    reserved = [c for c in frame.columns if str(c).startswith(RESERVED_PREFIX)]
    data = frame.drop(columns=reserved) if reserved else frame
    if not isinstance(data.index, pd.RangeIndex) or data.index.start != 0 or data.index.step != 1:
        data = data.reset_index(drop=True)
    return data
