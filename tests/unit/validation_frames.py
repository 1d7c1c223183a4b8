"""Small, deterministic frames for the validation tests (independent of mlops.synthetic).

Values are drawn from bounded distributions and nulls are placed on a fixed stride, so a
clean batch passes the contract learned from the reference every time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlops.contracts import DatasetRef
from mlops.dataset_spec import DatasetSpec, Task
from mlops.settings import RowPolicy, Settings, ValidationSettings
from mlops.sources import ingest_batch
from mlops.validation import ReferenceProfile, learn_profile

SPEC = DatasetSpec(
    name="payments",
    entity="customer_id",
    timestamp="event_timestamp",
    label="is_fraud",
    task=Task.BINARY,
)
CUSTOMERS = 500
MERCHANTS = ("fuel", "grocery", "online", "travel")
COUNTRIES = ("DE", "FR", "US")


def make_frame(rows: int = 2_000, seed: int = 0, start: str = "2026-01-01") -> pd.DataFrame:
    """A batch with unique (customer_id, event_timestamp) keys and 10 % nulls in `tip`."""
    rng = np.random.default_rng(seed)
    position = np.arange(rows)
    tip = rng.uniform(0, 20, rows)
    tip[position % 10 == 0] = np.nan
    return pd.DataFrame(
        {
            "customer_id": position % CUSTOMERS,
            "event_timestamp": pd.Timestamp(start, tz="UTC")
            + pd.to_timedelta(position // CUSTOMERS, unit="h"),
            "is_fraud": np.where(position % 7 == 0, 1, 0),
            "amount": rng.uniform(0, 100, rows),
            "score": rng.uniform(-1, 1, rows),
            "age": rng.integers(18, 90, rows),
            "tip": tip,
            "merchant": rng.choice(MERCHANTS, rows),
            "country": rng.choice(COUNTRIES, rows),
        }
    )


def reference_profile(rows: int = 2_000) -> ReferenceProfile:
    """The profile learned from the seed-0 reference frame."""
    return learn_profile(SPEC, make_frame(rows, seed=0), "f" * 64)


def ingest(
    frame: pd.DataFrame, folder: Path, settings: Settings, name: str = "batch"
) -> tuple[pd.DataFrame, DatasetRef]:
    """Write the frame as a parquet source file and snapshot it like the pipeline does."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return ingest_batch(SPEC.with_source_path(path), settings)


def with_policy(settings: Settings, policy: RowPolicy, **changes: float) -> Settings:
    """The same settings with another row policy (and other validation knobs)."""
    validation = ValidationSettings(policy=policy, **changes)
    copied: Settings = settings.model_copy(update={"validation": validation})
    return copied
