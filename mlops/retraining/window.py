"""The retraining window: which labelled rows a retrained model learns from.

The default window is the last `window_days` up to now. A drift alarm says when the
drifted data begins (its onset); the window reaches back at least that far, so the new
model learns the new regime from all of it, with the rows just before it for contrast.

Labelled batches arrive in the landing folder (`<landing>/<dataset>/*.parquet|csv`,
never rewritten). `collect_window` gathers the rows of every batch that fall inside the
window into one new batch, named by its content hash: the same rows always give the
same file, and the training pipeline ingests it like any other batch.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlops.dataset_spec import DatasetSpec
from mlops.errors import ConfigError
from mlops.settings import Settings
from mlops.sources import read_batch, sha256_file
from mlops.timestamps import as_utc

_BATCH_SUFFIXES = (".parquet", ".pq", ".csv")


class RetrainWindow(BaseModel):
    """The time range [start, end] of the rows a retraining uses (UTC, both included)."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    reaches_onset: bool = False
    """True when the drift onset moved the start earlier than the default window."""

    def describe(self) -> str:
        """One line for people."""
        days = (self.end - self.start).total_seconds() / 86400
        extended = " (extended back to the drift onset)" if self.reaches_onset else ""
        return (
            f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC, "
            f"{days:.1f} days{extended}"
        )


@dataclass(frozen=True)
class WindowBatch:
    """The rows of a window written as one immutable batch file."""

    path: Path | None
    """None when the window holds no rows (nothing is written)."""
    sha256: str | None
    rows: int
    new_rows: int
    """Rows newer than `since` (all rows when `since` is None)."""
    data_start: datetime | None
    data_end: datetime | None


def retraining_window(
    now: datetime,
    window_days: float,
    *,
    onset: datetime | None = None,
    start: datetime | None = None,
) -> RetrainWindow:
    """[now - window_days, now], or from an explicit `start`, reaching back to `onset`.

    Raises:
        ConfigError: the start is not before `now`.
    """
    end = as_utc(now)
    default = end - timedelta(days=window_days)
    begin = as_utc(start) if start is not None else default
    reaches_onset = False
    if onset is not None and as_utc(onset) < begin:
        begin = as_utc(onset)
        reaches_onset = True
    if begin >= end:
        raise ConfigError(f"the retraining window starts at {begin} but ends at {end}")
    return RetrainWindow(start=begin, end=end, reaches_onset=reaches_onset)


def landing_batches(settings: Settings, dataset: str) -> list[Path]:
    """The labelled batches of a dataset in the landing folder, by name.

    Hidden files (a writer's partial file) are skipped.
    """
    folder = settings.landing_dir / dataset
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in _BATCH_SUFFIXES and not p.name.startswith(".")
    )


def load_window(settings: Settings, spec: DatasetSpec, window: RetrainWindow) -> pd.DataFrame:
    """Every landing row of the dataset inside the window, one row per key, in time order.

    A row delivered twice (same entity and timestamp) is kept once, the copy from the
    batch whose file name sorts last (a later delivery corrects an earlier one).
    """
    parts = []
    for path in landing_batches(settings, spec.name):
        frame = read_batch(spec, path)
        if spec.timestamp not in frame.columns:
            raise ConfigError(f"landing batch {path} has no {spec.timestamp!r} column")
        stamps = frame[spec.timestamp]
        inside = frame[(stamps >= window.start) & (stamps <= window.end)]
        if len(inside):
            parts.append(inside)
    if not parts:
        return pd.DataFrame()
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.drop_duplicates(subset=list(spec.key_columns), keep="last")
    return rows.sort_values(list(spec.key_columns[::-1]), kind="stable").reset_index(drop=True)


def window_batch_dir(settings: Settings, dataset: str) -> Path:
    """Where a dataset's retraining batches are written (`<sha256>.parquet` each)."""
    return settings.home / "retraining" / dataset


def collect_window(
    settings: Settings,
    spec: DatasetSpec,
    window: RetrainWindow,
    out_dir: Path,
    *,
    since: datetime | None = None,
) -> WindowBatch:
    """Write the window's rows as one parquet batch named by its content hash.

    Args:
        settings: where the landing folder is.
        spec: the dataset (its name, key and timestamp columns).
        window: the time range to collect.
        out_dir: where the batch goes (`<out_dir>/<sha256>.parquet`).
        since: rows after this instant are counted as new (the guardrails' minimum).
    """
    frame = load_window(settings, spec, window)
    return write_window_batch(frame, spec, out_dir, since=since)


def write_window_batch(
    frame: pd.DataFrame, spec: DatasetSpec, out_dir: Path, *, since: datetime | None = None
) -> WindowBatch:
    """Write rows gathered by `load_window` (see `collect_window`); nothing when empty."""
    if frame.empty:
        return WindowBatch(None, None, 0, 0, None, None)
    stamps = frame[spec.timestamp]
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".partial-{uuid.uuid4().hex}"
    frame.to_parquet(staging, index=False)
    digest = sha256_file(staging)
    target = out_dir / f"{digest}.parquet"
    if target.exists():
        staging.unlink()
    else:
        os.replace(staging, target)
    return WindowBatch(
        path=target,
        sha256=digest,
        rows=len(frame),
        new_rows=count_new_rows(frame, spec, since),
        data_start=stamps.min().to_pydatetime(),
        data_end=stamps.max().to_pydatetime(),
    )


def new_rows_since(trained_until: datetime | None, onset: datetime | None) -> datetime | None:
    """From when a window's rows count as new: after what the champion learned from and,
    for a drift alarm, after the drift's onset.

    Labels arrive late: when an alarm is raised, most labelled rows of the window still
    predate the drift. A model retrained then learns the old regime and fails its
    quality gate; counting only post-onset rows holds the alarm (pending, "insufficient
    data") until enough labelled rows of the new regime have arrived.
    """
    moments = [as_utc(m) for m in (trained_until, onset) if m is not None]
    return max(moments) if moments else None


def count_new_rows(frame: pd.DataFrame, spec: DatasetSpec, since: datetime | None) -> int:
    """Rows of a window frame newer than `since` (all of them when None)."""
    if frame.empty or since is None:
        return len(frame)
    return int((frame[spec.timestamp] > as_utc(since)).sum())
