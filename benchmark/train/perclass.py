"""Where a model fails: the test split's confusion matrix, per-class scores and its figure.

Each trial logs `per_class.json` and `confusion_matrix.png` from its test predictions; the
report reads the JSON back for its "Where it fails" section. Pure numpy and matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PER_CLASS_FILE = "per_class.json"
CONFUSION_FILE = "confusion_matrix.png"
SAMPLE = 8  # test images whose probabilities are kept: a logged model must reproduce them


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts: row = true class, column = predicted class; sums to the number of images."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return m


def per_class_results(
    probs: np.ndarray, y_true: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """What `per_class.json` holds, from the test split's predicted probabilities.

    Per class: `accuracy` is the share of that class's test images classified right (the
    usual "per-class accuracy"; it equals `recall`, and is kept under its own name because
    that is what a reader looks for), `precision` the share of the images predicted as the
    class that are it. `confused` lists the off-diagonal pairs, largest first.
    """
    n = len(class_names)
    m = confusion(y_true, np.argmax(probs, axis=1), n)
    support, predicted, right = m.sum(axis=1), m.sum(axis=0), np.diag(m)
    recall = np.divide(right, support, out=np.zeros(n), where=support > 0)
    precision = np.divide(right, predicted, out=np.zeros(n), where=predicted > 0)
    classes = {
        name: {"accuracy": float(recall[i]), "precision": float(precision[i]),
               "recall": float(recall[i]), "support": int(support[i])}
        for i, name in enumerate(class_names)
    }  # fmt: skip
    pairs = [(int(m[i, j]), i, j) for i in range(n) for j in range(n) if i != j and m[i, j]]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return {
        "split": "test",
        "test_size": int(m.sum()),
        "accuracy": float(right.sum() / max(m.sum(), 1)),
        "class_names": list(class_names),
        "classes": classes,
        "confusion_matrix": m.tolist(),
        "confused": [
            {
                "true": class_names[i],
                "predicted": class_names[j],
                "count": c,
                "share_of_true": float(c / support[i]),
            }
            for c, i, j in pairs
        ],  # fmt: skip
        "sample_probabilities": np.asarray(probs[:SAMPLE], dtype=float).tolist(),
    }


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """Rows normalised to 1 (each true class's images: where they went), class names on
    both axes, so a class with few test images reads as clearly as a large one."""
    m = np.asarray(matrix, dtype=float)
    rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    side = max(4.0, 0.45 * n + 2)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(rows, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if n <= 20:  # values fit in the cells
        for i in range(n):
            for j in range(n):
                if rows[i, j] >= 0.005:
                    color = "white" if rows[i, j] > 0.5 else "black"
                    ax.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color=color)  # fmt: skip
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_title(title or "test confusion matrix (rows normalised)")
    return fig


def save_confusion_figure(
    matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str = ""
) -> None:
    confusion_figure(matrix, class_names, title).savefig(path, dpi=110, bbox_inches="tight")
