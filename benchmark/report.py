"""`python -m benchmark report`: markdown tables and figures that answer the lab's questions.

Reads MLflow and never retrains. One `mlflow.search_runs` call loads every run of the store
(the index compares datasets, so it needs them all); metric histories are fetched only for
the learning curves of the top configurations. Repeated seeds of one configuration (same
params but `seed`) become mean ± std (n seeds). The same runs give byte-identical markdown:
rows are sorted on stable keys, numbers have fixed formats, and dates come from the runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _use_tracking_uri
from scipy import stats

from benchmark import metrics as M
from benchmark import report_figures as figures
from benchmark import runtime
from benchmark.errors import UserError
from benchmark.report_matters import best_summary, reference_points, what_matters

DASH = "—"  # any missing number or name
MAX_NAMED = 12  # configurations named in one sentence; the tables have them all
MIN_TREND = 5  # configurations needed before the findings claim a trend
TOP_CURVES = 3  # configurations whose learning curves are drawn (the only history fetches)
CI_LEVEL = 0.95
PREVIEW_ARTIFACT = "augmentation_preview.png"  # written by benchmark/trial.py
PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
# Tags and params that benchmark/search.py sets on its parent runs.
TAG_ROLE, TAG_DATASET, TAG_BEST_CONFIG = M.TAG_ROLE, M.TAG_DATASET, M.TAG_BEST_CONFIG
PARENT_ROLES = ("search", "ablation")
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
CURVE_PAIRS = ((M.ACCURACY, M.VAL_ACCURACY), (M.LOSS, M.VAL_LOSS))
SUMMARY_METRICS = (
    M.VAL_ACCURACY,
    M.BEST_VAL_ACCURACY,
    M.BEST_EPOCH,
    M.TEST_ACCURACY,
    M.TEST_ACCURACY_TTA,
    M.STOPPED_EPOCH,
    M.OVERFIT_GAP,
    M.TRAIN_TIME,
    M.IMAGES_PER_S,
    M.PARAM_COUNT,
    M.FLOPS,
)


def P(name: str) -> str:
    return f"params.{name}"


def T(name: str) -> str:
    return f"tags.{name}"


def X(name: str) -> str:  # "X" for measured: a metric column
    return f"metrics.{name}"


def col(df: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-missing when no run logged it (a missing metric never breaks us)."""
    if name in df.columns:
        return df[name]
    return pd.Series(np.nan, index=df.index, dtype=object if name.startswith(("p", "t")) else float)


# --- loading ----------------------------------------------------------------------------


@dataclass
class DatasetRuns:
    dataset: str
    trials: pd.DataFrame  # every trial run of the dataset, any state, ablation children too
    parents: pd.DataFrame  # its search and ablation parent runs

    @cached_property
    def complete(self) -> pd.DataFrame:
        """Finished trials, one run per (configuration, seed) and table: the latest wins a
        rerun; each ablation keeps its own runs."""
        done = self.trials[self.trials["state"] == "complete"].sort_values(["start_time", "run_id"])
        table = col(done, T(TAG_PARENT)).where(done["ablation"], "")
        return done[~done.assign(table=table).duplicated(["table", "config", "seed"], keep="last")]

    @property
    def ablation_ids(self) -> list[str]:
        return list(self.parents.loc[col(self.parents, T(TAG_ROLE)) == "ablation", "run_id"])

    def children_of(self, parent_ids: Sequence[str]) -> pd.DataFrame:
        """Completed runs nested under these parent runs."""
        done = self.complete
        return done[col(done, T(TAG_PARENT)).isin(list(parent_ids))]

    @property
    def main(self) -> pd.DataFrame:
        """Completed runs of searches and single trainings: what the leaderboard ranks.
        An ablation reruns the best architecture, so its runs get their own table."""
        return self.complete[~self.complete["ablation"]]


@contextlib.contextmanager
def _tracking(uri: str | None) -> Iterator[str]:
    """Point mlflow at `uri` for the report only. MLflow's own helper restores the caller's
    state exactly, "unset" included, so MLFLOW_TRACKING_URI keeps working afterwards."""
    with _use_tracking_uri(uri) if uri else contextlib.nullcontext():
        yield mlflow.get_tracking_uri()


def load_runs() -> pd.DataFrame:
    """Every run of every experiment, in one query."""
    df = mlflow.search_runs(search_all_experiments=True, output_format="pandas")
    return df if isinstance(df, pd.DataFrame) else pd.DataFrame()


