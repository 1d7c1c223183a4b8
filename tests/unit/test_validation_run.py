"""Validating batches: verdicts, named failures, exact bad rows, quarantine and ledger."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.contracts import DatasetRef, ExpectationOutcome, ValidationReport, Verdict
from mlops.errors import DataValidationError
from mlops.settings import RowPolicy, Settings, ValidationSettings
from mlops.sources import sha256_file
from mlops.validation import (
    QuarantineKind,
    QuarantineStatus,
    ReferenceProfile,
    build_suite,
    ensure_accepted,
    ledger_path,
    load_manifest,
    quarantine_folder,
    render_report_html,
    validate_batch,
)
from mlops.validation.engine import run_suite, validation_view
from mlops.validation.outcomes import evaluate, failing_rows, pandas_row_mask
from tests.unit.validation_frames import SPEC, ingest, make_frame, reference_profile, with_policy

Defect = Callable[[pd.DataFrame], pd.DataFrame]


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return reference_profile()


def _batch(seed: int = 1, rows: int = 2_000) -> pd.DataFrame:
    return make_frame(rows, seed=seed, start="2026-02-01")


# --- defects, each with the expectations it must trip -------------------------------


def _nulls(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[3, 10, 17], "amount"] = np.nan
    return frame


def _out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[4, 5], "amount"] = 1e6
    return frame


def _duplicate_keys(frame: pd.DataFrame) -> pd.DataFrame:
    key = ["customer_id", "event_timestamp"]
    frame.loc[[1, 2], key] = frame.loc[[0, 0], key].to_numpy()
    return frame


def _unseen_category(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[8, "merchant"] = "casino"
    return frame


def _bad_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[9, "is_fraud"] = 7
    return frame


def _null_timestamp(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[11, "event_timestamp"] = pd.NaT
    return frame


def _wrong_dtype(frame: pd.DataFrame) -> pd.DataFrame:
    frame["age"] = frame["age"].astype(str)
    return frame


def _missing_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["merchant"])


def _null_rate(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index % 2 == 1, "tip"] = np.nan
    return frame


ROW_DEFECTS: list[tuple[Defect, str, list[int]]] = [
    (_nulls, "amount.not_null", [3, 10, 17]),
    (_out_of_range, "amount.in_range", [4, 5]),
    (_duplicate_keys, "keys.unique", [0, 1, 2]),
    (_unseen_category, "merchant.in_set", [8]),
    (_bad_label, "is_fraud.label_domain", [9]),
    (_null_timestamp, "event_timestamp.not_null", [11]),
]
COLUMN_DEFECTS: list[tuple[Defect, str]] = [
    (_wrong_dtype, "age.dtype"),
    (_missing_column, "merchant.exists"),
    (_null_rate, "tip.not_null"),
]


def _validate(
    frame: pd.DataFrame,
    settings: Settings,
    profile: ReferenceProfile,
    tmp: Path,
    name: str = "batch",
) -> tuple[ValidationReport, DatasetRef]:
    snapshot, batch = ingest(frame, tmp / "incoming", settings, name)
    return validate_batch(snapshot, batch, SPEC, profile, settings), batch


# --- verdicts -----------------------------------------------------------------------


def test_a_clean_batch_is_accepted_and_recorded(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    report, batch = _validate(_batch(), settings, profile, tmp_path)

    assert report.verdict is Verdict.ACCEPTED, report.summary()
    assert report.failed == ()
    assert report.accepted == batch
    assert (report.bad_rows, report.clean_rows) == (0, len(_batch()))
    assert report.policy == "reject-batch"
    assert report.duration_s > 0
    ledger = ledger_path(settings, "payments", batch.sha256)
    assert report.report_json == str(ledger)
    assert json.loads(ledger.read_text())["verdict"] == "accepted"
    assert Path(report.report_html or "").is_file()
    assert not settings.quarantine_dir.exists()
    assert ensure_accepted(report) == batch


@pytest.mark.parametrize(
    ("defect", "name", "rows"), ROW_DEFECTS, ids=lambda v: getattr(v, "__name__", None)
)
def test_each_row_defect_is_caught_and_named(
    defect: Defect,
    name: str,
    rows: list[int],
    settings: Settings,
    profile: ReferenceProfile,
    tmp_path: Path,
) -> None:
    report, _ = _validate(defect(_batch()), settings, profile, tmp_path)

    assert report.verdict is Verdict.REJECTED
    assert [o.name for o in report.failed] == [name]
    failed = report.failed[0]
    assert failed.unexpected_count == len(rows)
    assert failed.error is None
    assert len(failed.example_keys) == len(rows)
    assert report.bad_rows == len(rows)
    with pytest.raises(DataValidationError, match=name):
        ensure_accepted(report)


@pytest.mark.parametrize(
    ("defect", "name"), COLUMN_DEFECTS, ids=lambda v: getattr(v, "__name__", None)
)
@pytest.mark.parametrize("policy", list(RowPolicy))
def test_each_column_defect_rejects_the_batch_under_any_policy(
    defect: Defect,
    name: str,
    policy: RowPolicy,
    settings: Settings,
    profile: ReferenceProfile,
    tmp_path: Path,
) -> None:
    report, _ = _validate(defect(_batch()), with_policy(settings, policy), profile, tmp_path)

    assert report.verdict is Verdict.REJECTED
    failed = {o.name for o in report.failed}
    assert name in failed
    column = name.split(".")[0]
    assert {n.split(".")[0] for n in failed} == {column}, failed


def test_a_missing_column_fails_its_other_expectations_with_an_error(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    report, _ = _validate(_missing_column(_batch()), settings, profile, tmp_path)

    by_name = {o.name: o for o in report.outcomes}
    assert by_name["merchant.exists"].observed == "column is missing"
    for name in ("merchant.dtype", "merchant.not_null", "merchant.in_set"):
        assert not by_name[name].success
        assert "merchant" in (by_name[name].error or "")


def test_numbers_as_strings_fail_the_dtype_by_name(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    report, _ = _validate(_wrong_dtype(_batch()), settings, profile, tmp_path)

    dtype = next(o for o in report.outcomes if o.name == "age.dtype")
    assert not dtype.success
    assert "object" in (dtype.observed or "")
    assert "age.dtype" in report.summary()


def test_csv_batches_and_nullable_dtypes_validate_like_parquet(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    frame = _batch()
    csv = tmp_path / "batch.csv"
    frame.assign(event_timestamp=frame["event_timestamp"].map(pd.Timestamp.isoformat)).to_csv(
        csv, index=False
    )
    from mlops.sources import ingest_batch

    snapshot, batch = ingest_batch(SPEC.with_source_path(csv), settings)
    assert validate_batch(snapshot, batch, SPEC, profile, settings).verdict is Verdict.ACCEPTED

    nullable = _batch().astype({"age": "Int64", "merchant": "category", "country": "string"})
    snapshot, batch = ingest(nullable, tmp_path / "incoming", settings, "nullable")
    before = snapshot.copy(deep=True)
    report = validate_batch(snapshot, batch, SPEC, profile, settings)
    assert report.verdict is Verdict.ACCEPTED, report.summary()
    assert snapshot.equals(before) and snapshot.dtypes.equals(before.dtypes)


def test_an_empty_batch_is_rejected(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    report, _ = _validate(_batch().iloc[:0], settings, profile, tmp_path)

    assert report.verdict is Verdict.REJECTED
    assert [(o.name, o.observed) for o in report.failed] == [("table.not_empty", "0 rows")]


# --- quarantine ---------------------------------------------------------------------


def test_a_rejected_batch_is_quarantined_and_the_original_untouched(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    source = tmp_path / "incoming" / "batch.parquet"
    report, batch = _validate(
        _unseen_category(_out_of_range(_batch())), settings, profile, tmp_path
    )
    source_sha, snapshot_sha = sha256_file(source), sha256_file(Path(batch.uri))

    folder = quarantine_folder(settings, "payments", batch.sha256)
    assert report.verdict is Verdict.REJECTED
    assert report.quarantine_dir == str(folder)
    assert report.report_json == str(folder / "result.json")
    assert report.report_html == str(folder / "report.html")
    assert sha256_file(folder / "batch.parquet") == batch.sha256
    result = json.loads((folder / "result.json").read_text())
    assert result["report"]["verdict"] == "rejected"
    assert len(result["great_expectations"]["results"]) == len(report.outcomes)
    assert "amount.in_range" in (folder / "report.html").read_text()
    manifest = load_manifest(folder)
    assert manifest.kind is QuarantineKind.BATCH
    assert manifest.status is QuarantineStatus.QUARANTINED
    assert manifest.batch == batch
    assert manifest.data_file == str((folder / "batch.parquet").resolve())
    assert set(manifest.failed_expectations) == {"amount.in_range", "merchant.in_set"}
    assert manifest.spec["name"] == "payments"
    assert (folder / "spec.yaml").is_file()
    assert not ledger_path(settings, "payments", batch.sha256).exists()
    # Raw data is immutable: the source and its snapshot are exactly as they were.
    assert sha256_file(source) == source_sha
    assert sha256_file(Path(batch.uri)) == snapshot_sha == batch.sha256
    summary = report.summary()
    assert "amount.in_range" in summary and "merchant.in_set" in summary
    assert str(folder / "report.html") in summary


@pytest.mark.parametrize(
    ("defect", "name", "rows"), ROW_DEFECTS, ids=lambda v: getattr(v, "__name__", None)
)
def test_quarantine_rows_splits_off_exactly_the_bad_rows(
    defect: Defect,
    name: str,
    rows: list[int],
    settings: Settings,
    profile: ReferenceProfile,
    tmp_path: Path,
) -> None:
    lenient = with_policy(settings, RowPolicy.QUARANTINE_ROWS)
    frame = defect(_batch())

    report, batch = _validate(frame, lenient, profile, tmp_path)

    assert report.verdict is Verdict.ACCEPTED_WITH_QUARANTINED_ROWS, report.summary()
    assert (report.bad_rows, report.clean_rows) == (len(rows), len(frame) - len(rows))
    folder = Path(report.quarantine_dir or "")
    quarantined = pd.read_parquet(folder / "rows.parquet")
    assert sorted(quarantined["__row"]) == rows
    assert set(quarantined["__failed_expectations"]) == {name}
    assert load_manifest(folder).kind is QuarantineKind.ROWS
    assert report.accepted is not None and report.accepted.rows == len(frame) - len(rows)
    accepted = pd.read_parquet(report.accepted.uri)
    assert list(accepted.columns) == list(frame.columns)
    assert Path(report.accepted.uri).parent == settings.raw_dir / "payments" / "accepted"
    assert sha256_file(Path(report.accepted.uri)) == report.accepted.sha256
    assert ledger_path(settings, "payments", batch.sha256).is_file()


def test_quarantine_rows_rejects_when_too_many_rows_are_bad(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    frame = _batch()
    frame.loc[frame.index % 5 == 0, "amount"] = -50.0  # 20 % of the rows
    lenient = with_policy(settings, RowPolicy.QUARANTINE_ROWS, max_bad_row_fraction=0.1)

    report, batch = _validate(frame, lenient, profile, tmp_path)

    assert report.verdict is Verdict.REJECTED
    assert report.bad_rows == len(frame) // 5
    assert report.accepted is None
    assert load_manifest(Path(report.quarantine_dir or "")).kind is QuarantineKind.BATCH
    assert not ledger_path(settings, "payments", batch.sha256).exists()


# --- exact failing keys at scale ------------------------------------------------------


def _many_defects(rows: int) -> tuple[pd.DataFrame, dict[int, set[str]]]:
    """~28k bad rows across five expectations, some rows failing several."""
    frame = make_frame(rows, seed=3, start="2026-03-01")
    position = np.arange(rows)
    truth: dict[int, set[str]] = {}

    def mark(mask: np.ndarray, name: str) -> None:
        for p in np.flatnonzero(mask):
            truth.setdefault(int(p), set()).add(name)

    frame.loc[position % 10 == 1, "amount"] = 1e6
    mark(position % 10 == 1, "amount.in_range")
    frame.loc[position % 10 == 2, "merchant"] = "casino"
    mark(position % 10 == 2, "merchant.in_set")
    frame.loc[position % 20 == 3, "is_fraud"] = 5
    mark(position % 20 == 3, "is_fraud.label_domain")
    frame.loc[position % 50 == 4, "score"] = np.nan
    mark(position % 50 == 4, "score.not_null")
    copies = np.flatnonzero(position % 100 == 5)  # each takes the key of the row 2 above
    key = ["customer_id", "event_timestamp"]
    frame.loc[copies, key] = frame.loc[copies - 2, key].to_numpy()
    mark(np.isin(position, np.concatenate([copies, copies - 2])), "keys.unique")
    return frame, truth


def test_thirty_thousand_bad_rows_are_found_exactly(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    rows = 100_000
    frame, truth = _many_defects(rows)
    # An independent pandas ground truth from the learned bounds agrees with the injection.
    suite = build_suite(SPEC, profile, settings.validation)
    high = suite.by_name["amount.in_range"].expectation.configuration.kwargs["max_value"]
    computed = (
        (frame["amount"] > high)
        | ~frame["merchant"].isin(["fuel", "grocery", "online", "travel"])
        | ~frame["is_fraud"].isin([0, 1])
        | frame["score"].isna()
        | frame.duplicated(["customer_id", "event_timestamp"], keep=False)
    )
    assert set(np.flatnonzero(computed.to_numpy())) == set(truth)
    assert 25_000 < len(truth) < 35_000

    lenient = with_policy(settings, RowPolicy.QUARANTINE_ROWS, max_bad_row_fraction=0.5)
    report, _ = _validate(frame, lenient, profile, tmp_path)

    assert report.verdict is Verdict.ACCEPTED_WITH_QUARANTINED_ROWS, report.summary()
    assert report.bad_rows == len(truth)
    counts = {o.name: o.unexpected_count for o in report.failed}
    assert counts == {
        "amount.in_range": 10_000,
        "merchant.in_set": 10_000,
        "is_fraud.label_domain": 5_000,
        "score.not_null": 2_000,
        "keys.unique": 2_000,
    }
    quarantined = pd.read_parquet(Path(report.quarantine_dir or "") / "rows.parquet")
    assert set(quarantined["__row"]) == set(truth)
    found = {
        int(r): set(names.split(","))
        for r, names in zip(quarantined["__row"], quarantined["__failed_expectations"], strict=True)
    }
    assert found == truth
    assert report.accepted is not None and report.accepted.rows == rows - len(truth)
    accepted = pd.read_parquet(report.accepted.uri)
    assert accepted["amount"].max() < 1e6
    assert not accepted.duplicated(["customer_id", "event_timestamp"]).any()


def test_gx_index_lists_agree_with_the_pandas_fallback(profile: ReferenceProfile) -> None:
    frame, truth = _many_defects(20_000)
    suite = build_suite(SPEC, profile, ValidationSettings())
    view = validation_view(frame, SPEC.timestamp)

    evaluations = evaluate(suite, run_suite(view, suite), view, SPEC.key_columns)

    checked = 0
    for evaluation in evaluations:
        if evaluation.rows is None or evaluation.outcome.success:
            continue
        mask = pandas_row_mask(evaluation.named, view)
        assert mask is not None
        assert np.array_equal(np.flatnonzero(mask), evaluation.rows), evaluation.named.name
        checked += 1
    assert checked == 5
    assert set(np.concatenate([e.rows for e in evaluations if e.rows is not None])) == set(truth)


def test_a_short_gx_index_list_falls_back_to_pandas(profile: ReferenceProfile) -> None:
    frame, _ = _many_defects(20_000)
    suite = build_suite(SPEC, profile, ValidationSettings())
    view = validation_view(frame, SPEC.timestamp)
    named = suite.by_name["amount.in_range"]
    truth = np.flatnonzero(np.arange(20_000) % 10 == 1)

    capped = {"unexpected_count": len(truth), "unexpected_index_list": list(truth[:20])}

    from_capped = failing_rows(named, capped, view)
    without_list = failing_rows(named, {"unexpected_count": len(truth)}, view)

    assert from_capped is not None and np.array_equal(from_capped, truth)
    assert without_list is not None and np.array_equal(without_list, truth)


# --- idempotency ----------------------------------------------------------------------


def test_validating_the_same_batch_twice_adds_nothing(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    rejected = _out_of_range(_batch(seed=5))
    first, batch = _validate(rejected, settings, profile, tmp_path, "bad")
    folder = Path(first.quarantine_dir or "")
    created = load_manifest(folder).created_at
    (folder / "batch.parquet").write_bytes(b"a person's fix in progress")
    second, _ = _validate(rejected, settings, profile, tmp_path, "bad")

    assert second.quarantine_dir == first.quarantine_dir
    assert [p.name for p in (settings.quarantine_dir / "payments").iterdir()] == [folder.name]
    assert load_manifest(folder).created_at == created
    assert (folder / "batch.parquet").read_bytes() == b"a person's fix in progress"

    for _ in range(2):
        _validate(_batch(seed=6), settings, profile, tmp_path, "good")
    assert len(list((settings.ledger_dir / "payments").glob("*.json"))) == 1

    lenient = with_policy(settings, RowPolicy.QUARANTINE_ROWS)
    reports = [
        _validate(_bad_label(_batch(seed=7)), lenient, profile, tmp_path, "rows")[0] for _ in "ab"
    ]
    assert reports[0].accepted == reports[1].accepted
    assert len(list((settings.raw_dir / "payments" / "accepted").glob("*.parquet"))) == 1
    assert len(list((settings.quarantine_dir / "payments").iterdir())) == 2
    assert len(list((settings.ledger_dir / "payments").glob("*.json"))) == 2


# --- the HTML report ------------------------------------------------------------------


def test_the_html_report_escapes_hostile_values(
    settings: Settings, profile: ReferenceProfile, tmp_path: Path
) -> None:
    hostile = "<script>alert('x')</script>"
    frame = _batch()
    frame.loc[8, "merchant"] = hostile

    report, _ = _validate(frame, settings, profile, tmp_path)
    page = Path(report.report_html or "").read_text()

    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    crafted = report.model_copy(
        update={
            "outcomes": (
                ExpectationOutcome(
                    name='<img src=x onerror="boom">',
                    expectation="expect_<b>",
                    column="<td>",
                    success=False,
                    observed="</table>",
                    example_keys=("<i>k</i>",),
                    error="<error>",
                ),
            )
        }
    )
    rendered = render_report_html(crafted)
    for raw in ("<img", "<b>", "<td><td>", "</table></td>", "<i>k", "<error>"):
        assert raw not in rendered
    assert "&lt;img src=x onerror=&quot;boom&quot;&gt;" in rendered
    assert "<td>&lt;td&gt;</td>" in rendered
