"""The prediction log (issue #5): every prediction and every late label, kept.

The service hands records to a `PredictionLog` on the request path (`submit` only
appends to a deque); a writer thread batches them into a sink. If the sink is down
or slow, batches go to a local spill directory and are replayed later, oldest first:
none is lost and no response waits for the sink. See `writer.py` for the exact
guarantees, `sinks.py` for the storage.

Storage:

- embedded profile (default): parquet parts under `settings.predictions_dir`,
  `predictions/date=YYYY-MM-DD/part-<digest>.parquet` and
  `feedback/date=YYYY-MM-DD/part-<digest>.parquet` (UTC day of `ts`; the digest is
  of the rows, so several worker processes write side by side and a replayed batch
  overwrites its own copy). Features are stored as JSON text.
- PostgreSQL when `serving.prediction_log_url` is set, or in the production profile
  (`database_url`): tables `prediction_log` (primary key `prediction_id`, features
  `jsonb`, probabilities `double precision[]`) and `prediction_feedback` (primary key
  `prediction_id`, latest label wins); DDL in `sinks.POSTGRES_DDL`.
- spill files: `settings.spill_dir/<time_ns>-<pid>-<rand>.<kind>.parquet`.

`read_predictions` / `read_feedback` read either backend into pandas.
"""

from __future__ import annotations

from mlops.settings import Settings
from serving.prediction_log.readers import (
    FEEDBACK_COLUMNS,
    PREDICTION_COLUMNS,
    read_feedback,
    read_predictions,
)
from serving.prediction_log.records import FeedbackRecord, PredictionRecord, RecordKind
from serving.prediction_log.sinks import (
    POSTGRES_DDL,
    ParquetSink,
    PostgresSink,
    PredictionSink,
    postgres_conninfo,
    prediction_log_url,
)
from serving.prediction_log.writer import PredictionLog

__all__ = [
    "FEEDBACK_COLUMNS",
    "POSTGRES_DDL",
    "PREDICTION_COLUMNS",
    "FeedbackRecord",
    "ParquetSink",
    "PostgresSink",
    "PredictionLog",
    "PredictionRecord",
    "PredictionSink",
    "RecordKind",
    "open_prediction_log",
    "postgres_conninfo",
    "prediction_log_url",
    "read_feedback",
    "read_predictions",
]


def open_prediction_log(settings: Settings) -> PredictionLog:
    """The prediction log the settings call for, not started yet (call `start()`).

    Opening never touches the sink: the PostgreSQL connection is made by the writer
    on its first write, so the service starts even while the database is down.
    """
    url = prediction_log_url(settings)
    sink: PredictionSink = (
        ParquetSink(settings.predictions_dir) if url is None else PostgresSink(url)
    )
    return PredictionLog(
        sink,
        settings.spill_dir,
        buffer_rows=settings.serving.log_buffer_rows,
        flush_interval_s=settings.serving.log_flush_interval_s,
    )