def run_roles(df: pd.DataFrame) -> pd.Series:
    """What each run is (trial, search, ablation, report, wrapper); NaN for runs logged
    before roles were tagged, and for runs no command of this project got to tag."""
    role = col(df, T(M.TAG_BENCHMARK_ROLE))
    return role.where(role.notna(), col(df, T(TAG_ROLE)))


def is_trial(df: pd.DataFrame) -> pd.Series:
    """Trial runs: tagged so, or untagged runs that trained (run_trial tags the data digest
    when it starts and the trial state when it ends: single `train` runs, older stores).

    Not trials: parents, the report's own `mlflow run` run, and the run of an `mlflow run`
    that failed before a search or trial started (a typo, missing data): its MLproject
    parameters (`dataset` among them) made it look like one.
    """
    role = run_roles(df)
    trained = col(df, T(M.TAG_DIGEST)).notna() | col(df, T(M.TAG_TRIAL_STATE)).notna()
    return (role == "trial") | (role.isna() & trained)


def split_by_dataset(df: pd.DataFrame) -> dict[str, DatasetRuns]:
    """Trial runs by `params.dataset`, parent runs by `tags.dataset`, annotated for grouping;
    every other run (reports, `mlflow run` wrappers) is left out."""
    if df.empty:
        return {}
    roles = run_roles(df)
    is_parent = roles.isin(PARENT_ROLES)
    parents, trials = df[is_parent], df[~is_parent & is_trial(df)]
    trial_ds, parent_ds = col(trials, P("dataset")), col(parents, T(TAG_DATASET))
    names = sorted(set(trial_ds.dropna()) | set(parent_ds.dropna()))
    ablation_ids = set(parents.loc[roles[is_parent] == "ablation", "run_id"])
    return {
        name: DatasetRuns(
            name,
            _annotate(trials[trial_ds == name], ablation_ids),
            parents[parent_ds == name].sort_values(["start_time", "run_id"]),
        )
        for name in names
    }


def load_study_runs(study_name: str) -> DatasetRuns:
    """The trial runs of one Optuna study (tag `study_name`), annotated as for a report:
    what a search parent's leaderboard is made of."""
    quoted = f'"{study_name}"' if "'" in study_name else f"'{study_name}'"
    df = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.study_name = {quoted}",
        output_format="pandas",
    )
    if not isinstance(df, pd.DataFrame) or df.empty:
        df = pd.DataFrame(columns=["run_id", "status", "start_time", "experiment_id"])
    parents = df.iloc[0:0]  # the leaderboard is one table: no parent, no ablation split
    return DatasetRuns(study_name, _annotate(df[is_trial(df)], set()), parents)


def _annotate(trials: pd.DataFrame, ablation_ids: set[str]) -> pd.DataFrame:
    """Adds state, seed, config (params but seed), arch (config but augmentation) and labels.

    A label is the run name without its "-s<seed>" suffix (it says depth, kernel, dense
    and policy); configurations that share one within a table (ablation runs have their
    own) get the params that tell them apart.
    """
    t = trials.copy()
    status = {"FINISHED": "complete", "FAILED": "failed", "KILLED": "killed"}
    fallback = t["status"].map(lambda s: status.get(s, str(s).lower()))
    t["state"] = col(t, T(M.TAG_TRIAL_STATE)).fillna(fallback)
    t["seed"] = pd.to_numeric(col(t, P("seed")), errors="coerce").fillna(-1).astype(int)
    t["aug"] = col(t, P("augmentation")).fillna("none").astype(str)
    # Split sizes follow from the data settings (and runs before they were logged lack
    # them), so they never tell two configurations apart.
    derived = {P("seed"), *(P(k) for k in M.SPLIT_SIZE_PARAMS)}
    pcols = sorted(c for c in t.columns if c.startswith("params.") and c not in derived)
    keys = t[pcols].astype(object).where(t[pcols].notna(), "").astype(str)
    arch_cols = [c for c in pcols if c != P("augmentation")]
    t["config"], t["arch"] = _joined(keys, pcols), _joined(keys, arch_cols)
    names = col(t, T(TAG_RUN_NAME)).fillna("").astype(str)
    t["base"] = pd.Series(
        [n.removesuffix(f"-s{s}") or r[:8]
         for n, s, r in zip(names, t["seed"], t["run_id"], strict=True)],
        index=t.index, dtype=object,
    )  # fmt: skip
    t["suffix"] = ""
    t["ablation"] = col(t, T(TAG_PARENT)).isin(ablation_ids)
    shared = t.groupby(["ablation", "base"])["config"].transform("nunique") > 1
    for rows in t[shared].groupby(["ablation", "base"]).groups.values():
        same = keys.loc[rows]
        differ = [c for c in pcols if same[c].nunique() > 1]
        t.loc[same.index, "suffix"] = [
            " (" + ", ".join(f"{k.removeprefix('params.')}={v}" for k, v in r.items()) + ")"
            for r in same[differ].to_dict("records")
        ]
    t["label"] = t["base"] + t["suffix"]
    t["arch_label"] = [
        b.removesuffix(f"-{a}") + s
        for b, a, s in zip(t["base"], t["aug"], t["suffix"], strict=True)
    ]
    return t


