"""Timestamps in one convention: timezone-aware UTC, a naive value being UTC already.

Data files, SQL stores and event payloads mix naive and aware times; everything that
compares or stores a time first passes it through `as_utc`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """The same instant, aware in UTC (a naive time is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_or_none(moment: datetime | None) -> datetime | None:
    """`as_utc`, passing None through."""
    return None if moment is None else as_utc(moment)
