"""What a soak injects and when: a seeded plan of shifts and data-quality incidents.

A soak runs the loop in real time for hours. The world starts in the baseline regime;
after a warm-up, at random (seeded) times at least `min_gap_s` apart, it moves to
another regime (a shift) or its online pipe breaks for a while (a data-quality
incident: one feature arrives all null, or in other units). The plan is a pure function
of the configuration, so a soak can be replayed and its report read against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from mlops.synthetic import Scenario

REGIME_CYCLE = (Scenario.CONCEPT_SHIFT, Scenario.BASELINE, Scenario.COVARIATE_SHIFT)
"""The regimes the world moves through after the baseline, in this order (then again)."""
INCIDENT_FEATURES = ("amount", "distance_from_home_km")
"""Numeric features an incident breaks (present in the card-fraud contract)."""


class InjectionKind(StrEnum):
    """What a soak does to the world."""

    SHIFT = "shift"
    DATA_QUALITY = "data_quality"


class Defect(StrEnum):
    """How an incident breaks the online pipe."""

    NULLS = "nulls"
    """The feature arrives null in every request."""
    UNITS = "units"
    """The feature arrives in other units (x1000: grams for kilograms, cents for euros)."""


@dataclass(frozen=True)
class Injection:
    """One change, `at_s` seconds after the soak's start."""

    kind: InjectionKind
    at_s: float
    regime: Scenario | None = None
    """For a shift: the regime the world moves to."""
    feature: str | None = None
    """For an incident: the broken feature."""
    defect: Defect | None = None
    duration_s: float = 0.0
    """For an incident: how long the pipe stays broken."""

    @property
    def label(self) -> str:
        """A short description for reports."""
        if self.kind is InjectionKind.SHIFT:
            return f"shift to {self.regime}"
        return f"{self.feature} {self.defect} for {self.duration_s / 60:.0f} min"


@dataclass(frozen=True)
class SoakPlan:
    """The injections of one soak, in time order."""

    injections: tuple[Injection, ...]

    def regime_at(self, elapsed_s: float) -> Scenario:
        """The regime the world is in `elapsed_s` seconds after the start."""
        regime = Scenario.BASELINE
        for injection in self.injections:
            if injection.kind is InjectionKind.SHIFT and injection.at_s <= elapsed_s:
                assert injection.regime is not None
                regime = injection.regime
        return regime

    def incident_at(self, elapsed_s: float) -> Injection | None:
        """The data-quality incident under way at `elapsed_s`, if any."""
        for injection in self.injections:
            if (
                injection.kind is InjectionKind.DATA_QUALITY
                and injection.at_s <= elapsed_s < injection.at_s + injection.duration_s
            ):
                return injection
        return None

    @property
    def shifts(self) -> tuple[Injection, ...]:
        """The shift injections, in time order."""
        return tuple(i for i in self.injections if i.kind is InjectionKind.SHIFT)

    @property
    def incidents(self) -> tuple[Injection, ...]:
        """The data-quality incidents, in time order."""
        return tuple(i for i in self.injections if i.kind is InjectionKind.DATA_QUALITY)


def plan_soak(
    duration_s: float,
    *,
    seed: int,
    warmup_s: float,
    min_gap_s: float,
    incident_s: float,
    shifts: int,
    incidents: int,
) -> SoakPlan:
    """Place `shifts` shifts and `incidents` incidents at random times in the soak.

    Every injection starts after the warm-up, at least `min_gap_s` after the previous
    one (the loop needs time to react and the report to tell the reactions apart) and
    at least `min_gap_s` before the end. Fewer fit when the soak is short: the plan
    keeps what fits, shifts first.

    Raises:
        ValueError: a duration or a gap is not positive.
    """
    if duration_s <= 0 or min_gap_s <= 0 or incident_s <= 0:
        raise ValueError("durations and gaps must be positive")
    rng = random.Random(seed)
    slots = int((duration_s - warmup_s - min_gap_s) // min_gap_s) + 1
    wanted = min(max(slots, 0), shifts + incidents)
    if wanted == 0:
        return SoakPlan(())
    # Both kinds when both are asked for and two fit; the first injection is a shift.
    n_incidents = min(incidents, wanted // 2) if shifts else min(incidents, wanted)
    n_shifts = min(shifts, wanted - n_incidents)
    n_incidents = min(incidents, wanted - n_shifts)
    tail = [InjectionKind.SHIFT] * (n_shifts - 1) + [InjectionKind.DATA_QUALITY] * n_incidents
    rng.shuffle(tail)
    kinds = ([InjectionKind.SHIFT] if n_shifts else []) + tail
    wanted = len(kinds)
    if wanted == 0:
        return SoakPlan(())
    # Spread the slack at random between the injections.
    slack = duration_s - warmup_s - min_gap_s - (wanted - 1) * min_gap_s
    cuts = sorted(rng.uniform(0.0, max(slack, 0.0)) for _ in range(wanted))
    injections = []
    regimes = 0
    for index, (kind, cut) in enumerate(zip(kinds, cuts, strict=True)):
        at = round(warmup_s + index * min_gap_s + cut, 1)
        if kind is InjectionKind.SHIFT:
            regime = REGIME_CYCLE[regimes % len(REGIME_CYCLE)]
            regimes += 1
            injections.append(Injection(kind, at, regime=regime))
        else:
            injections.append(
                Injection(
                    kind,
                    at,
                    feature=rng.choice(INCIDENT_FEATURES),
                    defect=rng.choice(list(Defect)),
                    duration_s=min(incident_s, min_gap_s / 2),
                )
            )
    return SoakPlan(tuple(injections))


def break_pipe(frame: pd.DataFrame, incident: Injection) -> pd.DataFrame:
    """The rows as the broken online pipe delivers them during `incident`."""
    assert incident.feature is not None
    broken = frame.copy()
    if incident.defect is Defect.NULLS:
        broken[incident.feature] = np.nan
    else:
        broken[incident.feature] = broken[incident.feature].astype(float) * 1000.0
    return broken