def _joined(keys: pd.DataFrame, cols: list[str]) -> pd.Series:
    """The row's values of `cols` as one key ("" when there are none: an empty store)."""
    if not cols:
        return pd.Series("", index=keys.index, dtype=object)
    return keys[cols[0]].str.cat(keys[cols[1:]], sep="\x1f")


# --- numbers ----------------------------------------------------------------------------


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: mean, std and count of each metric, ranked by validation
    accuracy at the last epoch (test accuracy is shown, never ranked on)."""
    if runs.empty:
        return pd.DataFrame()
    runs = runs.sort_values(["config", "seed", "run_id"]).copy()
    # The val accuracy of the weights that were tested: under early stopping the restored
    # best epoch's, not the last epoch's (runs from before it was logged: the last epoch's).
    selected = pd.to_numeric(col(runs, X(M.SELECTED_VAL_ACCURACY)), errors="coerce")
    runs[X(M.VAL_ACCURACY)] = selected.fillna(
        pd.to_numeric(col(runs, X(M.VAL_ACCURACY)), errors="coerce")
    )
    g = runs.groupby("config", sort=True)
    out = g[["label", "arch_label", "arch", "aug"]].first()
    for name in ("depth", "kernel_size", "dense_units", "epochs"):
        out[name] = g[P(name)].first() if P(name) in runs else np.nan
    out["n"] = g.size()
    out["run_ids"] = g["run_id"].agg(list)
    out["seeds"] = g["seed"].agg(list)
    for m in SUMMARY_METRICS:
        values = pd.to_numeric(col(runs, X(m)), errors="coerce").groupby(runs["config"])
        out[m], out[m + ":std"], out[m + ":n"] = values.mean(), values.std(), values.count()
        out[m + ":min"], out[m + ":max"] = values.min(), values.max()
    out["overfit"] = col(runs, T(M.TAG_OVERFIT)).groupby(runs["config"]).agg(_verdict)
    out["_rank"] = out[M.VAL_ACCURACY].fillna(-np.inf)
    out = out.reset_index().sort_values(["_rank", "label", "config"], ascending=[False, True, True])
    return out.drop(columns="_rank").reset_index(drop=True)


def _verdict(tags: pd.Series) -> str:
    """yes / no when the seeds agree, else "2/3 yes"; missing tags count as unknown."""
    known = [t for t in tags if isinstance(t, str)]
    if not known:
        return DASH
    yes = sum(t == "yes" for t in known)
    if yes in (0, len(known)) and len(known) == len(tags):
        return known[0]
    return f"{yes}/{len(tags)} yes"


def delta_ci(a, b, metric: str) -> tuple[float, float, float]:
    """mean(b) - mean(a) of a metric between two summary rows, with its 95% Welch
    t-interval (NaN bounds unless both sides have 2 or more seeds)."""
    (ma, sa, na), (mb, sb, nb) = ((r[metric], r[metric + ":std"], r[metric + ":n"]) for r in (a, b))
    if not (na and nb):
        return math.nan, math.nan, math.nan
    d = float(mb - ma)
    if na < 2 or nb < 2:
        return d, math.nan, math.nan
    va, vb = sa**2 / na, sb**2 / nb
    if va + vb == 0:
        return d, d, d
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = float(stats.t.ppf(0.5 + CI_LEVEL / 2, dof)) * math.sqrt(va + vb)
    return d, d - half, d + half


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Rank correlation; NaN when fewer than 3 points or one side is constant."""
    x, y = pd.Series(x, dtype=float), pd.Series(y, dtype=float)
    ok = x.notna() & y.notna()
    rx, ry = x[ok].rank(), y[ok].rank()
    if ok.sum() < 3 or rx.nunique() < 2 or ry.nunique() < 2:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats with fewer or as many x, by increasing x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i], i))
    front, best = [], -math.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


# --- formatting -------------------------------------------------------------------------


