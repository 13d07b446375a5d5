"""The report's figures: small matplotlib PNGs that read on GitHub.

Drawn on pyplot-free Figures with the Agg canvas (no global backend, nothing left open) and
saved without the Software/date metadata, so the same runs give the same bytes. Saved with
bbox_inches="tight": whatever a label needs (a long configuration name, rotated group names)
is inside the image, never cut at its edge.

draw_figures picks what to draw from a dataset's runs and leaderboard (the top
configurations' metric histories are the report's only per-run fetches) and copy_previews
copies each policy's augmentation preview artifact.

May import benchmark.metrics, benchmark.report.load and benchmark.report.stats only.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mlflow.exceptions import MlflowException

from benchmark import metrics as M
from benchmark.report.load import DatasetRuns, slug
from benchmark.report.stats import Effect, pareto_front

DPI = 100  # 800 x 400 px figures: sharp on GitHub, a few tens of kB each
PNG_METADATA = {"Software": None}  # no matplotlib version in the bytes
PAD_INCHES = 0.15  # white margin around the tight bounding box
TOP_CURVES = 3  # configurations whose learning curves are drawn (the only history fetches)
CURVE_PAIRS = ((M.ACCURACY, M.VAL_ACCURACY), (M.LOSS, M.VAL_LOSS))
PREVIEW_ARTIFACT = "augmentation_preview.png"  # written by benchmark/trial.py


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    """Fixed margins: constrained layout measures every label and took most of the time;
    the tight bounding box at saving is what keeps labels from being cut."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.25 / width, bottom=0.9 / height,
                        top=1 - 0.45 / height, wspace=0.35, hspace=0.45)  # fmt: skip
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, metadata=PNG_METADATA, bbox_inches="tight",
                pad_inches=PAD_INCHES)  # fmt: skip
    return path


def learning_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]], path: Path, pairs: Sequence[tuple]
) -> Path:
    """One column per configuration, one row per (train, validation) metric pair.

    `curves[label][metric]` is the per-epoch mean over the configuration's seeds.
    """
    labels = list(curves)
    fig, axes = _figure(3.6 * len(labels), 2.8 * len(pairs), ncols=len(labels), nrows=len(pairs))
    for col, label in enumerate(labels):
        for row, (train, val) in enumerate(pairs):
            ax = axes[row][col]
            for key, name, style in ((train, "train", "-o"), (val, "validation", "-s")):
                ys = curves[label].get(key, [])
                ax.plot(range(1, len(ys) + 1), ys, style, label=name, markersize=3)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(train)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(label, fontsize=9)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    return _save(fig, path)


def scatter(
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    front: Sequence[int] = (),
    logx: bool = False,
    marked: Sequence[int] = (),
    marked_label: str = "",
) -> Path:
    """One point per configuration; the Pareto front (indices into xs) drawn and named;
    `marked` points (indices) drawn apart, hollow, as `marked_label`."""
    fig, axes = _figure(7, 4.5)
    ax = axes[0][0]
    plain = [i for i in range(len(xs)) if i not in set(marked)]
    ax.scatter([xs[i] for i in plain], [ys[i] for i in plain], s=18, color="tab:blue",
               alpha=0.7, label="configuration")  # fmt: skip
    if marked:
        ax.scatter([xs[i] for i in marked], [ys[i] for i in marked], s=24, facecolors="none",
                   edgecolors="tab:orange", label=marked_label)  # fmt: skip
    if front:
        fx, fy = [xs[i] for i in front], [ys[i] for i in front]
        ax.step(fx, fy, where="post", color="tab:red", label="Pareto front")
        ax.scatter(fx, fy, s=30, color="tab:red", zorder=3)
        for i in front:
            left = _right_half(xs, xs[i], logx)  # a name in the right half reads leftwards
            ax.annotate(labels[i], (xs[i], ys[i]), fontsize=7, xytext=(-3 if left else 3, 3),
                        textcoords="offset points", ha="right" if left else "left")  # fmt: skip
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _right_half(xs: Sequence[float], x: float, log: bool) -> bool:
    """Whether x lies in the right half of the range of xs (log scale if `log`): labels of
    those points are written to their left, so they stay inside the axes."""
    lo, hi = min(xs), max(xs)
    if log and lo > 0:
        lo, hi, x = np.log10(lo), np.log10(hi), np.log10(x)
    return hi > lo and (x - lo) / (hi - lo) > 0.5


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: Path,
    *,
    ylabel: str,
) -> Path:
    """Bars per group, one colour per series; each value is (mean, std), NaN = no bar.

    An error bar is drawn only where there is a spread to show: a NaN std (one seed) or a
    zero one gets none, not a flat cap that reads as "measured, no variation".
    """
    fig, axes = _figure(max(5.0, 1.2 * len(groups) + 2), 4)
    ax = axes[0][0]
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        at = x + (i - (len(series) - 1) / 2) * width
        means = np.array([m for m, _ in values], dtype=float)
        stds = np.array([s for _, s in values], dtype=float)
        ax.bar(at, means, width, label=name)
        spread = np.isfinite(stds) & (stds > 0) & np.isfinite(means)
        if spread.any():
            ax.errorbar(at[spread], means[spread], yerr=stds[spread], fmt="none",
                        ecolor="black", elinewidth=1, capsize=3)  # fmt: skip
    ax.set_xticks(x, groups, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, title="augmentation", title_fontsize=8)
    return _save(fig, path)


