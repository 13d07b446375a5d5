"""MLflow runs -> DataFrames: one query for the store, the role of each run, trial runs by
dataset (`DatasetRuns`), the runs of one study, a study's parents as one row, and the column
helpers every report module reads them with (`P`, `T`, `X`, `col`, `numbers`, `tested_val`).

May import benchmark.metrics, benchmark.config, benchmark.presets and benchmark.report.text
only (and MLflow, pandas): every other report module builds on this one, so it imports none
of them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from benchmark import metrics as M
from benchmark.choices import display
from benchmark.config import TrialConfig, augmentation_tag
from benchmark.presets import unused_settings
from benchmark.report.text import short
from benchmark.runfilter import literal

# Tags and params that benchmark/search/driver.py sets on its parent runs.
TAG_ROLE, TAG_DATASET, TAG_BEST_CONFIG = M.TAG_ROLE, M.TAG_DATASET, M.TAG_BEST_CONFIG
PARENT_ROLES = ("search", "ablation")
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"


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


def numbers(df: pd.DataFrame, metric: str) -> pd.Series:
    """A metric as numbers; all-missing when no run logged it."""
    return pd.to_numeric(col(df, X(metric)), errors="coerce")


def tested_val(runs: pd.DataFrame) -> pd.Series:
    """Val accuracy of the weights that were tested: under early stopping the restored best
    epoch's, not the last epoch's (runs from before it was logged: the last epoch's)."""
    return numbers(runs, M.SELECTED_VAL_ACCURACY).fillna(numbers(runs, M.VAL_ACCURACY))


def slug(dataset: str) -> str:
    """A file name for a dataset: folder:/data/pets -> folder-data-pets."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", dataset).strip("-.") or "dataset"


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
def tracking(uri: str | None) -> Iterator[str]:
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


def one_per_study(parents: pd.DataFrame) -> pd.DataFrame:
    """The parent runs as one row per study (tag `study_name`; a parent without one is its own
    study), in the order the studies began. Stores from before one parent per search hold a
    parent per resume and per worker process; their row takes each column as the latest
    parent that logged it has it (every parent got the study's counts and best at each end),
    the run id of the latest, the earliest start, the latest end, and `parent_runs`: how many
    there were."""
    if parents.empty:
        return parents.assign(parent_runs=pd.Series(dtype=int))
    key = col(parents, T("study_name")).fillna(parents["run_id"])
    ordered = parents.assign(_study=key).sort_values(["start_time", "run_id"])
    groups = ordered.groupby("_study", sort=False, dropna=False)
    rows = groups.last()
    rows["start_time"] = groups["start_time"].min()
    if "end_time" in ordered:
        rows["end_time"] = groups["end_time"].max()
    rows["parent_runs"] = groups.size()
    return rows.reset_index(drop=True)


def load_study_runs(study_name: str) -> DatasetRuns:
    """The trial runs of one Optuna study (tag `study_name`), annotated as for a report:
    what a search parent's leaderboard is made of."""
    df = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.study_name = {literal(study_name)}",
        output_format="pandas",
    )
    if not isinstance(df, pd.DataFrame) or df.empty:
        df = pd.DataFrame(columns=["run_id", "status", "start_time", "experiment_id"])
    parents = df.iloc[0:0]  # the leaderboard is one table: no parent, no ablation split
    return DatasetRuns(study_name, _annotate(df[is_trial(df)], set()), parents)


def _annotate(trials: pd.DataFrame, ablation_ids: set[str]) -> pd.DataFrame:
    """Adds state, seed, timing, config (params but seed), arch (config but augmentation) and
    labels.

    A label is the run name without its "-s<seed>" suffix (it says depth, kernel, dense
    and policy); configurations that share one within a table (ablation runs have their
    own) get the params that tell them apart.
    """
    t = trials.copy()
    # A setting added after a run was logged had its default there (a new field's default
    # leaves the models of its time unchanged): fill it in, so a later rerun of the same
    # configuration, which logs the field, is not a second configuration.
    for name, default in TrialConfig().to_params().items():  # as the trial logs them
        if P(name) in t.columns and name != "seed":
            t[P(name)] = t[P(name)].fillna(str(default))
    status = {"FINISHED": "complete", "FAILED": "failed", "KILLED": "killed"}
    fallback = t["status"].map(lambda s: status.get(s, str(s).lower()))
    t["state"] = col(t, T(M.TAG_TRIAL_STATE)).fillna(fallback)
    # Stopped (Ctrl-C, SIGTERM) or its command killed: not a failure of the configuration,
    # though the trial tags it failed so that Optuna trains it again.
    t["state"] = t["state"].where(t["status"] != "KILLED", "killed")
    # A run still RUNNING (a search writing now) counts once finished, whatever it tagged.
    t["state"] = t["state"].where(t["status"] != "RUNNING", "running")
    t["seed"] = pd.to_numeric(col(t, P("seed")), errors="coerce").fillna(-1).astype(int)
    # clean | contended | "" (logged before trials measured the load beside their fit)
    t["timing"] = col(t, T(M.TAG_TIMING)).fillna("").astype(str)
    policy = col(t, P("augmentation")).fillna("none").astype(str)  # the CLI's name: seed
    t["aug"] = policy.map(lambda a: display("augmentation", a))  # as run names show it: lab
    # Split sizes and class names follow from the data settings (runs before they were
    # logged lack them; the logged model's config adds `class_names` to completed runs
    # only), and the per-block filters from the model settings, so they never tell two
    # configurations apart.
    derived = {
        P("seed"),
        P("class_names"),
        *(P(k) for k in M.SPLIT_SIZE_PARAMS),
        P(M.PRECISION_RESOLVED),
    }  # follows from `precision` and the machine
    if P("filters_base") in t.columns:  # "filters" (32-64-128) follows from depth, base, max
        derived.add(P("filters"))
    pcols = sorted(c for c in t.columns if c.startswith("params.") and c not in derived)
    keys = t[pcols].astype(object).where(t[pcols].notna(), "").astype(str)
    arch_cols = [c for c in pcols if c != P("augmentation")]
    t["config"], t["arch"] = _joined(keys, pcols), _joined(keys, arch_cols)
    names = col(t, T(TAG_RUN_NAME)).fillna("").astype(str)
    fields = [c for c in pcols if c.removeprefix("params.") in TrialConfig.field_names()]
    t["base"] = pd.Series(
        [_config_name(p) or n.removesuffix(f"-s{s}") or r[:8]
         for p, n, s, r in zip(t[fields].to_dict("records"), names, t["seed"], t["run_id"],
                               strict=True)],
        index=t.index, dtype=object,
    )  # fmt: skip
    t["suffix"] = ""
    t["ablation"] = col(t, T(TAG_PARENT)).isin(ablation_ids)
    shared = t.groupby(["ablation", "base"])["config"].transform("nunique") > 1
    for rows in t[shared].groupby(["ablation", "base"]).groups.values():
        t.loc[rows, "suffix"] = _telling_apart(keys.loc[rows], pcols)
    t["label"] = t["base"] + t["suffix"]
    t["arch_label"] = [  # the name less its policy: "-aug=lab" (names before it: "-seed")
        b.removesuffix(f"-{augmentation_tag(a)}").removesuffix(f"-{a}") + s
        for b, a, s in zip(t["base"], policy, t["suffix"], strict=True)
    ]
    return t


def _telling_apart(same: pd.DataFrame, pcols: list[str]) -> list[str]:
    """Suffixes for configurations that share a run name: the settings they differ in, less
    those their family ignores (a search over families logs a resnet's `depth` too); in full
    for the configurations that only those tell apart."""
    differ = [c for c in pcols if same[c].nunique() > 1]
    model = same[P("model")].iloc[0] if P("model") in same.columns else ""
    ignored = {P(name) for name in unused_settings(model)}  # "" (not logged): the CNN
    brief = _suffixes(same[[c for c in differ if c not in ignored]])
    config = same[differ].apply(tuple, axis=1).tolist()
    alike = pd.DataFrame({"brief": brief, "config": config}).groupby("brief")["config"]
    tied = set(alike.nunique().loc[lambda n: n > 1].index)
    full = _suffixes(same[differ])
    return [f if b in tied else b for b, f in zip(brief, full, strict=True)]


def _suffixes(differ: pd.DataFrame) -> list[str]:
    """What tells each of these same-named configurations apart, its floats shortened (a
    logged learning rate has 17 digits); in full only where the short ones would tie two."""
    full = [" (" + ", ".join(f"{k.removeprefix('params.')}={v}" for k, v in r.items()) + ")"
            for r in differ.to_dict("records")]  # fmt: skip
    brief = [" (" + ", ".join(f"{k.removeprefix('params.')}={short(v)}" for k, v in r.items())
             + ")" for r in differ.to_dict("records")]  # fmt: skip
    return brief if len(set(brief)) == len(set(full)) else full


def _config_name(params: dict[str, object]) -> str | None:
    """The run name today's TrialConfig gives these logged settings, so runs logged under an
    older naming (`seed-d3-k3-w64-seed`) read as today's (`lab-net-d3-k3-w64-aug=lab`); None
    when the params do not make a config (a run from another tool)."""
    values = {}
    for key, text in params.items():
        if isinstance(text, str) and text != "":
            value = yaml.safe_load(text)
            values[key.removeprefix("params.")] = None if value == "None" else value
    try:
        return TrialConfig(**values).run_name
    except Exception:  # not a config this code can rebuild: keep the logged name
        return None


def _joined(keys: pd.DataFrame, cols: list[str]) -> pd.Series:
    """The row's values of `cols` as one key ("" when there are none: an empty store)."""
    if not cols:
        return pd.Series("", index=keys.index, dtype=object)
    return keys[cols[0]].str.cat(keys[cols[1:]], sep="\x1f")
