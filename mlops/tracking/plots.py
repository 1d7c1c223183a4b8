"""Figures on runs: any matplotlib figure, and the two Optuna plots a reviewer opens first.

Figures are closed once logged: a long-lived worker that makes one per study would
otherwise keep every figure alive in pyplot's registry.
"""

from __future__ import annotations

import logging
import warnings

import optuna
from matplotlib.figure import Figure
from mlflow import MlflowClient
from optuna.trial import TrialState

logger = logging.getLogger(__name__)

OPTIMIZATION_HISTORY = "optuna/optimization_history.png"
PARAM_IMPORTANCES = "optuna/param_importances.png"


def log_figure(run_id: str, fig: Figure, path: str, *, client: MlflowClient | None = None) -> None:
    """Store a figure as an artifact of a run (PNG, path relative to the run root)."""
    from matplotlib import pyplot as plt  # lazily: pyplot picks a backend on import

    (client or MlflowClient()).log_figure(run_id, fig, path)
    plt.close(fig)


def study_figures(study: optuna.Study) -> dict[str, Figure]:
    """The optimization history and, given two complete trials, parameter importances.

    Importances need a model fitted over complete trials, so they are skipped (with a
    log line, not an error) while fewer than two exist or when they cannot be computed.
    """
    figures: dict[str, Figure] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if complete:
            axes = optuna.visualization.matplotlib.plot_optimization_history(study)
            figures[OPTIMIZATION_HISTORY] = _figure_of(axes)
        if len(complete) < 2:
            logger.info(
                "study %s: no importances with %d complete trials", study.study_name, len(complete)
            )
            return figures
        try:
            axes = optuna.visualization.matplotlib.plot_param_importances(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            logger.warning("study %s: parameter importances unavailable: %s", study.study_name, exc)
        else:
            figures[PARAM_IMPORTANCES] = _figure_of(axes)
    return figures


def log_study_plots(
    run_id: str, study: optuna.Study, *, client: MlflowClient | None = None
) -> list[str]:
    """Log `study_figures` on a run (usually the parent); returns the artifact paths."""
    figures = study_figures(study)
    for path, fig in figures.items():
        log_figure(run_id, fig, path, client=client)
    return list(figures)


def _figure_of(axes: object) -> Figure:
    figure = getattr(axes, "figure", None)
    if not isinstance(figure, Figure):
        raise TypeError(f"expected matplotlib axes, got {type(axes).__name__}")
    figure.tight_layout()
    return figure
