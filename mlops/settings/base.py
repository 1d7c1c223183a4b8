"""What the sections of the settings share: a frozen base, the constrained numbers of
their fields, and the check that a silence outlasts two heartbeats."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A section of `Settings` (`MLOPS_<SECTION>__*`): read once, never changed after."""

    model_config = ConfigDict(frozen=True)


Share = Annotated[float, Field(ge=0.0, le=1.0)]
"""A fraction of something, from 0 to 1."""

Positive = Annotated[float, Field(gt=0.0)]
"""A number above zero: a duration, an interval, a rate, a ratio."""

NonNegative = Annotated[float, Field(ge=0.0)]
"""A number that may be zero (no margin, no wait) but not below."""

Count = Annotated[int, Field(ge=1)]
"""How many of something, at least one."""

NonNegativeCount = Annotated[int, Field(ge=0)]
"""How many of something, possibly none."""


def require_twice(silence: float, beat: float, message: str) -> None:
    """Refuse a silence that ends a run before two heartbeats: one late beat must not
    kill a live one.

    Raises:
        ValueError: `silence` is shorter than twice `beat` (pydantic reports `message`).
    """
    if silence < 2 * beat:
        raise ValueError(message)
