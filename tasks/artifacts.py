"""Small helpers for the Prefect artifacts every task publishes."""

from __future__ import annotations

import re


def artifact_key(stage: str, dataset: str) -> str:
    """A stable artifact key (Prefect allows lowercase letters, digits and dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{stage}-{dataset}".lower()).strip("-")


def fmt_count(value: int | float | None) -> str:
    """A number as a person reads it in a table."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}"
    return f"{value:,}"
