"""What the prediction log stores: the two record types and their Arrow schemas.

Records stay Python objects on the request path (`PredictionLog.submit` only appends
them to a deque); the writer thread turns a batch into an Arrow table with
`to_table`, and from there on every sink and every spill file deals in tables of one
of the two fixed schemas below.

A column added after the first release (`ADDED_PREDICTION_COLUMNS`) is absent from the
part files, spill files and PostgreSQL tables written before it: `conform` gives
those rows the value that column means for them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from mlops.timestamps import as_utc

logger = logging.getLogger(__name__)

RecordKind = Literal["predictions", "feedback"]
"""Which of the two streams a batch belongs to (also a folder and a spill-file suffix)."""

RECORD_KINDS: tuple[RecordKind, ...] = ("predictions", "feedback")


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One scored row, as the service answered (or shadow-scored) it."""

    prediction_id: str  # f"{request_id}-{row}"
    request_id: str
    model_name: str
    model_version: str
    variant: str  # "champion" | "challenger"
    shadow: bool  # scored on mirrored traffic, not answered
    entity: str | None
    features: dict[str, object]  # the row as scored
    probabilities: tuple[float, ...]  # in the model's class order
    prediction: str  # predicted class, as str
    latency_ms: float
    status: str  # "ok" | "error"
    error: str | None
    ts: datetime  # UTC (a naive datetime is taken as UTC)
    # The client named the version (`/v2/models/{name}/versions/{version}/infer`), not
    # the router: answered and logged, but no rollout or drift evidence.
    pinned: bool = False


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """A label that arrived after the prediction it belongs to (`POST /v1/feedback`)."""

    prediction_id: str
    label: str
    ts: datetime  # UTC (a naive datetime is taken as UTC)


TIMESTAMP = pa.timestamp("us", tz="UTC")

PREDICTION_SCHEMA = pa.schema(
    [
        pa.field("prediction_id", pa.string(), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("shadow", pa.bool_(), nullable=False),
        pa.field("pinned", pa.bool_(), nullable=False),
        pa.field("entity", pa.string()),
        # JSON text: models differ in their features, so a struct column would not
        # unify across part files; readers expand it into one column per feature.
        pa.field("features", pa.string(), nullable=False),
        pa.field("probabilities", pa.list_(pa.float64()), nullable=False),
        pa.field("prediction", pa.string(), nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("ts", TIMESTAMP, nullable=False),
    ]
)

FEEDBACK_SCHEMA = pa.schema(
    [
        pa.field("prediction_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("ts", TIMESTAMP, nullable=False),
    ]
)

SCHEMAS: dict[RecordKind, pa.Schema] = {
    "predictions": PREDICTION_SCHEMA,
    "feedback": FEEDBACK_SCHEMA,
}

ADDED_PREDICTION_COLUMNS: dict[str, object] = {"pinned": False}
"""Prediction columns added since the first release, and their value in rows written
before them (every row was routed before a version could be pinned)."""

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def features_json(features: dict[str, object]) -> str:
    """Features as JSON text (NaN becomes null; unknown objects their `str`)."""
    return orjson.dumps(features, default=str, option=_JSON_OPTIONS).decode()


def _predictions_table(records: Sequence[PredictionRecord]) -> pa.Table:
    columns: dict[str, list[object]] = {name: [] for name in PREDICTION_SCHEMA.names}
    for r in records:
        columns["prediction_id"].append(r.prediction_id)
        columns["request_id"].append(r.request_id)
        columns["model_name"].append(r.model_name)
        columns["model_version"].append(str(r.model_version))
        columns["variant"].append(r.variant)
        columns["shadow"].append(bool(r.shadow))
        columns["pinned"].append(bool(r.pinned))
        columns["entity"].append(None if r.entity is None else str(r.entity))
        columns["features"].append(features_json(r.features))
        columns["probabilities"].append([float(p) for p in r.probabilities])
        columns["prediction"].append(str(r.prediction))
        columns["latency_ms"].append(float(r.latency_ms))
        columns["status"].append(r.status)
        columns["error"].append(r.error)
        columns["ts"].append(as_utc(r.ts))
    return pa.table(columns, schema=PREDICTION_SCHEMA)


def _feedback_table(records: Sequence[FeedbackRecord]) -> pa.Table:
    return pa.table(
        {
            "prediction_id": [r.prediction_id for r in records],
            "label": [str(r.label) for r in records],
            "ts": [as_utc(r.ts) for r in records],
        },
        schema=FEEDBACK_SCHEMA,
    )


def to_table(
    kind: RecordKind, records: Sequence[PredictionRecord] | Sequence[FeedbackRecord]
) -> tuple[pa.Table, int]:
    """A batch as an Arrow table, and how many records could not be converted.

    A malformed record (a bug in the caller) must not cost the rest of its batch: when
    the whole batch does not convert, records are converted one by one and the bad
    ones are logged and counted instead of written.
    """
    build = _predictions_table if kind == "predictions" else _feedback_table
    try:
        return build(records), 0  # type: ignore[arg-type]
    except Exception:  # any conversion error: fall back to one by one
        pass
    good: list[pa.Table] = []
    rejected = 0
    for record in records:
        try:
            good.append(build([record]))  # type: ignore[list-item]
        except Exception as exc:
            rejected += 1
            logger.error(
                "prediction log: dropping malformed %s record %r: %s",
                kind,
                getattr(record, "prediction_id", "?"),
                exc,
            )
    if not good:
        return SCHEMAS[kind].empty_table(), rejected
    return pa.concat_tables(good), rejected


def conform(kind: RecordKind, table: pa.Table) -> pa.Table:
    """A table read back from storage, in exactly the schema of its kind.

    Rows written before a column was added lack it (an older spill file), or read it
    as null (an older part file read through a dataset of today's schema): they get
    the column's `ADDED_PREDICTION_COLUMNS` value.
    """
    schema = SCHEMAS[kind]
    if kind == "predictions":
        for name, value in ADDED_PREDICTION_COLUMNS.items():
            field = schema.field(name)
            if name not in table.column_names:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
            filled = pc.fill_null(table.column(name), pa.scalar(value, field.type))
            table = table.set_column(table.column_names.index(name), field, filled)
    return table.select(schema.names).cast(schema)


def content_digest(kind: RecordKind, table: pa.Table) -> str:
    """A short digest of a batch's identity: the same rows always get the same name.

    Predictions are identified by `prediction_id`; a feedback row by its id, label and
    time (a label may be corrected later).
    """
    digest = hashlib.sha256()
    ids = table.column("prediction_id").to_pylist()
    if kind == "predictions":
        digest.update("\x1f".join(ids).encode())
    else:
        labels = table.column("label").to_pylist()
        stamps = table.column("ts").cast(pa.int64()).to_pylist()
        for key in zip(ids, labels, stamps, strict=True):
            digest.update(repr(key).encode())
    return digest.hexdigest()[:32]
