"""Feedback labels as the monitors and the canary read them.

Labels reach the prediction log as text, whatever the client sent ("1", "1.0", "true"),
so one normal form decides which class a label names, and only the latest label of a
prediction counts (a client may correct one it sent before).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def normalise_label(label: object) -> str:
    """One spelling per class: "true"/"1.0"/" 1" -> "1", "false"/"0.0" -> "0"."""
    text = str(label).strip().lower()
    if text in ("true", "false"):
        return "1" if text == "true" else "0"
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def latest_labels(feedback: pd.DataFrame, positive_label: str = "1") -> pd.Series:
    """The latest label of each prediction id (by `ts` when present): 1.0 for
    `positive_label`, else 0.0, indexed by prediction id."""
    if feedback.empty or "label" not in feedback.columns:
        return pd.Series(dtype=np.float64)
    ordered = feedback.dropna(subset=["label"])
    if "ts" in ordered.columns:
        ordered = ordered.assign(ts=pd.to_datetime(ordered["ts"], utc=True)).sort_values(
            "ts", kind="stable"
        )
    latest = ordered.drop_duplicates("prediction_id", keep="last")
    positive = normalise_label(positive_label)
    values = [float(normalise_label(label) == positive) for label in latest["label"]]
    return pd.Series(values, index=latest["prediction_id"].astype(str).to_numpy(), dtype=float)
