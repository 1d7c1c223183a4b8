"""The world of a scenario: synthetic transactions sent to the service, labels sent late.

Every window's rows come from one shuffled pool per regime (baseline or shifted), so a
window draws from the same card population as the training data: a no-drift window
must look like the reference, or the monitor would raise false alarms. A transaction
happens when it is sent: the rows that land as labelled batches carry the instant they
were served as their event time, which is what the retraining window selects on.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from mlops import synthetic
from mlops.synthetic import ENTITY, LABEL, TIMESTAMP, Scenario, generate, write_batch

SIMULATED_START = datetime(2026, 1, 1, tzinfo=UTC)
"""Where the synthetic clock starts: it shapes the features (hour, weekday), nothing else."""
POOL_DAYS = 14.0
REQUEST_ROWS = 100
HOLDOUT_ROWS = 4_000


class Shift(StrEnum):
    """The change the world goes through after the baseline period."""

    CONCEPT = "concept"
    """Same features, new fraud patterns: only the late labels reveal it."""
    COVARIATE = "covariate"
    """Another mix of transactions, same labelling rules: the features reveal it."""

    @property
    def synthetic(self) -> Scenario:
        """The generator's scenario for the shifted regime."""
        return Scenario.CONCEPT_SHIFT if self is Shift.CONCEPT else Scenario.COVARIATE_SHIFT


@dataclass(frozen=True)
class Answer:
    """One served prediction and the truth the world knows about it."""

    prediction_id: str
    version: str
    prediction: str
    label: str

    @property
    def correct(self) -> bool:
        """The answer matched the label."""
        return self.prediction == self.label


class World:
    """Pools of baseline and shifted transactions, cut into windows, plus held-out rows."""

    def __init__(self, shift: Shift | None, rows_per_window: int, windows: int, seed: int) -> None:
        self.shift = shift
        self.rows_per_window = rows_per_window
        size = rows_per_window * windows
        self._pools = {False: self._pool(Scenario.BASELINE, size, seed)}
        if shift is not None:
            self._pools[True] = self._pool(shift.synthetic, size, seed + 1)
        self._seed = seed

    @staticmethod
    def _pool(scenario: Scenario, rows: int, seed: int) -> pd.DataFrame:
        frame = generate(scenario, rows, SIMULATED_START, days=POOL_DAYS, seed=seed)
        order = np.random.default_rng(seed).permutation(len(frame))
        return frame.iloc[order].reset_index(drop=True)

    def window(self, index: int, shifted: bool) -> pd.DataFrame:
        """The rows of window `index` (baseline or shifted regime)."""
        start = index * self.rows_per_window
        return self._pools[shifted].iloc[start : start + self.rows_per_window]

    def holdout(self, shifted: bool) -> pd.DataFrame:
        """Rows of a regime that are never sent: where old and new champions are compared."""
        scenario = self.shift.synthetic if shifted and self.shift else Scenario.BASELINE
        return generate(
            scenario, HOLDOUT_ROWS, SIMULATED_START, days=POOL_DAYS, seed=self._seed + 7
        )


def training_batch(rows: int, seed: int, out: Path) -> Path:
    """The baseline batch the first champion learns from (a month before the replay)."""
    start = datetime.now(UTC) - timedelta(days=30)
    frame = generate(Scenario.BASELINE, rows, start, days=POOL_DAYS, seed=seed)
    return write_batch(frame, out)


class TrafficClient:
    """Sends a window's rows to the service over HTTP and returns its labels later.

    `statuses` counts the HTTP status of every prediction request. A refused request
    raises, unless the client is `tolerant` (a soak counts refusals and goes on).
    """

    def __init__(self, url: str, *, tolerant: bool = False) -> None:
        self._client = httpx.Client(base_url=url, timeout=30.0)
        self._tolerant = tolerant
        self.statuses: Counter[int] = Counter()
        schema = self._client.get("/v1/models").raise_for_status().json()["input_schema"]
        self._features = [f["name"] for f in schema["features"]]
        self._numeric = {f["name"] for f in schema["features"] if f["type"] == "number"}

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def send(
        self, frame: pd.DataFrame, duration_s: float, request_rows: int = REQUEST_ROWS
    ) -> tuple[list[Answer], pd.DataFrame]:
        """Send `frame` in requests of `request_rows` spread evenly over `duration_s` seconds.

        Returns the answers and the rows as they happened: the event time of each row is
        the instant it was served (unique per row, so keys never collide).
        """
        answers: list[Answer] = []
        served_at: list[pd.Timestamp] = []
        requests = max(1, -(-len(frame) // request_rows))
        began = time.monotonic()
        for i in range(requests):
            part = frame.iloc[i * request_rows : (i + 1) * request_rows]
            now = pd.Timestamp.now(tz="UTC")
            served_at += [now + pd.Timedelta(microseconds=k) for k in range(len(part))]
            answers += self._predict(part)
            pause = began + duration_s * (i + 1) / requests - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        happened = frame.copy()
        happened[TIMESTAMP] = pd.DatetimeIndex(served_at)
        return answers, happened.reset_index(drop=True)

    def _predict(self, part: pd.DataFrame) -> list[Answer]:
        instances = [self._instance(row) for row in part.to_dict("records")]
        try:
            response = self._client.post("/v1/predict", json={"instances": instances})
        except httpx.HTTPError:
            if not self._tolerant:
                raise
            self.statuses[0] += 1  # no answer at all
            return []
        self.statuses[response.status_code] += 1
        if response.status_code != 200:
            if self._tolerant:
                return []
            raise RuntimeError(
                f"the service refused a request: {response.status_code} {response.text}"
            )
        predictions: list[dict[str, Any]] = response.json()["predictions"]
        labels = part[LABEL].astype(int).astype(str).tolist()
        return [
            Answer(p["prediction_id"], str(p["model_version"]), str(p["prediction"]), label)
            for p, label in zip(predictions, labels, strict=True)
        ]

    def _instance(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {ENTITY: str(row[ENTITY])}
        for name in self._features:
            value = row[name]
            if name in self._numeric:
                out[name] = None if math.isnan(float(value)) else float(value)
            else:
                out[name] = str(value)
        return out

    def post_labels(self, answers: list[Answer]) -> None:
        """Return the true labels of answered predictions (`POST /v1/feedback`)."""
        for i in range(0, len(answers), 1_000):
            labels = [
                {"prediction_id": a.prediction_id, "label": a.label} for a in answers[i : i + 1_000]
            ]
            self._client.post("/v1/feedback", json={"labels": labels}).raise_for_status()


def land_batch(happened: pd.DataFrame, landing: Path, index: int) -> Path:
    """Write a window's labelled rows to the landing folder, as a source system would."""
    columns = [c for c in synthetic.COLUMNS if c in happened.columns]
    return write_batch(happened[columns], landing / f"window-{index:04d}.parquet")


def accuracy(answers: list[Answer]) -> float | None:
    """Share of correct answers (None without answers)."""
    return None if not answers else sum(a.correct for a in answers) / len(answers)
