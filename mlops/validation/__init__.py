"""The validation stage: a data contract learned from a reference batch, run with GX.

`learn_profile` learns what normal data looks like, `build_suite` turns that into named
Great Expectations, `validate_batch` runs them and accepts, splits or quarantines the
batch, and `replay_quarantined` re-validates a quarantine folder once it was fixed.
Great Expectations itself is imported only when a suite is built or run.
"""

from __future__ import annotations

from mlops.validation.policy import Decision, decide
from mlops.validation.profile import (
    ColumnKind,
    ColumnProfile,
    DtypeFamily,
    ReferenceProfile,
    learn_profile,
    load_profile,
    profile_path,
    save_profile,
)
from mlops.validation.replay import load_manifest, mark_released, replay_quarantined
from mlops.validation.report import render_report_html
from mlops.validation.store import (
    QuarantineKind,
    QuarantineManifest,
    QuarantineStatus,
    ledger_path,
    quarantine_folder,
)
from mlops.validation.suite import NamedExpectation, Scope, Suite, build_suite
from mlops.validation.validate import ensure_accepted, validate_batch

__all__ = [
    "ColumnKind",
    "ColumnProfile",
    "Decision",
    "DtypeFamily",
    "NamedExpectation",
    "QuarantineKind",
    "QuarantineManifest",
    "QuarantineStatus",
    "ReferenceProfile",
    "Scope",
    "Suite",
    "build_suite",
    "decide",
    "ensure_accepted",
    "learn_profile",
    "ledger_path",
    "load_manifest",
    "load_profile",
    "mark_released",
    "profile_path",
    "quarantine_folder",
    "render_report_html",
    "replay_quarantined",
    "save_profile",
    "validate_batch",
]
