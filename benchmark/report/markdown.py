"""The report's markdown: tables and safe cells, and the sections that are tables of the runs
(leaderboard, augmentation effect, ablations, failures, run index) and the README index over
datasets. The header is in header.py, the sentences of the findings in findings.py.

May import benchmark.metrics, benchmark.report.load and benchmark.report.stats only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from benchmark import metrics as M
from benchmark.report.load import DatasetRuns, T, col, slug
from benchmark.report.stats import (
    CI_LEVEL,
    DASH,
    Effect,
    best_row,
    confirmed,
    epoch_range,
    has_value,
    mean_std,
    num,
    shown_order,
    spearman,
    with_ci,
)


def cell(v: Any) -> str:
    """Text safe inside a markdown table cell."""
    if not has_value(v) or v == "":
        return DASH
    return str(v).replace("|", "\\|").replace("\n", " ").strip()


def table(headers: str, rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A markdown table; `headers` is "a | b | c", `right` the right-aligned columns."""
    headers = headers.split(" | ")
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def utc(ts: Any) -> str:
    return DASH if pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC")


def distinct(series: pd.Series) -> str:
    values = sorted({str(v) for v in series.dropna() if str(v)})
    return ", ".join(values) if values else DASH


# --- one dataset ------------------------------------------------------------------------


FIRST_TABLE = "### Full length, on several seeds"
OTHER_TABLE = "### One seed, or a halving rung's shorter training"


def leaderboard(board: pd.DataFrame) -> str:
    """Two tables: the configurations trained at full length on several seeds (stats.
    confirmed), then the rest (one-seed trials, halving rungs); each ranked on validation."""
    if board.empty:
        return "No completed trials."
    probe = _has(board, M.PROBE_IMAGES_PER_S)  # `retime` re-measured some configurations
    first = confirmed(board)
    parts = [
        "Two tables, each ranked by validation accuracy of the tested weights (the last "
        "epoch's; with early stopping the restored best epoch's): the configurations trained "
        "at full length on 2 or more seeds, then the rest (one seed, or a halving rung's "
        "shorter training that only chose what to train further). Test accuracy is shown, "
        "never used to rank. The best configuration (Findings, the JSON summary) is the top "
        "row among those run on the most seeds (up to 3). Ids: see Configurations below.",
        "Values are mean ± sample std over seeds (a single seed shows the value alone). "
        "Train time is the wall time of all epochs, the first (tracing) epoch included; "
        "images/s leaves that warm-up epoch out. " + COST_NOTE + (PROBE_NOTE if probe else ""),
        "Overfit: gap = clean-train accuracy − validation accuracy > "
        f"{M.OVERFIT_GAP_THRESHOLD:.2f} or validation loss rise > "
        f"{M.VAL_LOSS_RISE_THRESHOLD:.2f}.",
    ]
    for title, rows in ((FIRST_TABLE, board[first]), (OTHER_TABLE, board[~first])):
        body = _board_table(rows, probe) if len(rows) else "None."
        parts.append(f"{title}\n\n{body}")
    return "\n\n".join(parts) + contended_note(board)


def _board_table(board: pd.DataFrame, probe: bool) -> str:
    heads = ("id | architecture | augmentation | params | MFLOPs | epochs | "
             "train time (s) | images/s | CPU ms/image | "
             + ("quiet images/s | " if probe else "") + "val acc (tested weights) | "
             "best val acc (epoch) | test acc | overfit gap | overfit | seeds | run")  # fmt: skip
    rows = [[
        r["label"], f"`{r['arch_label']}`", r["aug"],
        num(r[M.PARAM_COUNT], 0), num(r[M.FLOPS] / 1e6, 2), r["epochs"], *cost_cells(r),
        *([mean_std(r, M.PROBE_IMAGES_PER_S, 0)] if probe else []),
        mean_std(r, M.VAL_ACCURACY), mean_std(r, M.BEST_VAL_ACCURACY) + epoch_range(r),
        mean_std(r, M.TEST_ACCURACY), mean_std(r, M.OVERFIT_GAP), r["overfit"], str(r["n"]),
        f"`{r['run_ids'][0][:8]}`" + ("…" if r["n"] > 1 else ""),
    ] for r in board.to_dict("records")]  # fmt: skip
    return table(heads, rows, right=range(3, 13 + probe))


CONTENDED = "†"  # marks a cost measured only beside other load
COST_NOTE = (
    "Train time, images/s and CPU ms/image (the trial process's CPU time per training image, "
    "warm-up epoch left out) come from a configuration's clean runs when it has any: runs "
    "during whose fit other processes kept less than a quarter of a core busy."
)
PROBE_NOTE = (
    " Quiet images/s: a two-epoch probe of the configuration re-measured by "
    "`python -m benchmark retime` (validation included), comparable across rows."
)


def _has(board: pd.DataFrame, metric: str) -> bool:
    return metric in board and bool(board[metric].notna().any())


def cost_cells(r: Mapping[str, Any]) -> list[str]:
    """Train time, images/s and CPU ms/image of a summary row; the wall-time ones marked
    when the configuration was timed only beside other load."""
    mark = f" {CONTENDED}" if r.get("timing") == "contended" else ""
    wall = [mean_std(r, M.TRAIN_TIME, 1), mean_std(r, M.IMAGES_PER_S, 0)]
    return [w + mark if w != DASH else w for w in wall] + [mean_std(r, M.CPU_MS_PER_IMAGE, 3)]