def _ok(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def num(v, digits: int = 4, sign: bool = False) -> str:
    if not _ok(v):
        return DASH
    text = f"{float(v):+,.{digits}f}" if sign else f"{float(v):,.{digits}f}"
    return text.replace("-", "−")  # a true minus: as wide as the plus, tables line up


def mean_std(row, metric: str, digits: int = 4) -> str:
    """ "0.7123 ± 0.0101" over seeds, the value alone for one seed, "—" for none."""
    n = row[metric + ":n"]
    if not n:
        return DASH
    if n == 1:
        return num(row[metric], digits)
    return f"{num(row[metric], digits)} ± {num(row[metric + ':std'], digits)}"


def with_ci(d: tuple[float, float, float], digits: int = 4) -> str:
    value, lo, hi = d
    if not _ok(value):
        return DASH
    if not _ok(lo):
        return num(value, digits, sign=True)
    return f"{num(value, digits, sign=True)} [{num(lo, digits, True)}, {num(hi, digits, True)}]"


def epoch_range(row) -> str:
    lo, hi = row[M.BEST_EPOCH + ":min"], row[M.BEST_EPOCH + ":max"]
    if not _ok(lo):
        return ""
    return f" (ep {int(lo)})" if lo == hi else f" (ep {int(lo)}–{int(hi)})"


def cell(v) -> str:
    """Text safe inside a markdown table cell."""
    if not _ok(v) or v == "":
        return DASH
    return str(v).replace("|", "\\|").replace("\n", " ").strip()


def table(headers: str, rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A markdown table; `headers` is "a | b | c", `right` the right-aligned columns."""
    headers = headers.split(" | ")
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def utc(ts) -> str:
    return DASH if pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC")


def distinct(series: pd.Series) -> str:
    values = sorted({str(v) for v in series.dropna() if str(v)})
    return ", ".join(values) if values else DASH


def slug(dataset: str) -> str:
    """A file name for a dataset: folder:/data/pets -> folder-data-pets."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", dataset).strip("-.") or "dataset"


# --- one dataset ------------------------------------------------------------------------


@dataclass
class Report:
    dataset: str
    markdown: str
    board: pd.DataFrame  # the leaderboard (for the index)
    files: list[Path]
    summary: dict | None = None  # the best configuration, for <dataset>.json


def build_report(runs: DatasetRuns, out: Path) -> Report:
    """The dataset's markdown and figures; figures are written, markdown is returned."""
    board = summarize(runs.main)
    effects = augmentation_effects(board)
    fig_dir = out / slug(runs.dataset)
    files = draw_figures(runs, board, effects, fig_dir)

    parts = [
        f"# {runs.dataset}: CNN benchmark report",
        header(runs),
        "## Findings\n\n" + findings(board, effects),
        "## Leaderboard\n\n" + leaderboard(board),
        "## What matters\n\n" + matters_by_study(runs),
        "## Augmentation effect\n\n" + effect_table(effects),
    ]
    best = best_summary(runs.main, board.iloc[0]) if len(board) else None
    parts.insert(4, "## Reference points\n\n" + reference_points(runs.dataset, runs.main, best))
    if runs.ablation_ids:
        parts.append("## Ablation: augmentation policies on one architecture\n\n" + ablations(runs))
    rel = fig_dir.name
    captions = {
        "learning_curves.png": f"Learning curves of the top {TOP_CURVES} configurations "
        "(mean over seeds)",
        "accuracy_vs_params.png": "Validation accuracy vs parameters (Pareto front in red)",
        "accuracy_vs_time.png": "Validation accuracy vs training time (Pareto front in red)",
        "augmentation_effect.png": "Test accuracy with and without augmentation",
    }
    shown = [f"![{captions.get(f.name, f.stem.replace('_', ' '))}]({rel}/{f.name})" for f in files]
    parts.append("## Figures\n\n" + ("\n\n".join(shown) if shown else "No completed trials."))
    parts.append("## Pruned and failed trials\n\n" + failures(runs))
    parts.append("## Runs\n\n" + run_index(board))
    return Report(runs.dataset, "\n\n".join(parts) + "\n", board, files, best)


def matters_by_study(runs: DatasetRuns) -> str:
    """One "what matters" analysis per study: settings fixed in one search and searched in
    another must not be compared across searches (their other settings differ)."""
    searches = runs.parents[col(runs.parents, T(TAG_ROLE)) == "search"]
    if searches.empty:
        return what_matters(runs.main)
    study = col(searches, T("study_name")).fillna(searches["run_id"])
    parts = []
    for name, group in sorted(searches.groupby(study), key=lambda kv: kv[1]["start_time"].min()):
        done = runs.children_of(list(group["run_id"]))
        if done.empty:
            continue
        parts.append(f"### Study `{name}` ({len(done)} completed trial runs)\n\n"
                     + what_matters(done))  # fmt: skip
    return "\n\n".join(parts) if parts else what_matters(runs.main)


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
        f"- **Settings shared by every completed trial**: {fixed}",
    ]
    if len(p):
        lines.append("- **Searches** (MLflow parent runs):\n\n" + searches(p))
    else:
        lines.append("- **Searches**: none logged (single `train` runs only)")
    return "\n".join(lines)


