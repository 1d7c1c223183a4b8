"""Which logged predictions the router assigned: the traffic the canary and the drift
monitor judge.

The canary compares champion and challenger on traffic the router split at random (a
stable hash of the entity, `serving.routing`), and the drift monitor compares the
champion's live answers with its training data. A client that pins a version
(`POST /v2/models/{name}/versions/{version}/infer`) chose the model itself: its rows
are answered, logged with `pinned` true and counted in the serving metrics, but mixed
into either comparison they would stand for whatever that client sends (a test suite,
a replay of hard cases), not for the random draw the statistics assume.
"""

from __future__ import annotations

import pandas as pd

PINNED = "pinned"
"""The prediction-log column: the client named the version that answered."""


def routed(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows the router assigned, pinned ones left out.

    A frame without the column, or a row without a value, holds routed rows: before a
    version could be pinned, every row was routed.
    """
    if PINNED not in predictions.columns:
        return predictions
    pinned = predictions[PINNED].astype("boolean").fillna(False).astype(bool)
    return predictions[~pinned]
