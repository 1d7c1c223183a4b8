"""Retry policy: retry transient failures (network, locks), never a refused gate."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from mlops.errors import PipelineError


def transient_only(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect `retry_condition_fn`: False for our own deliberate refusals."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, PipelineError)