def _shared_settings(done: pd.DataFrame) -> str:
    skip = {P(n) for n in ("seed", "dataset", "augmentation", "depth", "kernel_size",
                           "dense_units", "filters")}  # fmt: skip
    same = [
        f"{c.removeprefix('params.')}={done[c].iloc[0]}"
        for c in sorted(c for c in done.columns if c.startswith("params.") and c not in skip)
        if done[c].notna().all() and done[c].nunique() == 1
    ]
    return ", ".join(same) if same else DASH


def searches(parents: pd.DataFrame) -> str:
    rows = []
    for r in parents.to_dict("records"):
        counts = "/".join(num(r.get(X(f"n_{k}")), 0) for k in ("complete", "pruned", "failed"))
        # tags: the resolved values (params may hold what was typed to `mlflow run`, "none")
        budget = f"{cell(r.get(T('n_trials')))} trials × {cell(r.get(T('seeds')))} seed(s)"
        epochs = r.get(P("fixed.epochs"))
        if _ok(epochs):
            budget += f" × {epochs} epochs"
        subset = r.get(P("fixed.max_train_samples"))
        if _ok(subset) and subset != "None":
            budget += f", {subset} train images"
        note = _space_budget(r)
        budget += f" ({note})" if note else ""
        rows.append([r.get(T(TAG_ROLE)), f"`{r['run_id']}`", utc(r["start_time"]),
                     r.get(T("strategy")), _relative(r.get(T("space_file"))), budget, counts,
                     r.get(T(TAG_BEST_CONFIG))])  # fmt: skip
    return table("role | run | started | strategy | space | budget | complete/pruned/failed | "
                 "best", rows)  # fmt: skip


def _relative(path):
    """A logged path as a shared report may show it: a relative one as is, an absolute one
    (a folder of the machine that ran the search) by its file name only."""
    if not _ok(path) or not os.path.isabs(str(path)):
        return path
    return Path(str(path)).name


def _space_budget(parent: dict) -> str:
    """The space file's own `budget:` note, read from the parent's logged copy if any."""
    space = parent.get(T("space_file"))
    if not _ok(space):
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
    heads = ("# | configuration | depth | kernel | dense | augmentation | params | MFLOPs | "
             "epochs | train time (s) | images/s | val acc (tested weights) | "
             "best val acc (epoch) | test acc | overfit gap | overfit | seeds | run")  # fmt: skip
    rows = []
    for i, r in enumerate(board.to_dict("records"), 1):
        rows.append([
            str(i), r["label"], r["depth"], r["kernel_size"], r["dense_units"], r["aug"],
            num(r[M.PARAM_COUNT], 0), num(r[M.FLOPS] / 1e6, 2), r["epochs"],
            mean_std(r, M.TRAIN_TIME, 1), mean_std(r, M.IMAGES_PER_S, 0),
            mean_std(r, M.VAL_ACCURACY), mean_std(r, M.BEST_VAL_ACCURACY) + epoch_range(r),
            mean_std(r, M.TEST_ACCURACY), mean_std(r, M.OVERFIT_GAP), r["overfit"], str(r["n"]),
            f"`{r['run_ids'][0][:8]}`" + ("…" if r["n"] > 1 else ""),
        ])  # fmt: skip
    return (
        "Ranked by validation accuracy of the tested weights (the last epoch's; with early "
        "stopping the restored best epoch's); test accuracy is shown, never used "
        "to rank. Values are mean ± sample std over seeds (a single seed shows the value "
        "alone). Train time is the wall time of all epochs, the first (tracing) epoch "
        "included; images/s leaves that warm-up epoch out. Overfit: gap = clean-train "
        f"accuracy − validation accuracy > {M.OVERFIT_GAP_THRESHOLD:.2f} or validation loss "
        f"rise > {M.VAL_LOSS_RISE_THRESHOLD:.2f}.\n\n" + table(heads, rows, right=range(6, 15))
    )


