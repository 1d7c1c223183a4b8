"""Knobs of the drift computation, defaults equal to Evidently's `DataDriftPreset`.

`DriftSettings` lives here until it moves into `mlops.settings.Settings` (as a nested
`drift` section); nothing in this package reads the environment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DriftSettings(BaseModel):
    """How a window is judged against its reference.

    Thresholds follow Evidently's precedence: a per-column threshold beats the numeric /
    categorical one, which beats `threshold`; unset means the method's own default
    (0.05 for the p-value tests, 0.1 for the distances). A threshold's meaning depends on
    the method it ends up with: a p-value tests drifts *below* it, a distance *at or
    above* it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    drift_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="The dataset drifts when at least this share of its columns drift "
        "(Evidently's DataDriftPreset default: 0.5).",
    )
    threshold: float | None = Field(default=None, gt=0.0, description="For every column.")
    num_threshold: float | None = Field(default=None, gt=0.0, description="Numeric columns.")
    cat_threshold: float | None = Field(default=None, gt=0.0, description="Categorical columns.")
    per_column_threshold: dict[str, float] = Field(
        default_factory=dict, description="Overrides for single columns."
    )
    min_rows: int = Field(
        default=100,
        ge=1,
        description="A window with fewer rows gets an explicit insufficient-data verdict.",
    )
    max_workers: int = Field(
        default=2,
        ge=1,
        description="Threads that test numeric columns in parallel (numpy releases the GIL).",
    )
    decision_threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="Probability above which a row is positive."
    )
    max_roc_auc_drop: float = Field(
        default=0.05,
        ge=0.0,
        description="Performance is degraded when ROC AUC falls more than this below the "
        "reference's.",
    )

    def threshold_for(self, column: str, *, categorical: bool) -> float | None:
        """The configured threshold of a column, or None for the method's default."""
        if column in self.per_column_threshold:
            return self.per_column_threshold[column]
        kind_threshold = self.cat_threshold if categorical else self.num_threshold
        if kind_threshold is not None:
            return kind_threshold
        return self.threshold
