"""Matplotlib figures written as PNG artifacts: each trial's learning curves.

Drawn on a pyplot-free Figure with the Agg canvas, like the report's figures: no global
backend is set and no figure is left open in a process that trains trial after trial. Saved
with bbox_inches="tight", so a long title or label is never cut at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def learning_curves_figure(history: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Train vs validation loss and accuracy per epoch, like the seed lab's plot_history.

    The gap between the two accuracy curves is what the overfit score measures. Epochs are
    whole numbers, so the x ticks are too (matplotlib would put 1.5 between two epochs).
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label, style in ((metric, "train", "-o"), (f"val_{metric}", "validation", "-s")):
            values = history.get(key, [])
            ax.plot(range(1, len(values) + 1), values, style, label=label, markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def plot_learning_curves(
    history: Mapping[str, Sequence[float]], path: str | Path, title: str = ""
) -> Path:
    """`learning_curves_figure` saved as a PNG at `path`."""
    path = Path(path)
    learning_curves_figure(history, title).savefig(path, dpi=100, bbox_inches="tight")
    return path