@dataclass
class Effect:
    arch: str
    policy: str
    n_none: int
    n_aug: int
    test: tuple[float, float, float]
    gap: tuple[float, float, float]
    time: tuple[float, float, float]
    test_none: tuple[float, float]  # mean, std
    test_aug: tuple[float, float]


def augmentation_effects(board: pd.DataFrame) -> list[Effect]:
    """Per architecture, each policy against the same architecture without augmentation."""
    rows = board.sort_values(["arch_label", "aug"]).to_dict("records") if len(board) else []
    nones = {r["arch"]: r for r in rows if r["aug"] == "none"}
    return [
        Effect(
            a["arch_label"], b["aug"], a["n"], b["n"],
            *(delta_ci(a, b, m) for m in (M.TEST_ACCURACY, M.OVERFIT_GAP, M.TRAIN_TIME)),
            (a[M.TEST_ACCURACY], a[M.TEST_ACCURACY + ":std"]),
            (b[M.TEST_ACCURACY], b[M.TEST_ACCURACY + ":std"]),
        )
        for b in rows
        if b["aug"] != "none" and (a := nones.get(b["arch"])) is not None
    ]  # fmt: skip


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
                mean_std(r, M.OVERFIT_GAP), r["overfit"], mean_std(r, M.TRAIN_TIME, 1),
                mean_std(r, M.IMAGES_PER_S, 0), str(r["n"]),
            ])  # fmt: skip
        heads = ("augmentation | architecture | val acc | test acc | Δ test vs none | "
                 "overfit gap | overfit | train time (s) | images/s | seeds")  # fmt: skip
        parts.append(
            f"{title}, ranked by validation accuracy:\n\n"
            + table(heads, rows, right=(2, 3, 4, 5, 7, 8, 9))
        )
    return "\n\n".join(parts)


def failures(runs: DatasetRuns) -> str:
    bad = runs.trials[runs.trials["state"] != "complete"]
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
    rows = [[r["label"], ", ".join(map(str, r["seeds"])), ", ".join(f"`{i}`" for i in r["run_ids"])]
            for r in board.to_dict("records")]  # fmt: skip
    return "MLflow run ids behind every leaderboard row.\n\n" + table(
        "configuration | seeds | runs", rows
    )


# --- sentences --------------------------------------------------------------------------


def findings(board: pd.DataFrame, effects: list[Effect]) -> str:
    """Plain answers to the lab's questions, generated from the numbers above."""
    if board.empty:
        return "No trial completed, so there is nothing to compare yet."
    best = board.iloc[0]
    n_cfg = len(board)
    out = [
        f"**Best model.** Of {n_cfg} configuration(s), `{best['label']}` has the highest "
        f"validation accuracy ({mean_std(best, M.VAL_ACCURACY)}, {best['n']} seed(s)); its "
        f"test accuracy is {mean_std(best, M.TEST_ACCURACY)} with "
        f"{num(best[M.PARAM_COUNT], 0)} parameters and {mean_std(best, M.TRAIN_TIME, 1)} s "
        "of training."
    ]
    by_test = board.dropna(subset=[M.TEST_ACCURACY]).sort_values(
        [M.TEST_ACCURACY, "label"], ascending=[False, True]
    )
    if len(by_test) and by_test.iloc[0]["label"] != best["label"]:
        out.append(
            f"On the test split `{by_test.iloc[0]['label']}` scores highest "
            f"({mean_std(by_test.iloc[0], M.TEST_ACCURACY)}); validation picks the "
            "model, so that is not the winner."
        )
    out.append(_augmentation_sentence(effects))
    over = board[board["overfit"].map(lambda v: v == "yes" or (" yes" in v and v[0] != "0"))]
    if len(over):
        names = ", ".join(f"`{x}`" for x in over["label"][:MAX_NAMED])
        if len(over) > MAX_NAMED:
            names += f" and {len(over) - MAX_NAMED} more (see the leaderboard)"
        out.append(
            f"**Overfitting.** {len(over)} of {n_cfg} configuration(s) overfit on at "
            f"least one seed: {names}."
        )
    else:
        out.append(
            f"**Overfitting.** None of the {n_cfg} configuration(s) overfit by the rule above."
        )
    out.append(_relation("parameter count", "more parameters", "fewer parameters",
                         board[M.PARAM_COUNT], board))  # fmt: skip
    out.append(_relation("training time", "longer training", "shorter training",
                         board[M.TRAIN_TIME], board))  # fmt: skip
    return "\n\n".join(out)