def contended_note(board: pd.DataFrame) -> str:
    """The note under a table with costs marked †; empty when there are none."""
    n = int((col(board, "timing") == "contended").sum())
    if not n:
        return ""
    return (
        f"\n\n{CONTENDED} {n} configuration(s) timed only beside other load (tag "
        "`timing=contended`): their train time and images/s measure the neighbours too. "
        "Compare their CPU ms/image, which other load moves far less, or re-measure them on a "
        "quiet machine with `python -m benchmark retime`."
    )


def effect_table(effects: list[Effect]) -> str:
    if not effects:
        return "No architecture was trained both with and without augmentation."
    heads = ("configurations | architecture | policy | Δ test acc | Δ overfit gap | "
             "Δ train time (s) | seeds")  # fmt: skip
    rows = [[f"{e.none_label} → {e.aug_label}", e.arch, e.policy, with_ci(e.test),
             with_ci(e.gap), with_ci(e.time, 1), f"{e.n_none} none, {e.n_aug} aug"]
            for e in effects]  # fmt: skip
    return (
        "Each policy minus the same architecture without augmentation (difference of the "
        "means over seeds; configurations: the one without → the one with). Brackets: "
        f"{CI_LEVEL:.0%} confidence interval (Welch's t), given when both sides have 2 or more "
        "seeds. A negative Δ overfit gap means less overfitting.\n\n"
        + table(heads, rows, right=range(3, 6))
    )


def failures(runs: DatasetRuns) -> str:
    bad = runs.trials[~runs.trials["state"].isin(["complete", "running"])]
    if bad.empty:
        return "None: every trial run completed."
    number = pd.to_numeric(bad["label"].astype(str).str.extract(r"^C(\d+)$")[0], errors="coerce")
    bad = bad.assign(_n=number).sort_values(["state", "_n", "label", "seed", "run_id"])
    rows = [
        [r["state"], r["label"], str(r["seed"]), r.get(T(M.TAG_STATUS_REASON)), f"`{r['run_id']}`"]
        for r in bad.to_dict("records")
    ]
    return table("state | id | seed | reason | run", rows)


def run_index(board: pd.DataFrame) -> str:
    if board.empty:
        return DASH
    rows = [[r["label"], ", ".join(map(str, r["seeds"])),
             ", ".join(f"`{i}`" + (f" {CONTENDED}" if t == "contended" else "")
                       for i, t in zip(r["run_ids"], r["timings"], strict=True))]
            for r in shown_order(board).to_dict("records")]  # fmt: skip
    note = f" {CONTENDED}: the run trained beside other load (tag `timing=contended`)."
    marked = any("contended" in t for t in board["timings"])
    return f"MLflow run ids behind every leaderboard row.{note if marked else ''}\n\n" + table(
        "id | seeds | runs", rows
    )


# --- the index --------------------------------------------------------------------------


def index(boards: Mapping[str, pd.DataFrame], lead: str = "", command: str | None = None) -> str:
    """Best configuration per dataset (`boards`: dataset -> its leaderboard), and whether
    architecture rankings carry over; `lead` (the lab's answers) right under the title;
    `command`: the one that wrote the reports (the lab's, or `report`'s by default)."""
    rows = []
    for dataset, b in boards.items():
        if b.empty:
            rows.append([f"[{dataset}]({slug(dataset)}.md)", DASH, DASH, DASH, DASH, DASH, "0"])
            continue
        r = best_row(b)
        rows.append([f"[{dataset}]({slug(dataset)}.md)", f"`{r['label']}`",
                     mean_std(r, M.VAL_ACCURACY), mean_std(r, M.TEST_ACCURACY),
                     num(r[M.PARAM_COUNT], 0), r["overfit"], str(len(b))])  # fmt: skip
    heads = "dataset | best configuration | val acc | test acc | params | overfit | configurations"
    parts = [
        "# CNN benchmark reports",
        *([lead] if lead else []),
        "## Best per dataset",
        f"Generated by `{command or 'python -m benchmark report'}` from the MLflow runs; "
        "each dataset's page "
        "has the leaderboard, augmentation effect, figures and run ids. Best = highest "
        "validation accuracy of the tested weights among the configurations a search found "
        "(those trained by hand only when no search ran) run on the most seeds (up to 3).",
        table(heads, rows, right=(2, 3, 4, 6)),
        "## Does the ranking carry over between datasets?",
        rank_correlations(boards),
    ]
    return "\n\n".join(parts) + "\n"


def rank_correlations(boards: Mapping[str, pd.DataFrame]) -> str:
    """Spearman ρ of validation accuracy over the configurations (by name: depth, kernel,
    dense, augmentation) that two datasets share; the best run of a name counts."""
    by_name = {}
    for dataset, board in boards.items():
        if not board.empty:
            b = board.assign(base=board["label"].str.replace(r" \(.*\)$", "", regex=True))
            by_name[dataset] = b.groupby("base")[M.VAL_ACCURACY].max()
    rows, sentences = [], []
    names = sorted(by_name)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(by_name[a].index) & set(by_name[b].index))
            rho = spearman(by_name[a][shared], by_name[b][shared]) if shared else math.nan
            rows.append([a, b, str(len(shared)), num(rho, 2, sign=True)])
            if has_value(rho):
                how = ("rank alike" if rho >= 0.7 else "rank somewhat alike" if rho >= 0.3
                       else "rank in opposite order" if rho <= -0.3
                       else "do not rank alike")  # fmt: skip
                sentences.append(
                    f"The {len(shared)} configurations shared by {a} and {b} "
                    f"{how} (ρ = {num(rho, 2, sign=True)})."
                )
    if not rows:
        return "Only one dataset has completed trials: nothing to compare yet."
    note = " ".join(sentences) or "Too few shared configurations (need 3) to compare ranks."
    heads = "dataset | dataset | shared configurations | Spearman ρ"
    return table(heads, rows, right=(2, 3)) + "\n\n" + note
