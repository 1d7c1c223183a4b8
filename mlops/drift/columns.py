"""Which columns of a frame the drift computation looks at, and as what."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator

from mlops.dataset_spec import FeatureSchema


class ColumnKind(StrEnum):
    """How a column is compared: as numbers or as categories."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class DriftColumns(BaseModel):
    """The feature columns by kind, plus the optional prediction and label columns.

    `prediction` is the predicted probability of the positive class (binary task); its
    drift is reported apart from the features' and does not count in the drift share.
    `label` is the true class (0/1), present once ground truth arrived.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    prediction: str | None = None
    label: str | None = None

    @model_validator(mode="after")
    def _distinct(self) -> DriftColumns:
        named = [*self.numeric, *self.categorical]
        if not named:
            raise ValueError("at least one numeric or categorical column is needed")
        if len(set(named)) != len(named):
            raise ValueError("a column is listed twice among numeric and categorical")
        extra = [c for c in (self.prediction, self.label) if c is not None]
        if set(extra) & set(named) or len(set(extra)) != len(extra):
            raise ValueError("prediction and label must be distinct and not features")
        return self

    @classmethod
    def from_schema(
        cls, schema: FeatureSchema, *, prediction: str | None = None, label: str | None = None
    ) -> DriftColumns:
        """The columns of a dataset's resolved feature schema."""
        return cls(
            numeric=schema.numeric,
            categorical=schema.categorical,
            prediction=prediction,
            label=label,
        )

    @property
    def features(self) -> tuple[str, ...]:
        """All feature columns, numeric first (the order of the report)."""
        return (*self.numeric, *self.categorical)
