"""The head of a dataset report: what data, hardware, software and code the runs used, the
command that wrote the report, the settings every trial shared and the searches (one row per
MLflow parent run).

Why the command and the commit: a report is read away from the store and the machine that
made it, so it names how to rebuild it and which code trained its runs.

May import benchmark.metrics, benchmark.report.load, .stats, .text and .markdown only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow.exceptions import MlflowException

from benchmark import metrics as M
from benchmark.report import load
from benchmark.report.load import TAG_BEST_CONFIG, TAG_ROLE, DatasetRuns, P, T, X, col
from benchmark.report.markdown import CONTENDED, cell, distinct, table, utc
from benchmark.report.stats import DASH, has_value, num
from benchmark.report.text import short

COMMIT_CHARS = 12  # a commit as the header shows it: enough to find it in any clone
NO_COMMIT = "unknown (launched outside a git checkout)"
TAG_SOURCE_COMMIT = "mlflow.source.git.commit"  # MLflow's own, when it saw a checkout


def report_command(dataset: str) -> str:
    """The command that writes this report, as a reader would type it."""
    return f"python -m benchmark report --dataset {dataset}"


def commits(trials: pd.DataFrame) -> str:
    """The distinct commits of the code the trial runs were launched from (tag
    `git_commit`, else MLflow's source commit), 12 characters each; runs launched outside a
    git checkout logged "unknown" and are counted apart."""
    ours = col(trials, T(M.TAG_GIT)).where(lambda s: s.astype(str) != "unknown")
    known = ours.fillna(col(trials, T(TAG_SOURCE_COMMIT))).dropna().astype(str)
    known = known[known.str.strip() != ""]
    found = sorted({c.strip()[:COMMIT_CHARS] for c in known})
    if not found:
        return NO_COMMIT
    missing = len(trials) - len(known)
    text = ", ".join(f"`{c}`" for c in found)
    return text + (f"; {NO_COMMIT} for {missing} run(s)" if missing else "")


def header(runs: DatasetRuns, command: str | None = None) -> str:
    """The facts a reader needs before the numbers; `command` (default: `report_command`)
    is how the report was written."""
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
        f"- **Command**: `{command or report_command(runs.dataset)}`",
        f"- **Git commit** (of the code the runs were launched from): {commits(t)}",
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
    """`name=value` of each setting no completed trial changed. Left out: what the header
    says on its own lines (split sizes, image size) or the leaderboard shows (depth, ...),
    and the class names (a list as long as the dataset has classes: docs/data.md has them)."""
    skip = {P(n) for n in ("seed", "dataset", "augmentation", "depth", "kernel_size",
                           "dense_units", "filters", "class_names", "image_size",
                           "max_train_samples", *M.SPLIT_SIZE_PARAMS)}  # fmt: skip
    same = [
        f"{c.removeprefix('params.')}={short(done[c].iloc[0])}"
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
    return str(doc.get("budget") or "").strip() if isinstance(doc, dict) else ""  # YAML's >


def still_running(trials: pd.DataFrame) -> list[str]:
    """The line saying how many trial runs a search was still writing (left out of every
    table until they finish), or none."""
    n = int((trials["state"] == "running").sum())
    if not n:
        return []
    return [f"- **Still running**: {n} trial run{'s' if n > 1 else ''} (a search is writing "
            "them; not counted until finished)"]  # fmt: skip