# --- a dataset's figures ----------------------------------------------------------------


def draw_figures(
    runs: DatasetRuns, board: pd.DataFrame, effects: list[Effect], fig_dir: Path
) -> list[Path]:
    files: list[Path] = []
    if board.empty:
        return files
    curves = {}
    client = mlflow.MlflowClient()
    for r in board.head(TOP_CURVES).to_dict("records"):
        per_step: dict[str, dict[int, list[float]]] = {}
        for run_id in r["run_ids"]:
            for key in (k for pair in CURVE_PAIRS for k in pair):
                for m in client.get_metric_history(run_id, key):
                    per_step.setdefault(key, {}).setdefault(m.step, []).append(m.value)
        curves[f"{r['label']} ({r['n']} seed(s))"] = {
            k: [float(np.mean(v[s])) for s in sorted(v)] for k, v in per_step.items()
        }
    files.append(learning_curves(curves, fig_dir / "learning_curves.png", CURVE_PAIRS))

    for metric, name, xlabel, logx in (
        (M.PARAM_COUNT, "accuracy_vs_params.png", "parameters", True),
        (M.TRAIN_TIME, "accuracy_vs_time.png", "training time (s)", False),
    ):
        ok = board[metric].notna() & board[M.VAL_ACCURACY].notna()
        if ok.any():
            files.append(_accuracy_vs(board[ok], metric, fig_dir / name, xlabel, logx))

    if effects:
        archs = sorted({_group(e) for e in effects})
        policies = sorted({e.policy for e in effects})
        series = {"none": [next(e.test_none for e in effects if _group(e) == a) for a in archs]}
        for p in policies:
            found = {_group(e): e.test_aug for e in effects if e.policy == p}
            series[p] = [found.get(a, (math.nan, math.nan)) for a in archs]
        files.append(
            grouped_bars(archs, series, fig_dir / "augmentation_effect.png", ylabel="test accuracy")
        )
    files += copy_previews(runs, fig_dir)
    return files


def _group(effect: Effect) -> str:
    """An architecture's bars: its name and the id of its configuration without
    augmentation (two architectures may share a name and differ in other settings)."""
    return f"{effect.arch} ({effect.none_label})" if effect.none_label else effect.arch


def prune_figures(fig_dir: Path, markdown: str) -> list[Path]:
    """Delete the PNGs of `fig_dir` that `markdown` no longer shows (a policy or a per-class
    figure of an earlier store): a report's folder holds its own figures only. Returns the
    paths deleted."""
    if not fig_dir.is_dir():
        return []
    orphans = [p for p in sorted(fig_dir.glob("*.png"))
               if f"]({fig_dir.name}/{p.name})" not in markdown]  # fmt: skip
    for path in orphans:
        path.unlink()
    return orphans


def _accuracy_vs(board: pd.DataFrame, metric: str, path: Path, xlabel: str, logx: bool) -> Path:
    """Validation accuracy against a metric, one point per configuration. Against time, the
    configurations timed only beside other load are drawn hollow and kept off the Pareto
    front: their wall time measured the neighbours too."""
    xs, ys = list(board[metric]), list(board[M.VAL_ACCURACY])
    marked: list[int] = []
    if metric == M.TRAIN_TIME and "timing" in board:
        marked = [i for i, t in enumerate(board["timing"]) if t == "contended"]
    trusted = [i for i in range(len(xs)) if i not in set(marked)]
    front = [trusted[i] for i in pareto_front([xs[i] for i in trusted], [ys[i] for i in trusted])]
    return scatter(xs, ys, list(board["label"]), path, xlabel=xlabel,
                   ylabel="validation accuracy", front=front, logx=logx, marked=marked,
                   marked_label="timed only beside other load")  # fmt: skip


def copy_previews(runs: DatasetRuns, fig_dir: Path) -> list[Path]:
    """One preview per policy, from its first run by (name, seed, id); none logged: skip."""
    done = runs.complete
    done = done[done["aug"] != "none"].sort_values(["aug", "label", "seed", "run_id"])
    files = []
    for policy, run_id in done.groupby("aug", sort=True)["run_id"].first().items():
        with tempfile.TemporaryDirectory() as tmp:
            try:
                got = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=PREVIEW_ARTIFACT, dst_path=tmp
                )
            except (MlflowException, OSError):
                continue  # no preview logged, or the artifact store is gone
            target = fig_dir / f"augmentation_{slug(str(policy))}.png"
            shutil.copyfile(got, target)
            files.append(target)
    return files