def _augmentation_sentence(effects: list[Effect]) -> str:
    if not effects:
        return (
            "**Augmentation.** No architecture was trained both with and without "
            "augmentation, so its effect cannot be read here."
        )
    parts = []
    for policy in sorted({e.policy for e in effects}):
        es = [e for e in effects if e.policy == policy and _ok(e.test[0])]
        if not es:
            continue
        up = sum(e.test[0] > 0 for e in es)
        sure = sum(_ok(e.test[1]) and e.test[1] > 0 for e in es)
        down = sum(_ok(e.test[2]) and e.test[2] < 0 for e in es)
        gaps = [e.gap[0] for e in es if _ok(e.gap[0])]
        times = [e.time[0] for e in es if _ok(e.time[0])]
        text = (
            f"`{policy}` raised test accuracy on {up} of {len(es)} architecture(s) "
            f"(mean Δ {num(np.mean([e.test[0] for e in es]), 4, True)}"
        )
        if any(_ok(e.test[1]) for e in es):
            text += f"; {CI_LEVEL:.0%} CI above zero for {sure}, below zero for {down}"
        text += ")"
        if gaps:
            text += (
                f"; the overfit gap shrank on {sum(g < 0 for g in gaps)} of {len(gaps)} "
                f"(mean Δ {num(np.mean(gaps), 4, True)})"
            )
        if times:
            text += f"; mean Δ training time {num(np.mean(times), 1, True)} s"
        parts.append(text + ".")
    deltas = [e.test[0] for e in effects if _ok(e.test[0])]
    verdict = (
        "helped" if all(d > 0 for d in deltas)
        else "did not help" if all(d <= 0 for d in deltas)
        else "helped some architectures, not others"
    )  # fmt: skip
    return f"**Augmentation {verdict}.** " + " ".join(parts)


def _relation(what: str, more: str, less: str, xs: pd.Series, board: pd.DataFrame) -> str:
    """Spearman's ρ of validation accuracy against xs, and the Pareto front in words.

    No trend is claimed from fewer than MIN_TREND configurations: ρ of 4 points is ±1 one
    time in 12 by chance alone. The Pareto front is a fact of the table and always named.
    """
    head = f"**Accuracy vs {what}.**"
    ok = xs.notna() & board[M.VAL_ACCURACY].notna()
    labels = list(board.loc[ok, "label"])
    front = pareto_front(list(xs[ok]), list(board.loc[ok, M.VAL_ACCURACY]))
    named = (
        f"No configuration with {less} scores higher than these (the Pareto front): "
        + ", ".join(f"`{labels[i]}`" for i in front)
        + "."
    )
    rho = spearman(xs, board[M.VAL_ACCURACY])
    if ok.sum() < MIN_TREND or not _ok(rho):
        return (
            f"{head} Too few configurations to tell a trend ({ok.sum()}; {MIN_TREND} with "
            f"distinct values needed). " + (named if front else "")
        ).rstrip()
    trend = (
        f"those with {more} tended to score higher" if rho >= 0.3
        else f"those with {less} tended to score higher" if rho <= -0.3
        else f"validation accuracy shows no clear relation to {what}"
    )  # fmt: skip
    return (
        f"{head} Over {ok.sum()} configurations {trend} (Spearman ρ = {num(rho, 2, True)}). "
        + named
    )


