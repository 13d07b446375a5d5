"""Figures a reader can use: nothing cut at the edge, no error bar where there is no spread,
whole-number epochs; and the report's words: relative paths, no trend from a handful."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer, ErrorbarContainer
from PIL import Image

from benchmark import metrics as M
from benchmark import report
from benchmark.report import figures
from benchmark.train.plots import learning_curves_figure, plot_learning_curves

LONG = "a-configuration-with-a-very-long-name-d3-k5-w256-c2-gap-randaugment"


def _edges_blank(path: Path, width: int = 3) -> bool:
    """Whether the outer frame of the PNG is plain background: a label cut at the edge of
    the image would leave its ink there."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    frame = [rgb[:width], rgb[-width:], rgb[:, :width], rgb[:, -width:]]
    return all((part == 255).all() for part in frame)


def _captured(monkeypatch) -> list:
    """The Figures report_figures saves, as well as the files."""
    figs: list = []
    real = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: figs.append(fig) or real(fig, path))
    return figs


def test_scatter_labels_at_the_right_edge_are_not_cut(tmp_path):
    xs, ys = [1e3, 1e4, 1e5, 1e6], [0.5, 0.6, 0.7, 0.8]
    labels = [f"{LONG}-{i}" for i in range(4)]
    path = figures.scatter(xs, ys, labels, tmp_path / "s.png", xlabel="parameters",
                           ylabel="validation accuracy", front=[0, 1, 2, 3], logx=True)  # fmt: skip
    assert _edges_blank(path)


def test_bars_long_group_names_not_cut_and_no_bar_without_spread(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    groups = [LONG, "d2-k3-w64"]
    one_seed = {"none": [(0.5, math.nan), (0.6, math.nan)], "seed": [(0.55, math.nan), (0.7, 0.0)]}
    path = figures.grouped_bars(groups, one_seed, tmp_path / "b.png", ylabel="test accuracy")
    assert _edges_blank(path)
    ax = figs[-1].axes[0]
    assert len([c for c in ax.containers if isinstance(c, BarContainer)]) == 2  # the bars...
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]  # ...no error bar

    spread = {"none": [(0.5, 0.02), (0.6, math.nan)], "seed": [(0.55, 0.01), (0.7, 0.03)]}
    figures.grouped_bars(groups, spread, tmp_path / "b2.png", ylabel="test accuracy")
    bars = [c for c in figs[-1].axes[0].containers if isinstance(c, ErrorbarContainer)]
    drawn = sum(len(c.lines[2][0].get_segments()) for c in bars)  # one segment per error bar
    assert drawn == 3  # the NaN one has none


def test_learning_curves_tick_whole_epochs_and_are_not_cut(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    curve = {"accuracy": [0.3, 0.5, 0.6], "val_accuracy": [0.3, 0.4, 0.45],
             "loss": [2.0, 1.5, 1.2], "val_loss": [2.1, 1.8, 1.7]}  # fmt: skip
    pairs = [("accuracy", "val_accuracy"), ("loss", "val_loss")]
    path = figures.learning_curves({LONG: curve, "d2": curve}, tmp_path / "lc.png", pairs)
    assert _edges_blank(path)
    for ax in figs[-1].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks

    fig = learning_curves_figure(curve, title=LONG * 2)  # each trial's own figure
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert _edges_blank(plot_learning_curves(curve, tmp_path / "trial.png", title=LONG * 2))


def _board(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "label": [f"c{i}" for i in range(n)],
        M.PARAM_COUNT: [1000.0 * (i + 1) for i in range(n)],
        M.VAL_ACCURACY: [0.5 + 0.05 * i for i in range(n)],
    })  # fmt: skip


@pytest.mark.parametrize("n", [3, 4])
def test_no_trend_claimed_from_fewer_than_5_configurations(n):
    board = _board(n)
    text = report._relation("parameter count", "more parameters", "fewer parameters",
                            board[M.PARAM_COUNT], board)  # fmt: skip
    assert "Too few configurations to tell a trend" in text
    assert "tended" not in text and "ρ" not in text
    assert "(the Pareto front)" in text  # the front is a fact, named all the same


def test_a_trend_is_named_from_5_configurations():
    board = _board(5)
    text = report._relation("parameter count", "more parameters", "fewer parameters",
                            board[M.PARAM_COUNT], board)  # fmt: skip
    assert "Over 5 configurations those with more parameters tended to score higher" in text


def test_search_table_shows_no_absolute_path():
    space, start = report.T("space_file"), pd.Timestamp("2026-01-01", tz="UTC")
    parents = pd.DataFrame([
        {"run_id": "r1", "start_time": start, space: "/home/someone/work/spaces/mine.yaml"},
        {"run_id": "r2", "start_time": start, space: "search_spaces/flowers17.yaml"},
    ])  # fmt: skip
    table = report.searches(parents)
    assert "/home/someone" not in table
    assert "| mine.yaml |" in table and "| search_spaces/flowers17.yaml |" in table


def test_search_table_says_a_timeout_was_the_budget():
    start = pd.Timestamp("2026-01-01", tz="UTC")
    parents = pd.DataFrame([{"run_id": "r1", "start_time": start, report.T("n_trials"): "1000",
                             report.T("seeds"): "3", report.T("timeout"): "4500.0"}])  # fmt: skip
    assert "1000 trials × 3 seed(s), timeout 75 min" in report.searches(parents)
