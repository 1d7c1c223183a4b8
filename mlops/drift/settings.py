"""Knobs of the drift computation, defaults equal to Evidently's `DataDriftPreset`.

The class lives in `mlops.settings` (the `drift` section, `MLOPS_DRIFT__*`); this
module names it for the drift package.
"""

from __future__ import annotations

from mlops.settings import DriftSettings

__all__ = ["DriftSettings"]