# --- figures ----------------------------------------------------------------------------


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
    files.append(figures.learning_curves(curves, fig_dir / "learning_curves.png", CURVE_PAIRS))

    for metric, name, xlabel, logx in (
        (M.PARAM_COUNT, "accuracy_vs_params.png", "parameters", True),
        (M.TRAIN_TIME, "accuracy_vs_time.png", "training time (s)", False),
    ):
        ok = board[metric].notna() & board[M.VAL_ACCURACY].notna()
        if ok.any():
            xs, ys = list(board.loc[ok, metric]), list(board.loc[ok, M.VAL_ACCURACY])
            files.append(figures.scatter(
                xs, ys, list(board.loc[ok, "label"]), fig_dir / name, xlabel=xlabel,
                ylabel="validation accuracy", front=pareto_front(xs, ys), logx=logx,
            ))  # fmt: skip

    if effects:
        archs = sorted({e.arch for e in effects})
        policies = sorted({e.policy for e in effects})
        series = {"none": [next(e.test_none for e in effects if e.arch == a) for a in archs]}
        for p in policies:
            found = {e.arch: e.test_aug for e in effects if e.policy == p}
            series[p] = [found.get(a, (math.nan, math.nan)) for a in archs]
        files.append(
            figures.grouped_bars(
                archs, series, fig_dir / "augmentation_effect.png", ylabel="test accuracy"
            )
        )
    files += copy_previews(runs, fig_dir)
    return files


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


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar per artifact read on stderr; the report prints paths only."""
    old = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "false"
    try:
        yield
    finally:
        if old is None:
            del os.environ[PROGRESS_ENV]
        else:
            os.environ[PROGRESS_ENV] = old


# --- the index --------------------------------------------------------------------------


def index(reports: list[Report]) -> str:
    """Best configuration per dataset, and whether architecture rankings carry over."""
    rows = []
    for rep in reports:
        b = rep.board
        if b.empty:
            rows.append(
                [f"[{rep.dataset}]({slug(rep.dataset)}.md)", DASH, DASH, DASH, DASH, DASH, "0"]
            )
            continue
        r = b.iloc[0]
        rows.append([f"[{rep.dataset}]({slug(rep.dataset)}.md)", f"`{r['label']}`",
                     mean_std(r, M.VAL_ACCURACY), mean_std(r, M.TEST_ACCURACY),
                     num(r[M.PARAM_COUNT], 0), r["overfit"], str(len(b))])  # fmt: skip
    heads = "dataset | best configuration | val acc | test acc | params | overfit | configurations"
    parts = [
        "# CNN benchmark reports",
        "Generated by `python -m benchmark report` from the MLflow runs; each dataset's page "
        "has the leaderboard, augmentation effect, figures and run ids. Best = highest "
        "validation accuracy of the tested weights.",
        table(heads, rows, right=(2, 3, 4, 6)),
        "## Does the ranking carry over between datasets?",
        rank_correlations(reports),
    ]
    return "\n\n".join(parts) + "\n"


def rank_correlations(reports: list[Report]) -> str:
    """Spearman ρ of validation accuracy over the configurations (by name: depth, kernel,
    dense, augmentation) that two datasets share; the best run of a name counts."""
    by_name = {}
    for rep in reports:
        if not rep.board.empty:
            b = rep.board.assign(base=rep.board["label"].str.replace(r" \(.*\)$", "", regex=True))
            by_name[rep.dataset] = b.groupby("base")[M.VAL_ACCURACY].max()
    rows, sentences = [], []
    names = sorted(by_name)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(by_name[a].index) & set(by_name[b].index))
            rho = spearman(by_name[a][shared], by_name[b][shared]) if shared else math.nan
            rows.append([a, b, str(len(shared)), num(rho, 2, sign=True)])
            if _ok(rho):
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


# --- entry points -----------------------------------------------------------------------


def write_reports(
    dataset: str = "all", out: str | Path = "reports", tracking_uri: str | None = None
) -> list[Path]:
    """Write `<out>/<dataset>.md` (figures in `<out>/<dataset>/`) and `<out>/README.md`.

    `dataset="all"` reports every dataset found. The index always covers every dataset in
    the store, so reporting one dataset never drops the others from it. Returns the paths
    written: each report, its figures, then the index.
    """
    out = Path(out)
    with _tracking(tracking_uri) as uri, _no_progress_bar():
        by_dataset = split_by_dataset(load_runs())
        if dataset != "all" and dataset not in by_dataset:
            raise UserError(
                f"no runs for dataset {dataset!r} in {uri}; run "
                f"`mlflow run . -P dataset={dataset}` first"
            )
        if not by_dataset:
            raise UserError(f"no runs in {uri}; run `mlflow run . -P dataset=flowers17` first")
        out.mkdir(parents=True, exist_ok=True)
        written, reports = [], []
        for name, runs in by_dataset.items():
            if dataset not in ("all", name):
                reports.append(Report(name, "", summarize(runs.main), []))  # index only
                continue
            rep = build_report(runs, out)
            path = out / f"{slug(name)}.md"
            path.write_text(rep.markdown, encoding="utf-8")
            written += [path, *rep.files]
            if rep.summary is not None:
                summary = out / f"{slug(name)}.json"
                text = json.dumps({"dataset": name, "best": rep.summary}, indent=2, sort_keys=True)
                summary.write_text(text + "\n", encoding="utf-8")
                written.append(summary)
            reports.append(rep)
        readme = out / "README.md"
        readme.write_text(index(reports), encoding="utf-8")
    return [*written, readme]


def cmd_report(args: argparse.Namespace) -> int:
    # Under `mlflow run -e report` the command has a run of its own: say it is no trial.
    runtime.mark_project_run("report")
    for path in write_reports(args.dataset, args.out, getattr(args, "tracking_uri", None)):
        print(path)
    return 0
