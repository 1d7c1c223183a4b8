"""Figures for the tracker: learning curves, confusion matrix, ROC curves.

Figures are built on the object-oriented API with an explicit Agg canvas, never pyplot:
no global figure registry, no GUI backend, safe in worker threads. The caller saves or
logs them (``fig.savefig(path)`` or ``mlflow.log_figure``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlops.modeling.metrics import RocCurve
from mlops.modeling.train import EpochRecord


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def learning_curves_figure(history: Sequence[EpochRecord], best_epoch: int | None = None) -> Figure:
    """Train and validation loss per epoch, validation AUC on a second axis."""
    figure = _figure(7.0, 4.0)
    axes = figure.subplots()
    epochs = [r.epoch for r in history]
    axes.plot(epochs, [r.train_loss for r in history], marker="o", label="train loss")
    axes.plot(epochs, [r.valid_loss for r in history], marker="o", label="valid loss")
    axes.set_xlabel("epoch")
    axes.set_ylabel("cross-entropy")
    if best_epoch is not None:
        axes.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    auc_axes = axes.twinx()
    auc_axes.plot(
        epochs, [r.valid_auc for r in history], color="tab:green", marker=".", label="valid AUC"
    )
    auc_axes.set_ylabel("ROC AUC")
    handles, labels = axes.get_legend_handles_labels()
    more_handles, more_labels = auc_axes.get_legend_handles_labels()
    axes.legend(handles + more_handles, labels + more_labels, loc="center right")
    axes.set_title("Learning curves")
    return figure


def confusion_figure(matrix: npt.ArrayLike, classes: Sequence[int | str]) -> Figure:
    """A confusion matrix with counts in the cells (rows: true class, columns: predicted)."""
    counts = np.asarray(matrix)
    figure = _figure(1.2 * len(classes) + 2.5, 1.0 * len(classes) + 2.0)
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes)
    names = [str(c) for c in classes]
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = counts.max() / 2 if counts.size else 0
    for (i, j), value in np.ndenumerate(counts):
        color = "white" if value > threshold else "black"
        axes.text(j, i, str(value), ha="center", va="center", color=color)
    axes.set_title("Confusion matrix")
    return figure


def roc_figure(curves: Sequence[RocCurve]) -> Figure:
    """ROC curves with their AUC in the legend, against the chance diagonal."""
    figure = _figure(5.0, 5.0)
    axes = figure.subplots()
    for curve in curves:
        axes.plot(curve.fpr, curve.tpr, label=f"{curve.label} (AUC {curve.auc:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.legend(loc="lower right")
    axes.set_title("ROC")
    return figure
