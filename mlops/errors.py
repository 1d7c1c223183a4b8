"""One small error hierarchy: pure code raises these, flows let them fail the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.contracts import ValidationReport


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose (as opposed to a bug)."""


class ConfigError(PipelineError):
    """Settings or a dataset spec are invalid or inconsistent with the data."""


class SourceError(PipelineError):
    """A data source cannot be read (missing file, unknown table, unsupported format)."""


class DataValidationError(PipelineError):
    """A batch failed its data contract; the report says which expectations and where."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__(report.summary())


class FeatureStoreError(PipelineError):
    """Feast refused or lost data (for example a training set that dropped rows)."""


class ArtifactIntegrityError(PipelineError):
    """A model artifact does not match its recorded digest, or its files are malformed."""


class QualityGateError(PipelineError):
    """A model did not pass a quality gate (baseline, champion or retention)."""


class RetentionError(QualityGateError):
    """A quantized variant kept too little of its fp32 parent's quality to be served."""
