"""The report's "Where it fails": the best configuration's weakest classes and most confused
pairs on the test split, from the `per_class.json` each of its trial runs logged, and their
confusion matrix (summed over seeds, rows normalised) as a figure.

May import benchmark.train.perclass (the trial's own per-class format and figure),
benchmark.report.figures and benchmark.report.load.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from benchmark.report.figures import _save
from benchmark.report.markdown import table
from benchmark.train.perclass import PER_CLASS_FILE, confusion_figure

WEAKEST = 5  # classes listed
PAIRS = 5  # confused pairs listed
FIGURE = "confusion_matrix.png"


def per_class_of(run_ids: Sequence[str]) -> list[dict]:
    """The per_class.json of each run that logged one (runs from before: none)."""
    found = []
    for run_id in run_ids:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=PER_CLASS_FILE, dst_path=tmp
                )
            except (MlflowException, OSError):
                continue
            found.append(json.loads(Path(path).read_text()))
    return found


def where_it_fails(best: pd.Series | None, fig_dir: Path) -> tuple[str, list[Path]]:
    """The section's markdown and its figure, for the best configuration's board row."""
    if best is None:
        return "No completed trials.", []
    results = per_class_of(list(best["run_ids"]))
    names = results[0]["class_names"] if results else []
    results = [r for r in results if r["class_names"] == names]
    if not results:
        return (f"The best configuration, {best['label']}, logged no per-class results "
                "(its runs predate them).", [])  # fmt: skip
    m = np.sum([np.asarray(r["confusion_matrix"]) for r in results], axis=0)
    support, right = m.sum(axis=1), np.diag(m)
    recall = np.divide(right, support, out=np.zeros(len(names)), where=support > 0)
    predicted = m.sum(axis=0)
    precision = np.divide(right, predicted, out=np.zeros(len(names)), where=predicted > 0)
    n = len(results)
    lead = (f"The best configuration, **{best['label']}**, on the test split "
            f"({int(m.sum()) // n} images{', summed over ' + str(n) + ' seeds' if n > 1 else ''}"
            f"; accuracy {right.sum() / max(m.sum(), 1):.3f}).")  # fmt: skip
    order = sorted(range(len(names)), key=lambda i: (recall[i], names[i]))[:WEAKEST]
    rows = []
    for i in order:
        off = [(m[i, j], names[j]) for j in range(len(names)) if j != i and m[i, j]]
        worst = max(off, key=lambda p: (p[0], [-ord(c) for c in p[1]]), default=None)
        mostly = f"{worst[1]} ({worst[0] / support[i]:.0%})" if worst else ""
        rows.append([names[i], f"{recall[i]:.3f}", f"{precision[i]:.3f}", int(support[i]), mostly])
    weakest = table("class | accuracy | precision | test images | most often taken for",
                    rows, right=(1, 2, 3))  # fmt: skip
    pairs = sorted(((int(m[i, j]), i, j) for i in range(len(names)) for j in range(len(names))
                    if i != j and m[i, j]), key=lambda p: (-p[0], p[1], p[2]))[:PAIRS]  # fmt: skip
    confused = table(
        "true class | predicted as | images | share of the true class",
        [[names[i], names[j], c, f"{c / support[i]:.0%}"] for c, i, j in pairs],
        right=(2, 3),
    )
    fig = _save(confusion_figure(m, names, f"{best['label']}: test confusion (rows normalised)"),
                fig_dir / FIGURE)  # fmt: skip
    text = "\n\n".join([
        lead, "Weakest classes (accuracy = share of the class's test images classified right):",
        weakest, "Most confused pairs:", confused if pairs else "None: every image right.",
        f"![Confusion matrix of the best configuration]({fig_dir.name}/{FIGURE})",
    ])  # fmt: skip
    return text, [fig]
