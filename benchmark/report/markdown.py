"""The report's markdown: tables and safe cells, and the sections that are tables of the runs
(header, searches, leaderboard, augmentation effect, ablations, failures, run index) and the
README index over datasets. The sentences of the findings are in findings.py.

May import benchmark.metrics, benchmark.report.load and benchmark.report.stats only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow.exceptions import MlflowException

from benchmark import metrics as M
from benchmark.report import load
from benchmark.report.load import TAG_BEST_CONFIG, TAG_ROLE, DatasetRuns, P, T, X, col, slug
from benchmark.report.stats import (
    CI_LEVEL,
    DASH,
    Effect,
    augmentation_effects,
    best_row,
    epoch_range,
    has_value,
    mean_std,
    num,
    spearman,
    summarize,
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


def header(runs: DatasetRuns) -> str:
    t, p = runs.trials, runs.parents
    states = t["state"].value_counts()
    counts = ", ".join(f"{states[s]} {s}" for s in sorted(states.index)) or "none"
    times = pd.concat([t["start_time"], p["start_time"]]).dropna()
    dates = f"{utc(times.min())} to {utc(times.max())}" if len(times) else DASH
    fixed = _shared_settings(runs.complete)
    lines = [
        f"- **Dataset**: `{runs.dataset}` (digest {distinct(col(t, T(M.TAG_DIGEST)))})",
        f"- **Image size**: {distinct(col(t, P('image_size')))} px (square)",
        f"- **Split sizes**: train {distinct(col(t, P('train_size')))}, validation "
        f"{distinct(col(t, P('val_size')))}, test {distinct(col(t, P('test_size')))} "
        f"(max_train_samples={distinct(col(t, P('max_train_samples')))})",
        f"- **Hardware**: {distinct(col(t, T(M.TAG_DEVICE)))}",
        f"- **Software**: TensorFlow {distinct(col(t, T(M.TAG_TF)))}, "
        f"Keras {distinct(col(t, T(M.TAG_KERAS)))}",
        f"- **Git commit**: {distinct(col(t, T(M.TAG_GIT)))}",
        f"- **Trial runs**: {len(t)} ({counts}), {dates}",
        f"- **Timing**: {_timing_counts(runs.complete)}",
        *still_running(t),
        f"- **Settings shared by every completed trial**: {fixed}",
    ]
    if len(p):
        labels = dict(zip(t["run_id"], t["label"], strict=True)) if "label" in t else {}
        lines.append("- **Searches** (MLflow parent runs):\n\n" + searches(p, labels))
    else:
        lines.append("- **Searches**: none logged (single `train` runs only)")
    return "\n".join(lines)


def _timing_counts(done: pd.DataFrame) -> str:
    """How many completed runs trained beside other load (contended), clean, or untagged."""
    timing = col(done, "timing").fillna("")
    n = {k: int((timing == k).sum()) for k in ("contended", "clean", "")}
    if not n["contended"] + n["clean"]:
        return (
            "not measured (every run was logged before trials measured the load beside "
            "them: its wall time may include other processes' work)"
        )
    text = (
        f"{n['contended']} of {len(done)} completed runs trained beside other load "
        f"(contended, marked {CONTENDED}), {n['clean']} clean"
    )
    return text + (f", {n['']} logged before the load was measured" if n[""] else "")


def _shared_settings(done: pd.DataFrame) -> str:
    skip = {P(n) for n in ("seed", "dataset", "augmentation", "depth", "kernel_size",
                           "dense_units", "filters")}  # fmt: skip
    same = [
        f"{c.removeprefix('params.')}={done[c].iloc[0]}"
        for c in sorted(c for c in done.columns if c.startswith("params.") and c not in skip)
        if done[c].notna().all() and done[c].nunique() == 1
    ]
    return ", ".join(same) if same else DASH


def searches(parents: pd.DataFrame, labels: dict[str, str] | None = None) -> str:
    """One row per study (its parent run; an older store's several parents of a resumed study
    merged, `one_per_study`); its best configuration as the leaderboard labels it (today's
    names, also for runs logged under older ones), else as the parent logged it."""
    labels = labels or {}
    rows = []
    for r in load.one_per_study(parents).to_dict("records"):
        counts = "/".join(num(r.get(X(f"n_{k}")), 0) for k in ("complete", "pruned", "failed"))
        # tags: the resolved values (params may hold what was typed to `mlflow run`, "none")
        budget = f"{cell(r.get(T('n_trials')))} trials × {cell(r.get(T('seeds')))} seed(s)"
        epochs = r.get(P("fixed.epochs"))
        if r.get(T("strategy")) == "halving":  # n_trials: the trainings its plan holds
            budget = (f"{cell(r.get(T('budget_minutes')))} min: rungs of "
                      f"{cell(r.get(T('rung_epochs')))} epochs, "
                      f"{cell(r.get(T('n_trials')))} trainings planned")  # fmt: skip
        elif has_value(epochs):
            budget += f" × {epochs} epochs"
        if has_value(timeout := r.get(T("timeout"))):
            budget += f", timeout {float(timeout) / 60:g} min"
        subset = r.get(P("fixed.max_train_samples"))
        if has_value(subset) and subset != "None":
            budget += f", {subset} train images"
        note = _space_budget(r)
        budget += f" ({note})" if note else ""
        best = labels.get(r.get(T(M.TAG_BEST_RUN))) or r.get(T(TAG_BEST_CONFIG))
        n = r["parent_runs"]
        more = f" (and {n - 1} earlier parent run{'s' if n > 2 else ''})" if n > 1 else ""
        run = f"`{r['run_id']}`{more}"
        rows.append([r.get(T(TAG_ROLE)), run, utc(r["start_time"]),
                     r.get(T("strategy")), _relative(r.get(T("space_file"))), budget, counts,
                     best])  # fmt: skip
    return table("role | run | started | strategy | space | budget | complete/pruned/failed | "
                 "best", rows)  # fmt: skip


def _relative(path: Any) -> Any:
    """A logged path as a shared report may show it: a relative one as is, an absolute one
    (a folder of the machine that ran the search) by its file name only."""
    if not has_value(path) or not os.path.isabs(str(path)):
        return path
    return Path(str(path)).name


def _space_budget(parent: dict) -> str:
    """The space file's own `budget:` note, read from the parent's logged copy if any."""
    space = parent.get(T("space_file"))
    if not has_value(space):
        return ""
    try:
        uri = f"runs:/{parent['run_id']}/search_space/{Path(str(space)).name}"
        doc = yaml.safe_load(mlflow.artifacts.load_text(uri))
    except (MlflowException, OSError, yaml.YAMLError):
        return ""
    return str(doc.get("budget") or "") if isinstance(doc, dict) else ""


def leaderboard(board: pd.DataFrame) -> str:
    if board.empty:
        return "No completed trials."
    probe = _has(board, M.PROBE_IMAGES_PER_S)  # `retime` re-measured some configurations
    heads = ("# | configuration | depth | kernel | dense | augmentation | params | MFLOPs | "
             "epochs | train time (s) | images/s | CPU ms/image | "
             + ("quiet images/s | " if probe else "") + "val acc (tested weights) | "
             "best val acc (epoch) | test acc | overfit gap | overfit | seeds | run")  # fmt: skip
    rows = []
    for i, r in enumerate(board.to_dict("records"), 1):
        rows.append([
            str(i), r["label"], r["depth"], r["kernel_size"], r["dense_units"], r["aug"],
            num(r[M.PARAM_COUNT], 0), num(r[M.FLOPS] / 1e6, 2), r["epochs"], *cost_cells(r),
            *([mean_std(r, M.PROBE_IMAGES_PER_S, 0)] if probe else []),
            mean_std(r, M.VAL_ACCURACY), mean_std(r, M.BEST_VAL_ACCURACY) + epoch_range(r),
            mean_std(r, M.TEST_ACCURACY), mean_std(r, M.OVERFIT_GAP), r["overfit"], str(r["n"]),
            f"`{r['run_ids'][0][:8]}`" + ("…" if r["n"] > 1 else ""),
        ])  # fmt: skip
    return (
        "Ranked by validation accuracy of the tested weights (the last epoch's; with early "
        "stopping the restored best epoch's); test accuracy is shown, never used "
        "to rank. The best configuration (Findings, the JSON summary) is the top row among "
        "those run on the most seeds (up to 3). Values are mean ± sample std over seeds (a "
        "single seed shows the value alone). Train time is the wall time of all epochs, the "
        "first (tracing) epoch included; images/s leaves that warm-up epoch out. "
        + COST_NOTE
        + (PROBE_NOTE if probe else "")
        + " Overfit: "
        f"gap = clean-train accuracy − validation accuracy > {M.OVERFIT_GAP_THRESHOLD:.2f} "
        f"or validation loss rise > {M.VAL_LOSS_RISE_THRESHOLD:.2f}.\n\n"
        + table(heads, rows, right=range(6, 16 + probe))
        + contended_note(board)
    )


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
    heads = "architecture | policy | Δ test acc | Δ overfit gap | Δ train time (s) | seeds"
    rows = [[e.arch, e.policy, with_ci(e.test), with_ci(e.gap), with_ci(e.time, 1),
             f"{e.n_none} none, {e.n_aug} aug"] for e in effects]  # fmt: skip
    return (
        "Each policy minus the same architecture without augmentation (difference of the "
        f"means over seeds). Brackets: {CI_LEVEL:.0%} confidence interval (Welch's t), given "
        "when both sides have 2 or more seeds. A negative Δ overfit gap means less "
        "overfitting.\n\n" + table(heads, rows, right=range(2, 5))
    )


def ablations(runs: DatasetRuns) -> str:
    """One table per ablation parent run, the latest first."""
    parents = runs.parents.set_index("run_id")
    parts = []
    ids = sorted(runs.ablation_ids, key=lambda i: (parents.loc[i, "start_time"], i), reverse=True)
    for pid in ids:
        board = summarize(runs.children_of([pid]))
        title = f"Ablation run `{pid}` ({utc(parents.loc[pid, 'start_time'])})"
        if board.empty:
            parts.append(f"{title}: no completed trials.")
            continue
        vs_none = {(e.arch, e.policy): e.test for e in augmentation_effects(board)}
        rows = []
        for r in board.to_dict("records"):
            vs = vs_none.get((r["arch_label"], r["aug"]))
            rows.append([
                r["aug"], r["arch_label"], mean_std(r, M.VAL_ACCURACY),
                mean_std(r, M.TEST_ACCURACY), with_ci(vs) if vs else DASH,
                mean_std(r, M.OVERFIT_GAP), r["overfit"], *cost_cells(r), str(r["n"]),
            ])  # fmt: skip
        heads = ("augmentation | architecture | val acc | test acc | Δ test vs none | "
                 "overfit gap | overfit | train time (s) | images/s | CPU ms/image | "
                 "seeds")  # fmt: skip
        parts.append(
            f"{title}, ranked by validation accuracy:\n\n"
            + table(heads, rows, right=(2, 3, 4, 5, 7, 8, 9, 10))
            + contended_note(board)
        )
    return "\n\n".join(parts)


def still_running(trials: pd.DataFrame) -> list[str]:
    """The line saying how many trial runs a search was still writing (left out of every
    table until they finish), or none."""
    n = int((trials["state"] == "running").sum())
    if not n:
        return []
    return [f"- **Still running**: {n} trial run{'s' if n > 1 else ''} (a search is writing "
            "them; not counted until finished)"]  # fmt: skip


def failures(runs: DatasetRuns) -> str:
    bad = runs.trials[~runs.trials["state"].isin(["complete", "running"])]
    if bad.empty:
        return "None: every trial run completed."
    bad = bad.sort_values(["state", "label", "seed", "run_id"])
    rows = [
        [r["state"], r["label"], str(r["seed"]), r.get(T(M.TAG_STATUS_REASON)), f"`{r['run_id']}`"]
        for r in bad.to_dict("records")
    ]
    return table("state | configuration | seed | reason | run", rows)


def run_index(board: pd.DataFrame) -> str:
    if board.empty:
        return DASH
    rows = [[r["label"], ", ".join(map(str, r["seeds"])),
             ", ".join(f"`{i}`" + (f" {CONTENDED}" if t == "contended" else "")
                       for i, t in zip(r["run_ids"], r["timings"], strict=True))]
            for r in board.to_dict("records")]  # fmt: skip
    note = f" {CONTENDED}: the run trained beside other load (tag `timing=contended`)."
    marked = any("contended" in t for t in board["timings"])
    return f"MLflow run ids behind every leaderboard row.{note if marked else ''}\n\n" + table(
        "configuration | seeds | runs", rows
    )


# --- the index --------------------------------------------------------------------------


def index(boards: Mapping[str, pd.DataFrame]) -> str:
    """Best configuration per dataset (`boards`: dataset -> its leaderboard), and whether
    architecture rankings carry over."""
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
        "Generated by `python -m benchmark report` from the MLflow runs; each dataset's page "
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
