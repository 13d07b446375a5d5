"""The report's figures: small matplotlib PNGs that read on GitHub.

Drawn on pyplot-free Figures with the Agg canvas (no global backend, nothing left open) and
saved without the Software/date metadata, so the same runs give the same bytes. Saved with
bbox_inches="tight": whatever a label needs (a long configuration name, rotated group names)
is inside the image, never cut at its edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100  # 800 x 400 px figures: sharp on GitHub, a few tens of kB each
PNG_METADATA = {"Software": None}  # no matplotlib version in the bytes
PAD_INCHES = 0.15  # white margin around the tight bounding box


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
) -> Path:
    """One point per configuration; the Pareto front (indices into xs) drawn and named."""
    fig, axes = _figure(7, 4.5)
    ax = axes[0][0]
    ax.scatter(xs, ys, s=18, color="tab:blue", alpha=0.7, label="configuration")
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
