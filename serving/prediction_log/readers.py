"""Read the prediction log and the feedback back, for the drift monitor and the canary.

Both backends go through one Arrow table of the stored schema, so the frames are the
same whichever profile wrote them. Rows still waiting in the spill directory are not
visible until the writer has replayed them.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from mlops.settings import Settings
from mlops.timestamps import utc_or_none
from serving.prediction_log.records import SCHEMAS, TIMESTAMP, RecordKind, conform
from serving.prediction_log.sinks import (
    FEEDBACK_TABLE,
    PREDICTIONS_TABLE,
    connect_postgres,
    prediction_log_url,
    table_columns,
)

PREDICTION_COLUMNS: tuple[str, ...] = (
    "prediction_id",
    "request_id",
    "model_name",
    "model_version",
    "variant",
    "shadow",
    "pinned",
    "entity",
    "prediction",
    "probabilities",
    "score",
    "latency_ms",
    "status",
    "error",
    "ts",
)
"""The fixed columns of `read_predictions`, before the feature columns."""

FEATURE_COLLISION_PREFIX = "feature_"

FEEDBACK_COLUMNS: tuple[str, ...] = ("prediction_id", "label", "ts")


def read_predictions(
    settings: Settings,
    *,
    model_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """One row per prediction (shadow and pinned ones included: filter on `shadow`,
    `pinned`), oldest first.

    Columns: `PREDICTION_COLUMNS`, then one column per feature under the name the
    request used (a feature named like a fixed column gets the prefix `feature_`;
    a feature a row lacks is NaN). `probabilities` is a list column in the model's
    class order; `score` is `probabilities[1]` (the positive class) for a binary
    model, and the predicted class's probability (the largest) otherwise. `ts` is
    `datetime64[ns, UTC]`; `since` is inclusive, `until` exclusive (naive = UTC).
    """
    table = _read("predictions", settings, model_name=model_name, since=since, until=until)
    frame = _to_pandas(table)
    frame = frame.drop_duplicates("prediction_id", keep="first").reset_index(drop=True)
    probabilities = [[float(x) for x in p] for p in frame["probabilities"]]
    frame["probabilities"] = pd.Series(probabilities, index=frame.index, dtype=object)
    frame["score"] = pd.Series(
        [_score(p) for p in probabilities], index=frame.index, dtype="float64"
    )
    features = (
        pd.DataFrame.from_records(
            [orjson.loads(text) for text in frame["features"]], index=frame.index
        )
        if len(frame)
        else pd.DataFrame(index=frame.index)
    )
    features = features.rename(
        columns={
            name: f"{FEATURE_COLLISION_PREFIX}{name}"
            for name in features.columns
            if name in PREDICTION_COLUMNS or name == "features"
        }
    )
    return pd.concat([frame[list(PREDICTION_COLUMNS)], features], axis=1)


def read_feedback(settings: Settings, *, since: datetime | None = None) -> pd.DataFrame:
    """Columns `prediction_id`, `label`, `ts`: the latest label of each prediction
    (a corrected label replaces the earlier one), oldest first; `since` filters on
    the label's time (inclusive)."""
    table = _read("feedback", settings, since=since)
    frame = _to_pandas(table)
    frame = frame.drop_duplicates("prediction_id", keep="last")
    return frame.sort_values(["ts", "prediction_id"], kind="stable").reset_index(drop=True)[
        list(FEEDBACK_COLUMNS)
    ]


def _score(probabilities: list[float]) -> float:
    if len(probabilities) == 2:
        return float(probabilities[1])
    return float(max(probabilities)) if probabilities else math.nan


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    table = table.sort_by([("ts", "ascending"), ("prediction_id", "ascending")])
    frame = table.to_pandas()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[ns, UTC]")
    return frame


def _read(
    kind: RecordKind,
    settings: Settings,
    *,
    model_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    since, until = utc_or_none(since), utc_or_none(until)
    url = prediction_log_url(settings)
    if url is None:
        return _read_parquet(kind, settings.predictions_dir, model_name, since, until)
    return _read_postgres(kind, url, model_name, since, until)


def _read_parquet(
    kind: RecordKind,
    directory: Path,
    model_name: str | None,
    since: datetime | None,
    until: datetime | None,
) -> pa.Table:
    schema = SCHEMAS[kind]
    files: list[str] = []
    root = directory / kind
    partitions = sorted(root.glob("date=*")) if root.is_dir() else []
    for partition in partitions:
        try:
            day = date.fromisoformat(partition.name.removeprefix("date="))
        except ValueError:
            continue
        if since is not None and day < since.date():
            continue
        if until is not None and day > until.date():
            continue
        files.extend(sorted(str(path) for path in partition.glob("part-*.parquet")))
    if not files:
        return schema.empty_table()
    condition: Any = None
    for expression in _conditions(model_name, since, until):
        condition = expression if condition is None else condition & expression
    dataset = ds.dataset(files, schema=schema, format="parquet")
    return conform(kind, dataset.to_table(filter=condition))


def _conditions(
    model_name: str | None, since: datetime | None, until: datetime | None
) -> list[Any]:
    conditions: list[Any] = []
    if model_name is not None:
        conditions.append(pc.field("model_name") == model_name)
    if since is not None:
        conditions.append(pc.field("ts") >= pa.scalar(since, type=TIMESTAMP))
    if until is not None:
        conditions.append(pc.field("ts") < pa.scalar(until, type=TIMESTAMP))
    return conditions


def _read_postgres(
    kind: RecordKind,
    url: str,
    model_name: str | None,
    since: datetime | None,
    until: datetime | None,
) -> pa.Table:
    schema = SCHEMAS[kind]
    table_name = PREDICTIONS_TABLE if kind == "predictions" else FEEDBACK_TABLE
    where: list[str] = []
    params: list[object] = []
    if model_name is not None and kind == "predictions":
        where.append("model_name = %s")
        params.append(model_name)
    if since is not None:
        where.append("ts >= %s")
        params.append(since)
    if until is not None:
        where.append("ts < %s")
        params.append(until)
    with connect_postgres(url) as conn:
        present = table_columns(conn, table_name)
        if not present:
            return schema.empty_table()
        # A column added since the table was created reads as null (`conform` fills it).
        columns = ", ".join(
            "features::text AS features"
            if name == "features"
            else name
            if name in present
            else f"NULL AS {name}"
            for name in schema.names
        )
        query = f"SELECT {columns} FROM {table_name}"
        if where:
            query += " WHERE " + " AND ".join(where)
        rows = conn.execute(query, params).fetchall()
    if not rows:
        return schema.empty_table()
    table = pa.table(
        {name: [row[i] for row in rows] for i, name in enumerate(schema.names)}, schema=schema
    )
    return conform(kind, table)
