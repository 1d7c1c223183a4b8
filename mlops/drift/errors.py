"""Errors of the drift library, below the pipeline's `PipelineError`."""

from __future__ import annotations

from mlops.errors import PipelineError


class DriftError(PipelineError):
    """Drift cannot be computed on these inputs."""


class DriftInputError(DriftError):
    """The window or the reference does not fit the declared columns (missing, wrong type)."""


class ReferenceCacheError(DriftError):
    """A cached reference is missing, unreadable or of another format version."""
