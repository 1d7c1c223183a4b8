"""The row policy: what a batch with failed expectations becomes.

`reject-batch` refuses any batch with a failure. `quarantine-rows` splits off the rows
that row-scoped expectations refused, but still refuses the batch when a failure is not
attributable to rows (a missing column, a wrong dtype, a null rate, an expectation that
errored) or when too many rows are bad for the rest to be representative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlops.contracts import Verdict
from mlops.settings import RowPolicy, ValidationSettings
from mlops.validation.outcomes import Evaluation
from mlops.validation.suite import Scope


@dataclass(frozen=True)
class Decision:
    """The verdict, the mask of bad rows and, when rejected, why in one line."""

    verdict: Verdict
    bad: npt.NDArray[np.bool_]
    reason: str

    @property
    def bad_rows(self) -> int:
        """How many rows failed at least one row-scoped expectation."""
        return int(self.bad.sum())


def bad_row_mask(evaluations: Sequence[Evaluation], rows: int) -> npt.NDArray[np.bool_]:
    """Rows refused by at least one row-scoped expectation."""
    bad = np.zeros(rows, dtype=bool)
    for evaluation in evaluations:
        if evaluation.rows is not None and len(evaluation.rows):
            bad[evaluation.rows] = True
    return bad


def decide(
    evaluations: Sequence[Evaluation], rows: int, validation: ValidationSettings
) -> Decision:
    """Apply the configured policy to the evaluated suite."""
    bad = bad_row_mask(evaluations, rows)
    failed = [e for e in evaluations if not e.outcome.success]
    if not failed:
        return Decision(Verdict.ACCEPTED, bad, "")
    if validation.policy is RowPolicy.REJECT_BATCH:
        return Decision(Verdict.REJECTED, bad, f"{len(failed)} expectations failed")
    whole = [e.named.name for e in failed if e.named.scope is Scope.COLUMN or e.rows is None]
    if whole:
        return Decision(Verdict.REJECTED, bad, f"not attributable to rows: {', '.join(whole)}")
    count = int(bad.sum())
    fraction = count / rows if rows else 1.0
    if count == 0 or count == rows or fraction > validation.max_bad_row_fraction:
        return Decision(
            Verdict.REJECTED,
            bad,
            f"{count} of {rows} rows are bad ({fraction:.2%}), more than "
            f"max_bad_row_fraction {validation.max_bad_row_fraction:.2%}",
        )
    return Decision(Verdict.ACCEPTED_WITH_QUARANTINED_ROWS, bad, "")


def failure_notes(evaluations: Sequence[Evaluation], positions: npt.NDArray[np.int64]) -> list[str]:
    """For each given row position, the comma-joined names of the expectations it failed."""
    notes = np.full(len(positions), "", dtype=object)
    for evaluation in evaluations:
        if evaluation.outcome.success or evaluation.rows is None:
            continue
        hit = np.isin(positions, evaluation.rows, assume_unique=True)
        notes[hit] = notes[hit] + (evaluation.named.name + ",")
    return [str(note).rstrip(",") for note in notes]
