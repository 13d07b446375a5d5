"""Matplotlib figures written as PNG artifacts (Agg backend: no screen needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_learning_curves(
    history: Mapping[str, Sequence[float]], path: str | Path, title: str = ""
) -> Path:
    """Train vs validation loss and accuracy per epoch, like the seed lab's plot_history.

    The gap between the two accuracy curves is what the overfit score measures.
    """
    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label, style in ((metric, "train", "-o"), (f"val_{metric}", "validation", "-s")):
            values = history.get(key, [])
            ax.plot(range(1, len(values) + 1), values, style, label=label, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
