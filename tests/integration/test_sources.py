"""Ingesting batches from files and from a real PostgreSQL table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from mlops.dataset_spec import DatasetSpec, SourceSpec, Task
from mlops.errors import SourceError
from mlops.settings import Settings
from mlops.sources import ingest_batch, sha256_file

SPEC = DatasetSpec(
    name="loans", entity="loan_id", timestamp="ts", label="defaulted", task=Task.BINARY
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "loan_id": [1, 2, 3, 4],
            "ts": pd.date_range("2026-03-01", periods=4, freq="D", tz="UTC"),
            "income": [52_000.0, 61_500.5, 38_200.0, 99_000.0],
            "purpose": ["car", "home", "car", "education"],
            "defaulted": [0, 1, 0, 0],
        }
    )


def test_file_batch_is_snapshotted_under_its_content_hash(
    tmp_path: Path, settings: Settings
) -> None:
    source = tmp_path / "batch.csv"
    _frame().to_csv(source, index=False)
    before = source.read_bytes()
    frame, ref = ingest_batch(SPEC.with_source_path(source), settings)
    assert ref.sha256 == sha256_file(source)
    assert Path(ref.uri) == settings.raw_dir / "loans" / f"{ref.sha256}.csv"
    assert Path(ref.uri).read_bytes() == before == source.read_bytes()
    assert (ref.rows, len(frame)) == (4, 4)
    assert ref.start == datetime(2026, 3, 1, tzinfo=UTC)
    again = ingest_batch(SPEC.with_source_path(source), settings)[1]
    assert again == ref
    assert len(list((settings.raw_dir / "loans").iterdir())) == 1


def test_postgres_table_source(postgres_url: str, settings: Settings) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE SCHEMA lending")
        conn.execute(
            "CREATE TABLE lending.loans (loan_id int, ts timestamptz, income double precision,"
            " purpose text, defaulted int)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO lending.loans VALUES (%s, %s, %s, %s, %s)",
                [tuple(r) for r in _frame().itertuples(index=False)],
            )
    pg_settings = settings.model_copy(update={"database_url": postgres_url})
    spec = SPEC.model_copy(update={"source": SourceSpec(table="lending.loans")})
    frame, ref = ingest_batch(spec, pg_settings)
    expected = _frame()
    pd.testing.assert_frame_equal(
        frame.sort_values("loan_id").reset_index(drop=True), expected, check_dtype=False
    )
    assert ref.rows == 4 and ref.uri.endswith(".parquet")
    assert pd.read_parquet(ref.uri).shape == expected.shape
    schema = spec.resolve_schema(frame)
    assert schema.numeric == ("income",) and schema.categorical == ("purpose",)
    assert ingest_batch(spec, pg_settings)[1].sha256 == ref.sha256, "same table, same hash"


def test_unknown_table_names_the_table(postgres_url: str, settings: Settings) -> None:
    spec = SPEC.model_copy(update={"source": SourceSpec(table="public.nope")})
    with pytest.raises(SourceError, match="public.nope"):
        ingest_batch(spec, settings.model_copy(update={"database_url": postgres_url}))


def test_unsupported_file_type_is_refused(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "batch.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(SourceError, match="unsupported file type"):
        ingest_batch(SPEC.with_source_path(path), settings)
