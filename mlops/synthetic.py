"""Synthetic card-transaction fraud data: a realistic domain to exercise the whole loop.

The pipeline needs data whose failure modes we control: a clean baseline to train on,
batches whose feature distributions drift (covariate shift), batches whose fraud
patterns change while the features look the same (concept shift), and broken batches
that validation must refuse. Everything here is pure numpy/pandas, seeded and
vectorized, so a test can ask for 30 rows or a benchmark for millions.

How the data is made, in short:

* A fixed population of cards (the entity) with persistent attributes: customer age,
  card type, credit limit, home region, spend level, activity, utilization and the
  card's age at the start of the batch. The population does not depend on the seed, so
  `card_000123` is the same customer in every batch (its age does not advance between
  batches: a simplification).
* Transactions are spread over ``[start, start + days)`` with a daily and weekly cycle,
  then given a channel, entry mode, merchant, amount, distances, velocity counts and
  scores drawn from realistic families (log-normal amounts, Poisson counts, Beta
  scores).
* The label is drawn from ``P(fraud | features)``: a non-linear function of thresholds
  and interactions plus an unobserved risk factor, so gradient boosting clearly beats
  a linear model without the problem becoming separable.

Covariate shift changes only how features are drawn (the labelling function is the
same); concept shift draws features exactly as the baseline does (with the same seed
the features are identical) and changes only the labelling function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlops.timestamps import as_utc

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class Scenario(StrEnum):
    """Which kind of batch to generate; each one exercises a different part of the loop."""

    BASELINE = "baseline"
    COVARIATE_SHIFT = "covariate-shift"
    CONCEPT_SHIFT = "concept-shift"
    BAD_BATCH = "bad-batch"


class Defect(StrEnum):
    """A data-quality fault injected into a bad batch; validation must catch each one."""

    NULLS = "nulls"
    OUT_OF_RANGE = "out-of-range"
    WRONG_DTYPE = "wrong-dtype"
    MISSING_COLUMN = "missing-column"
    DUPLICATE_KEYS = "duplicate-keys"


TRANSACTION_ID = "transaction_id"
ENTITY = "card_id"
TIMESTAMP = "event_timestamp"
LABEL = "is_fraud"

NUMERIC_FEATURES: tuple[str, ...] = (
    "amount",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "distance_from_home_km",
    "distance_from_last_txn_km",
    "card_age_days",
    "customer_age",
    "credit_limit",
    "utilization",
    "txn_count_1h",
    "txn_count_24h",
    "avg_amount_30d",
    "amount_to_avg_ratio",
    "merchant_risk_score",
    "device_trust_score",
    "failed_pin_attempts",
    "foreign_transaction",
)
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "merchant_category",
    "channel",
    "card_type",
    "entry_mode",
    "home_region",
)
FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
COLUMNS: tuple[str, ...] = (TRANSACTION_ID, ENTITY, TIMESTAMP, *FEATURES, LABEL)

DEFECT_COLUMNS: dict[Defect, tuple[str, ...]] = {
    Defect.NULLS: ("distance_from_home_km", "merchant_category"),
    Defect.OUT_OF_RANGE: ("amount", "customer_age", "hour_of_day"),
    Defect.WRONG_DTYPE: ("credit_limit",),
    Defect.MISSING_COLUMN: ("merchant_risk_score",),
    Defect.DUPLICATE_KEYS: (ENTITY, TIMESTAMP),
}
"""The columns each defect touches, so a validation test can assert the right check fired."""

MAX_CARDS = 200_000
ROWS_PER_CARD = 20
NULL_FRACTION = 0.02
DUPLICATE_FRACTION = 0.01
OUT_OF_RANGE_ROWS = 5
_POPULATION_SEED = 20_240_601
_NS_PER_HOUR = 3_600 * 10**9
_NS_PER_DAY = 24 * _NS_PER_HOUR
_NS_PER_US = 1_000

CHANNELS = ("pos", "online", "atm")
CARD_TYPES = ("credit", "debit", "prepaid")
ENTRY_MODES = ("chip", "swipe", "contactless", "manual", "online")
REGIONS = ("northeast", "southeast", "midwest", "southwest", "west", "northwest")
MERCHANT_CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "retail",
    "electronics",
    "travel",
    "entertainment",
    "digital_goods",
    "jewelry",
    "cash",
)
# Typical ticket (median amount) and base riskiness of each merchant category.
_CATEGORY_MEDIAN_AMOUNT = np.array([45.0, 30.0, 50.0, 60.0, 220.0, 350.0, 40.0, 12.0, 400.0, 100.0])
_CATEGORY_RISK = np.array([0.08, 0.10, 0.15, 0.18, 0.45, 0.35, 0.22, 0.55, 0.50, 0.25])
_CASH = MERCHANT_CATEGORIES.index("cash")
_NIGHT_HOURS = (0, 1, 2, 3, 4, 5)


@dataclass(frozen=True)
class _Behaviour:
    """How transactions are drawn: the knobs a covariate shift turns."""

    channel_p: tuple[float, float, float]
    hour_weights: tuple[float, ...]
    pos_merchant_p: tuple[float, ...]
    online_merchant_p: tuple[float, ...]
    amount_log_shift: float
    foreign_rate: float
    online_foreign_rate: float
    compromised_device_rate: float
    velocity: float


_BASELINE = _Behaviour(
    channel_p=(0.62, 0.30, 0.08),
    hour_weights=(
        *(0.40, 0.30, 0.25, 0.25, 0.30, 0.45),  # 00-05: night
        *(0.70, 1.20, 1.50, 1.60, 1.70, 1.90),  # 06-11
        *(2.00, 1.90, 1.80, 1.80, 1.90, 2.00),  # 12-17
        *(2.00, 1.80, 1.50, 1.20, 0.80, 0.45),  # 18-23
    ),
    #               groc  rest  fuel  retl  elec  trvl  ent   digi  jewl  cash
    pos_merchant_p=(0.28, 0.20, 0.14, 0.22, 0.05, 0.03, 0.06, 0.00, 0.02, 0.00),
    online_merchant_p=(0.08, 0.06, 0.00, 0.30, 0.14, 0.12, 0.10, 0.18, 0.02, 0.00),
    amount_log_shift=0.0,
    foreign_rate=0.04,
    online_foreign_rate=0.10,
    compromised_device_rate=0.12,
    velocity=1.0,
)
_COVARIATE_SHIFT = _Behaviour(
    channel_p=(0.42, 0.50, 0.08),
    hour_weights=(
        *(0.85, 0.70, 0.60, 0.55, 0.60, 0.75),  # many more night-time transactions
        *(0.80, 1.10, 1.30, 1.40, 1.50, 1.70),
        *(1.80, 1.70, 1.60, 1.60, 1.70, 1.90),
        *(2.00, 1.90, 1.70, 1.50, 1.20, 0.90),
    ),
    pos_merchant_p=(0.20, 0.17, 0.11, 0.24, 0.12, 0.05, 0.06, 0.00, 0.05, 0.00),
    online_merchant_p=(0.05, 0.04, 0.00, 0.22, 0.22, 0.16, 0.07, 0.20, 0.04, 0.00),
    amount_log_shift=0.35,
    foreign_rate=0.08,
    online_foreign_rate=0.18,
    compromised_device_rate=0.20,
    velocity=1.5,
)


def generate(
    scenario: Scenario,
    rows: int,
    start: datetime,
    days: float = 7.0,
    seed: int | None = None,
    defects: Sequence[Defect] | None = None,
) -> pd.DataFrame:
    """Generate one batch of card transactions for a scenario.

    The same arguments always give the same frame, so a batch can be regenerated
    instead of stored, and tests can compare frames exactly.

    Args:
        scenario: which kind of batch (see `Scenario`).
        rows: number of transactions (the frame has exactly this many rows).
        start: first instant of the batch window; a naive datetime is read as UTC.
        days: length of the window; timestamps lie in ``[start, start + days)``.
        seed: random seed; when None a stable seed is derived from ``(scenario, start)``
            so consecutive batches differ but each one is reproducible.
        defects: for `Scenario.BAD_BATCH` only: the defects to inject (None: all).

    Returns:
        A frame sorted by event time with columns `COLUMNS` (less the column a
        missing-column defect drops).

    Raises:
        ValueError: an argument is out of its domain.
    """
    scenario = _parse_scenario(scenario)
    chosen = _check_arguments(scenario, rows, days, seed, defects)
    start_utc = as_utc(start)
    if seed is None:
        seed = derive_seed(scenario, start_utc)
    rng = np.random.default_rng(seed)
    behaviour = _COVARIATE_SHIFT if scenario is Scenario.COVARIATE_SHIFT else _BASELINE
    frame = _draw_transactions(rng, behaviour, rows, start_utc, days, seed)
    labeller = _concept_shift_logit if scenario is Scenario.CONCEPT_SHIFT else _baseline_logit
    logit = labeller(frame) + rng.normal(0.0, 0.8, rows)  # an unobserved risk factor
    frame[LABEL] = (rng.random(rows) < _sigmoid(logit)).astype(np.int64)
    if scenario is Scenario.BAD_BATCH:
        frame = inject_defects(frame, chosen, seed)
    return frame


def derive_seed(scenario: Scenario, start: datetime) -> int:
    """A seed that is stable across processes (Python's `hash()` is salted per process).

    A naive `start` is read as UTC, as in `generate`.
    """
    return _stable_int(f"{Scenario(scenario).value}|{as_utc(start).isoformat()}")


def inject_defects(frame: pd.DataFrame, defects: Sequence[Defect], seed: int) -> pd.DataFrame:
    """Return a copy of a clean batch with data-quality defects injected.

    Each defect draws from its own random stream, so a defect does the same thing
    whether it is injected alone or with others, and touches only `DEFECT_COLUMNS`.
    """
    out = frame.copy()
    wanted = {Defect(d) for d in defects}
    # Fixed order: duplicates first (they copy whole rows), the column drop last.
    for defect in (
        Defect.DUPLICATE_KEYS,
        Defect.NULLS,
        Defect.OUT_OF_RANGE,
        Defect.WRONG_DTYPE,
        Defect.MISSING_COLUMN,
    ):
        if defect not in wanted:
            continue
        rng = np.random.default_rng([seed, list(Defect).index(defect)])
        out = _DEFECT_INJECTORS[defect](out, rng)
    return out


def write_batch(frame: pd.DataFrame, out: Path) -> Path:
    """Write a batch as parquet or CSV (chosen by suffix), creating parent folders.

    The file appears atomically (written beside it, then renamed), so a reader never
    sees half a batch. CSV timestamps are ISO 8601 so they parse back to the same instants.

    Raises:
        ValueError: the suffix is neither ``.parquet`` nor ``.csv``.
    """
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"write_batch writes .parquet or .csv files, not {out.suffix!r} ({out})")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    if suffix == ".parquet":
        frame.to_parquet(partial, index=False)
    else:
        _iso_timestamps(frame).to_csv(partial, index=False)
    partial.replace(out)
    return out


# --------------------------------------------------------------------------- arguments


def _stable_int(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _parse_scenario(scenario: Scenario | str) -> Scenario:
    try:
        return Scenario(scenario)
    except ValueError:
        known = ", ".join(s.value for s in Scenario)
        raise ValueError(f"unknown scenario {scenario!r}; choose one of: {known}") from None


def _check_arguments(
    scenario: Scenario,
    rows: int,
    days: float,
    seed: int | None,
    defects: Sequence[Defect] | None,
) -> tuple[Defect, ...]:
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 1:
        raise ValueError(f"rows must be an integer >= 1, got {rows!r}")
    if not np.isfinite(days) or days <= 0:
        raise ValueError(f"days must be a positive number, got {days!r}")
    if days * _NS_PER_DAY / _NS_PER_US < rows:
        raise ValueError(f"days={days!r} is too short to give {rows} rows distinct timestamps")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    if scenario is not Scenario.BAD_BATCH:
        if defects is not None:
            raise ValueError(
                f"defects apply only to the bad-batch scenario, not {scenario.value!r}"
            )
        return ()
    if defects is None:
        defects = tuple(Defect)
    if isinstance(defects, str):
        raise ValueError("defects must be a sequence of Defect values, not a single string")
    chosen: list[Defect] = []
    for item in defects:
        try:
            defect = Defect(item)
        except ValueError:
            known = ", ".join(d.value for d in Defect)
            raise ValueError(f"unknown defect {item!r}; choose from: {known}") from None
        if defect not in chosen:
            chosen.append(defect)
    if not chosen:
        raise ValueError("a bad batch needs at least one defect (pass None for all of them)")
    if Defect.DUPLICATE_KEYS in chosen and rows < 2:
        raise ValueError("a duplicate-keys defect needs a batch of at least 2 rows")
    return tuple(chosen)


# ------------------------------------------------------------------------ generation


@dataclass(frozen=True)
class _Population:
    """Persistent attributes of every card; row ``i`` is card ``card_{i:06d}``."""

    ids: npt.NDArray[np.object_]
    card_type: IntArray
    customer_age: IntArray
    credit_limit: FloatArray
    region: IntArray
    spend_level: FloatArray
    activity: FloatArray
    utilization: FloatArray
    age_at_start_days: FloatArray


def _population(cards: int) -> _Population:
    """The first `cards` cards of one fixed population (independent of the batch seed)."""
    rng = np.random.default_rng(_POPULATION_SEED)
    n = MAX_CARDS
    card_type = rng.choice(3, size=n, p=[0.55, 0.38, 0.07]).astype(np.int64)
    customer_age = np.clip(np.rint(rng.normal(44.0, 15.0, n)), 18, 95).astype(np.int64)
    limit_median = np.array([8_000.0, 3_000.0, 1_000.0])[card_type]
    limit_sigma = np.array([0.6, 0.5, 0.4])[card_type]
    credit_limit = np.clip(
        np.round(limit_median * np.exp(rng.normal(0.0, 1.0, n) * limit_sigma), -2),
        200.0,
        50_000.0,
    )
    region = rng.choice(len(REGIONS), size=n, p=[0.19, 0.22, 0.20, 0.12, 0.17, 0.10])
    spend_level = np.exp(rng.normal(0.0, 0.4, n)) * np.array([1.0, 0.9, 0.5])[card_type]
    activity = np.exp(rng.normal(0.0, 0.8, n))
    utilization = np.where(card_type == 0, rng.beta(2.0, 4.0, n), rng.beta(2.0, 3.0, n))
    brand_new = rng.random(n) < 0.06
    age_at_start = np.where(
        brand_new,
        rng.uniform(0.0, 10.0, n),
        np.clip(700.0 * np.exp(rng.normal(0.0, 0.9, n)), 30.0, 7_300.0),
    )
    ids = np.array([f"card_{i:06d}" for i in range(cards)], dtype=object)
    return _Population(
        ids=ids,
        card_type=card_type[:cards],
        customer_age=customer_age[:cards],
        credit_limit=credit_limit[:cards],
        region=region[:cards].astype(np.int64),
        spend_level=spend_level[:cards],
        activity=activity[:cards],
        utilization=utilization[:cards],
        age_at_start_days=age_at_start[:cards],
    )


def _draw_offsets(
    rng: np.random.Generator, behaviour: _Behaviour, rows: int, start: datetime, days: float
) -> IntArray:
    """Sorted nanosecond offsets from `start`, with an hour-of-day and weekend cycle.

    The window is cut at every hour boundary; a piece is chosen with probability
    proportional to its length times its hour's weight, then a point uniformly inside it.
    """
    start_ns = int(pd.Timestamp(start).value)
    end_ns = start_ns + round(days * _NS_PER_DAY)
    first_boundary = (start_ns // _NS_PER_HOUR + 1) * _NS_PER_HOUR
    bounds = np.concatenate(
        [[start_ns], np.arange(first_boundary, end_ns, _NS_PER_HOUR, dtype=np.int64), [end_ns]]
    ).astype(np.int64)
    lefts, lengths = bounds[:-1], np.diff(bounds)
    hour = (lefts // _NS_PER_HOUR) % 24
    weekday = (lefts // _NS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    weights = np.asarray(behaviour.hour_weights)[hour] * np.where(weekday >= 5, 1.15, 1.0)
    mass = np.cumsum(lengths * weights)
    piece = np.searchsorted(mass, rng.random(rows) * mass[-1], side="right")
    piece = np.minimum(piece, len(lengths) - 1)
    inside = np.floor(rng.random(rows) * lengths[piece]).astype(np.int64)
    offsets = (lefts[piece] - start_ns + inside) // _NS_PER_US * _NS_PER_US
    return np.sort(offsets)


def _draw_transactions(
    rng: np.random.Generator,
    behaviour: _Behaviour,
    rows: int,
    start: datetime,
    days: float,
    seed: int,
) -> pd.DataFrame:
    """Draw every column but the label, vectorized over rows."""
    cards = int(np.clip(rows // ROWS_PER_CARD, 10, MAX_CARDS))
    population = _population(cards)
    offsets = _draw_offsets(rng, behaviour, rows, start, days)
    weights = population.activity / population.activity.sum()
    card = rng.choice(cards, size=rows, p=weights).astype(np.int64)
    offsets = _unique_per_card(card, offsets, round(days * _NS_PER_DAY))
    stamps_ns = int(pd.Timestamp(start).value) + offsets

    hour = (stamps_ns // _NS_PER_HOUR) % 24
    weekday = (stamps_ns // _NS_PER_DAY + 3) % 7
    night = np.isin(hour, _NIGHT_HOURS)

    channel = rng.choice(3, size=rows, p=behaviour.channel_p).astype(np.int64)
    pos, online, atm = channel == 0, channel == 1, channel == 2
    # Shoppers go online more at night; flip a share of night-time POS to online.
    channel = np.where(pos & night & (rng.random(rows) < 0.35), 1, channel)
    pos, online, atm = channel == 0, channel == 1, channel == 2

    merchant = np.full(rows, _CASH, dtype=np.int64)
    for mask, probs in ((pos, behaviour.pos_merchant_p), (online, behaviour.online_merchant_p)):
        merchant[mask] = rng.choice(len(MERCHANT_CATEGORIES), size=int(mask.sum()), p=probs)

    entry = np.full(rows, ENTRY_MODES.index("online"), dtype=np.int64)
    entry[pos] = rng.choice(4, size=int(pos.sum()), p=[0.45, 0.10, 0.40, 0.05])
    entry[atm] = rng.choice(2, size=int(atm.sum()), p=[0.85, 0.15])

    card_type = population.card_type[card]
    spend = population.spend_level[card]
    noise = rng.normal(0.0, 1.0, rows)
    amount = (
        _CATEGORY_MEDIAN_AMOUNT[merchant] * spend * np.exp(0.6 * noise + behaviour.amount_log_shift)
    )
    amount = np.where(atm, np.maximum(20.0, np.round(amount / 20.0) * 20.0), amount)
    amount = np.maximum(0.5, np.round(amount, 2))
    avg_amount_30d = np.round(55.0 * spend * np.exp(rng.normal(0.0, 0.15, rows)), 2)

    foreign_p = np.where(online, behaviour.online_foreign_rate, behaviour.foreign_rate)
    foreign = rng.random(rows) < foreign_p
    home_km = np.where(
        foreign,
        1_500.0 * np.exp(rng.normal(0.0, 0.7, rows)),
        np.minimum(800.0, 5.0 * np.exp(rng.normal(0.0, 1.1, rows))),
    )
    just_arrived = foreign & (rng.random(rows) < 0.4)
    last_km = np.where(
        just_arrived,
        home_km * rng.uniform(0.6, 1.1, rows),
        3.0 * np.exp(rng.normal(0.0, 1.3, rows)),
    )

    activity = population.activity[card] * behaviour.velocity
    count_1h = rng.poisson(0.35 * activity)
    count_24h = count_1h + rng.poisson(3.0 * activity)

    risk_logit = np.log(_CATEGORY_RISK[merchant] / (1.0 - _CATEGORY_RISK[merchant]))
    merchant_risk = _sigmoid(risk_logit + rng.normal(0.0, 0.9, rows))
    compromised = online & (rng.random(rows) < behaviour.compromised_device_rate)
    trust = np.where(
        online,
        np.where(compromised, rng.beta(1.5, 4.0, rows), rng.beta(6.0, 2.2, rows)),
        rng.beta(9.0, 1.3, rows),
    )

    pin_entry = np.isin(entry, (ENTRY_MODES.index("chip"),)) | atm
    failed_pins = np.where(
        pin_entry & (rng.random(rows) < 0.07), 1 + rng.poisson(0.6, rows), 0
    ).astype(np.int64)
    utilization = np.clip(population.utilization[card] + rng.normal(0.0, 0.04, rows), 0.0, 1.0)
    card_age = np.floor(population.age_at_start_days[card] + offsets / _NS_PER_DAY)

    # Ids stay unique across batches even when one explicit seed is reused week after week.
    tag = f"{_stable_int(f'{seed}|{start.isoformat()}') & 0xFFFFFFFF:08x}"
    return pd.DataFrame(
        {
            TRANSACTION_ID: _transaction_ids(tag, rows),
            ENTITY: population.ids[card],
            TIMESTAMP: pd.to_datetime(stamps_ns, unit="ns", utc=True),
            "amount": amount,
            "hour_of_day": hour.astype(np.int64),
            "day_of_week": weekday.astype(np.int64),
            "is_weekend": (weekday >= 5).astype(np.int64),
            "distance_from_home_km": np.round(home_km, 1),
            "distance_from_last_txn_km": np.round(last_km, 1),
            "card_age_days": card_age.astype(np.int64),
            "customer_age": population.customer_age[card],
            "credit_limit": population.credit_limit[card],
            "utilization": np.round(utilization, 4),
            "txn_count_1h": count_1h.astype(np.int64),
            "txn_count_24h": count_24h.astype(np.int64),
            "avg_amount_30d": avg_amount_30d,
            "amount_to_avg_ratio": np.round(amount / avg_amount_30d, 4),
            "merchant_risk_score": np.round(merchant_risk, 4),
            "device_trust_score": np.round(trust, 4),
            "failed_pin_attempts": failed_pins,
            "foreign_transaction": foreign.astype(np.int64),
            "merchant_category": _labels(MERCHANT_CATEGORIES, merchant),
            "channel": _labels(CHANNELS, channel),
            "card_type": _labels(CARD_TYPES, card_type),
            "entry_mode": _labels(ENTRY_MODES, entry),
            "home_region": _labels(REGIONS, population.region[card]),
        }
    )


def _unique_per_card(card: IntArray, offsets: IntArray, window_ns: int) -> IntArray:
    """Nudge the rare same-card, same-microsecond collisions so (card, time) is a key."""
    offsets = offsets.copy()
    while True:
        order = np.lexsort((offsets, card))
        same = (np.diff(card[order]) == 0) & (np.diff(offsets[order]) == 0)
        if not same.any():
            return offsets
        clash = order[1:][same]
        step = np.where(offsets[clash] + _NS_PER_US < window_ns, _NS_PER_US, -_NS_PER_US)
        offsets[clash] += step
        # Which card a row belongs to does not depend on its time, so re-sorting the
        # times alone keeps the frame ordered by event time without skewing anything.
        offsets = np.sort(offsets)


def _transaction_ids(tag: str, rows: int) -> npt.NDArray[np.object_]:
    numbers = pd.Series(np.arange(rows)).astype(str).str.zfill(9)
    ids: npt.NDArray[np.object_] = ("tx_" + tag + "_" + numbers).to_numpy(dtype=object)
    return ids


def _labels(names: tuple[str, ...], codes: IntArray) -> npt.NDArray[np.object_]:
    return np.asarray(names, dtype=object)[codes]


def _sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------- labels


def _baseline_logit(frame: pd.DataFrame) -> FloatArray:
    """Classic fraud: takeover at night, travel, risky merchants, new cards, PIN guessing.

    Every term is a threshold or an interaction, so a linear model sees only a blur of
    it; the unobserved risk factor added by the caller keeps the classes overlapping.
    """
    x = _Columns(frame)
    ratio, online = x.num("amount_to_avg_ratio"), x.cat("channel") == "online"
    night = np.isin(x.num("hour_of_day"), _NIGHT_HOURS)
    logit = np.full(len(frame), -4.9)
    logit += 5.4 * (online & night & (ratio > 2.5))
    logit += 2.0 * (night & online)
    logit += 5.0 * (
        (x.num("foreign_transaction") == 1) & (x.num("distance_from_last_txn_km") > 300)
    )
    logit += 5.6 * ((x.num("merchant_risk_score") > 0.45) & (x.num("device_trust_score") < 0.5))
    logit += 5.0 * ((x.num("card_age_days") < 21) & (x.num("amount") > 100))
    logit += 5.4 * (x.num("failed_pin_attempts") >= 2)
    logit += 5.0 * ((x.num("txn_count_1h") >= 4) & (ratio > 2.0))
    logit += 5.0 * ((x.num("customer_age") >= 70) & online & (x.num("amount") > 150))
    logit += 4.6 * ((x.num("utilization") > 0.8) & (ratio > 1.5))
    return logit


def _concept_shift_logit(frame: pd.DataFrame) -> FloatArray:
    """New fraud: card testing with tiny tap/online charges, takeover on trusted devices.

    As strong as the baseline's patterns, so a model retrained on a few thousand
    post-shift rows learns them (gradient boosting: ROC AUC about 0.9 from 2,400 rows,
    where the baseline model scores about 0.55).
    """
    x = _Columns(frame)
    tap_or_online = np.isin(x.cat("entry_mode"), ("contactless", "online"))
    hour = x.num("hour_of_day")
    logit = np.full(len(frame), -4.8)
    logit += 5.4 * ((x.num("amount") < 12) & tap_or_online & (x.num("txn_count_1h") >= 1))
    logit += 5.0 * (
        np.isin(x.cat("merchant_category"), ("digital_goods", "electronics"))
        & (x.num("device_trust_score") > 0.75)
        & (x.num("card_age_days") > 365)
    )
    logit += 4.2 * ((x.cat("entry_mode") == "swipe") & (hour >= 10) & (hour < 16))
    logit += 1.0 * (x.num("failed_pin_attempts") >= 2)
    return logit


class _Columns:
    """Typed access to a frame's columns as numpy arrays (numeric or text)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def num(self, name: str) -> FloatArray:
        values: FloatArray = self._frame[name].to_numpy(dtype=np.float64)
        return values

    def cat(self, name: str) -> npt.NDArray[np.object_]:
        values: npt.NDArray[np.object_] = self._frame[name].to_numpy(dtype=object)
        return values


# --------------------------------------------------------------------------- defects


def _inject_nulls(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """About 2 % nulls in a never-null numeric column and 1 % in a categorical one."""
    numeric, categorical = DEFECT_COLUMNS[Defect.NULLS]
    rows = len(frame)
    count = max(1, round(NULL_FRACTION * rows))
    frame.loc[frame.index[rng.choice(rows, count, replace=False)], numeric] = np.nan
    count = max(1, round(NULL_FRACTION / 2 * rows))
    frame.loc[frame.index[rng.choice(rows, count, replace=False)], categorical] = None
    return frame


def _inject_out_of_range(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A few impossible values: negative amounts, a 250-year-old customer, hour 30."""
    amount, age, hour = DEFECT_COLUMNS[Defect.OUT_OF_RANGE]
    rows = len(frame)
    few = min(rows, OUT_OF_RANGE_ROWS)
    picked = frame.index[rng.choice(rows, few, replace=False)]
    frame.loc[picked, amount] = -np.round(rng.uniform(5.0, 500.0, few), 2)
    frame.loc[frame.index[rng.choice(rows, few, replace=False)], age] = 250
    frame.loc[frame.index[rng.choice(rows, few, replace=False)], hour] = 30
    return frame


def _inject_wrong_dtype(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A numeric column arrives as text, as from a spreadsheet export ("12,000.00")."""
    (column,) = DEFECT_COLUMNS[Defect.WRONG_DTYPE]
    distinct, inverse = np.unique(frame[column].to_numpy(dtype=np.float64), return_inverse=True)
    as_text = np.array([f"{v:,.2f}" for v in distinct], dtype=object)
    frame[column] = as_text[inverse]
    return frame


def _inject_missing_column(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """An upstream change dropped a feature column."""
    return frame.drop(columns=list(DEFECT_COLUMNS[Defect.MISSING_COLUMN]))


def _inject_duplicate_keys(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Overwrite some rows with copies of others (new transaction ids): a resent message."""
    rows = len(frame)
    if rows < 2:
        raise ValueError("a duplicate-keys defect needs a batch of at least 2 rows")
    count = max(1, min(rows // 2, round(DUPLICATE_FRACTION * rows)))
    picked = rng.choice(rows, 2 * count, replace=False)
    sources, targets = picked[:count], picked[count:]
    kept_ids = frame[TRANSACTION_ID].to_numpy()[targets]
    copied = frame.iloc[sources].copy()
    copied[TRANSACTION_ID] = kept_ids
    copied.index = frame.index[targets]
    frame.loc[copied.index] = copied
    ordered = frame.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    return ordered


_DEFECT_INJECTORS = {
    Defect.NULLS: _inject_nulls,
    Defect.OUT_OF_RANGE: _inject_out_of_range,
    Defect.WRONG_DTYPE: _inject_wrong_dtype,
    Defect.MISSING_COLUMN: _inject_missing_column,
    Defect.DUPLICATE_KEYS: _inject_duplicate_keys,
}


def _iso_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """Datetime columns as ISO 8601 text (UTC with offset when timezone-aware).

    numpy formats a million stamps in well under a second; `strftime` takes seconds.
    """
    out = frame.copy(deep=False)
    for column in out.columns:
        series = out[column]
        aware = isinstance(series.dtype, pd.DatetimeTZDtype)
        if not aware and not pd.api.types.is_datetime64_dtype(series):
            continue
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None) if aware else series
        values = naive.to_numpy(dtype="datetime64[ns]")
        whole_us = bool((values.view(np.int64)[~np.isnat(values)] % _NS_PER_US == 0).all())
        text = np.datetime_as_string(values, unit="us" if whole_us else "ns")
        suffix = "+00:00" if aware else ""
        out[column] = np.where(np.isnat(values), "", np.char.add(text, suffix)).astype(object)
    return out
