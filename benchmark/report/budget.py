"""How a halving search spent its budget: per rung the candidates, their epochs, wall time
and survivors; the finalists' confirmation on more seeds, where the first seed's validation
accuracy (the one that chose them) stands beside the mean over seeds and the test accuracy
(the winner's curse, measured); and each Optuna study of the same space file beside it.

A candidate is followed from rung to rung by its *point*, not by `config`: a short rung trains
it with its whole schedule scaled to fewer epochs (benchmark.search.halving.scaled_config),
so its params differ from the full-length run's in exactly the settings scaling changes, and
the point leaves those out. `Study` (a search's runs and parents, whatever the strategy) is
also what origin.py reads to say which search found the best configuration.

May import benchmark.config, benchmark.metrics, benchmark.search.halving and .names (stage names,
scaling and the configuration key only: the report reads the search's constants, the search
never imports the report)
and benchmark.report.load, .stats, .markdown.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.report.load import TAG_PARENT, DatasetRuns, P, T, col, numbers, run_roles, tested_val
from benchmark.report.markdown import table
from benchmark.report.stats import DASH, best_row, mean_std, num, summarize
from benchmark.search.halving import CONFIRM, EXPLORE, scaled_config
from benchmark.search.names import config_key

TAG_STUDY = "study_name"  # on trial runs and parent runs of a search
WARM = "✱"  # marks a warm-started candidate (queued from an earlier study's run)


def _scaled_fields() -> tuple[str, ...]:
    """The settings scaled_config changes to shorten a training (epochs, warm-up, patience
    today), read from it so that a setting it learns to scale is left out here too."""
    full = TrialConfig(epochs=100, warmup_epochs=20, early_stopping_patience=30)
    short = scaled_config(full, 10)
    return tuple(f for f in TrialConfig.field_names() if getattr(short, f) != getattr(full, f))


SCALED = _scaled_fields()


def points(trials: pd.DataFrame) -> pd.Series:
    """Each run's candidate: its params less the seed, derived sizes and the scaled settings,
    keyed as the search keys a configuration (benchmark.search.names.config_key). Less the
    class names too: a completed run logs them with its model, a killed one never did."""
    skip = {P(k) for k in ("seed", "filters", "class_names", *M.SPLIT_SIZE_PARAMS, *SCALED)}
    cols = sorted(c for c in trials.columns if c.startswith("params.") and c not in skip)
    if not cols or trials.empty:
        return pd.Series("", index=trials.index, dtype=object)
    values = trials[cols].astype(object).where(trials[cols].notna(), "").astype(str)
    values.columns = [c.removeprefix("params.") for c in cols]
    return pd.Series([config_key(row) for row in values.to_dict("records")], index=trials.index,
                     dtype=object)  # fmt: skip


def durations(df: pd.DataFrame) -> pd.Series:
    """Seconds from start to end of each run (NaN while it runs)."""
    start = pd.to_datetime(col(df, "start_time"), utc=True)
    return (pd.to_datetime(col(df, "end_time"), utc=True) - start).dt.total_seconds()


@dataclass
class Study:
    """One Optuna study as MLflow holds it: its parent runs (several when it was resumed),
    its trial runs in any state (`runs`, with point, rung, stage and wall_s) and the
    completed ones the leaderboard counts (`done`)."""

    name: str
    parents: pd.DataFrame  # oldest first
    runs: pd.DataFrame
    done: pd.DataFrame

    def tag(self, name: str) -> str | None:
        """A parent tag as the latest parent has it (a resumed search may change its budget)."""
        values = col(self.parents, T(name)).dropna()
        return str(values.iloc[-1]) if len(values) else None

    @property
    def strategy(self) -> str:
        return self.tag("strategy") or DASH

    def number(self, name: str) -> float | None:
        text = self.tag(name)
        try:
            return float(text) if text is not None else None
        except ValueError:
            return None

    @property
    def wall_s(self) -> float:
        """Seconds its parent runs took, together: the commands' own time (`search_wall_s`,
        summed over resumes; a parent's start and end would span the pauses between them),
        else, for a parent from before it, start to end; a parent still running counts up to
        its latest finished trial (so the same store always gives the same figure)."""
        last = pd.to_datetime(col(self.runs, "end_time"), utc=True)
        child_end = last.groupby(col(self.runs, T(TAG_PARENT))).max()
        end = pd.to_datetime(col(self.parents, "end_time"), utc=True)
        end = end.fillna(self.parents["run_id"].map(child_end))
        start = pd.to_datetime(col(self.parents, "start_time"), utc=True)
        span = (end - start).dt.total_seconds().clip(lower=0)
        return float(numbers(self.parents, M.SEARCH_WALL_TIME).fillna(span).sum())

    def ladder(self) -> list[int]:
        """Epochs per rung: the parent's `rung_epochs` (planned), else what the runs show."""
        if planned := self.tag("rung_epochs"):
            return [int(e) for e in planned.split("-")]
        explore = self.runs[self.runs["stage"] == EXPLORE]
        epochs = pd.to_numeric(col(explore, P("epochs")), errors="coerce")
        return [int(e) for e in epochs.groupby(explore["rung"]).max().dropna()]


def search_studies(runs: DatasetRuns) -> list[Study]:
    """The dataset's searches, one per study, in the order they were first run."""
    parents = runs.parents[run_roles(runs.parents) == "search"]
    names = col(parents, T(TAG_STUDY))
    study_of = dict(zip(parents["run_id"], names, strict=True))
    trials = runs.trials
    of_trial = col(trials, T(TAG_STUDY)).fillna(col(trials, T(TAG_PARENT)).map(study_of))
    of_done = of_trial.reindex(runs.main.index)
    out = []
    for name in dict.fromkeys(names.dropna()):
        mine = trials[of_trial == name].copy()
        mine["point"] = points(mine)
        mine["rung"] = pd.to_numeric(col(mine, T(M.TAG_RUNG)), errors="coerce")
        mine["stage"] = col(mine, T(M.TAG_STAGE))
        mine["wall_s"] = numbers(mine, M.TRIAL_WALL_TIME).fillna(durations(mine).where(
            col(mine, T(M.TAG_STATUS_REASON)) != M.ORPHAN_REASON))  # no end of its own
        out.append(Study(str(name), parents[names == name], mine, runs.main[of_done == name]))
    return out


def budget_section(studies: list[Study]) -> list[str]:
    """The section, one part per halving study; no section when there is none."""
    halving = [s for s in studies if s.strategy == "halving"]
    if not halving:
        return []
    parts = [INTRO]
    for study in halving:
        rivals = [s for s in studies if s.strategy == "optuna"
                  and s.tag("space_file") == study.tag("space_file")]  # fmt: skip
        parts += [_title(study), rung_table(study), confirmation(study)]
        if rivals:
            parts.append(side_by_side(study, rivals))
    return ["## How the search spent its budget\n\n" + "\n\n".join(parts)]


INTRO = (
    "Each halving study: per rung, how many candidates trained, for how many epochs (each a "
    "complete training with its schedule scaled to that length), the wall time they took "
    "(the search's wait for each trial, or the run's duration) and how many went on to the "
    "next rung; then the finalists' confirmation on more seeds at full length. "
    f"{WARM} marks a warm-started candidate (queued from an earlier study's run)."
)


def _title(study: Study) -> str:
    runs, ladder = study.runs, study.ladder()
    budget = study.number("budget_minutes")
    parents = len(study.parents)
    facts = [
        f"budget {budget:g} min" if budget is not None else "no budget recorded",
        f"eta {study.tag('eta') or DASH}",
        f"rungs of {'-'.join(map(str, ladder))} epochs" if ladder else "no rungs",
        f"top {study.tag('confirm_top') or DASH} confirmed on {study.tag('seeds') or DASH} seeds",
        _spent(study, budget) + f" in {parents} parent run(s)"
        + (" (resumed)" if parents > 1 or study.number(M.TAG_RESUMES) else ""),
        f"trainings: {_trainings(runs)}",
    ]
    warm = runs[col(runs, T(M.TAG_WARM_START)).notna()]
    if len(warm):
        facts.append(f"{warm['point'].nunique()} warm-started candidate(s) {WARM}")
    space = study.tag("space_file") or DASH
    return f"### Study `{study.name}` (space `{space}`)\n\n" + "; ".join(facts) + "."


def _spent(study: Study, budget: float | None) -> str:
    """The budget spent as the search accounts it (`budget_spent_s`, kept in the study and
    logged after each trial), else its commands' wall time: a command killed with its
    machine logs no wall time, so over kills that figure falls short."""
    spent = numbers(study.parents, M.BUDGET_SPENT).max()
    if pd.isna(spent):
        return f"{_minutes(study.wall_s)} min of wall time"
    of = f" of {budget:g}" if budget is not None else ""
    return f"{_minutes(spent)}{of} min of the budget spent (the search's own account)"


def _minutes(seconds: float) -> str:
    return num(seconds / 60, 1)


def _trainings(runs: pd.DataFrame) -> str:
    """The count of runs, and their states unless all completed: "9 (8 complete, 1 failed)"."""
    states = runs["state"].value_counts()
    if set(states.index) <= {"complete"}:
        return str(len(runs))
    return f"{len(runs)} (" + ", ".join(f"{states[s]} {s}" for s in sorted(states.index)) + ")"


def rung_table(study: Study) -> str:
    """One row per planned rung, then the confirmation and the whole study."""
    runs, ladder = study.runs, study.ladder()
    explore, confirm = runs[runs["stage"] == EXPLORE], runs[runs["stage"] == CONFIRM]
    warm = set(runs.loc[col(runs, T(M.TAG_WARM_START)).notna(), "point"])
    rows = []
    for rung, epochs in enumerate(ladder):
        here = explore[explore["rung"] == rung]
        # went on: to the next rung, a later one (time short: a middle rung skipped), or
        # from the last rung to the confirmation
        went_on = set(explore.loc[explore["rung"] > rung, "point"]) | set(confirm["point"])
        kept = set(here["point"]) & went_on
        n_warm = len(set(here["point"]) & warm)
        rows.append([
            str(rung), str(epochs), str(here["point"].nunique())
            + (f" ({n_warm} {WARM})" if n_warm else ""), _trainings(here),
            _minutes(here["wall_s"].sum()), str(len(kept)), _best_val(here),
        ])  # fmt: skip
    full = str(ladder[-1]) if ladder else DASH
    rows.append(["confirm", full, str(confirm["point"].nunique()), _trainings(confirm),
                 _minutes(confirm["wall_s"].sum()), DASH, _best_val(confirm)])  # fmt: skip
    rows.append(["all", DASH, str(runs["point"].nunique()), _trainings(runs),
                 _minutes(runs["wall_s"].sum()), DASH, _best_val(runs)])  # fmt: skip
    heads = ("rung | epochs | candidates | trainings | wall time (min) | survivors | "
             "best val acc (one run)")  # fmt: skip
    note = ("Survivors: candidates of the rung trained again at a later rung (the next, "
            "unless time ran short and the search skipped it) or confirmed on more "
            "seeds.")  # fmt: skip
    if lost := int(runs["wall_s"].isna().sum() - (runs["state"] == "running").sum()):
        note += (f" Wall times leave out {lost} run(s) whose command died with them (killed, "
                 "no end of their own).")  # fmt: skip
    return table(heads, rows, right=range(1, 7)) + "\n\n" + note


def _best_val(runs: pd.DataFrame) -> str:
    done = runs[runs["state"] == "complete"]
    return num(tested_val(done).max()) if len(done) else DASH


def finalists(study: Study) -> pd.DataFrame:
    """One row per confirmed candidate, from its full-length completed runs: the first seed
    (its last-rung run, which made it a finalist) and the mean over all its seeds; the best
    mean validation accuracy first (the search's winner)."""
    runs, ladder = study.runs, study.ladder()
    epochs = pd.to_numeric(col(runs, P("epochs")), errors="coerce")
    full = runs[(runs["state"] == "complete") & (epochs == (ladder[-1] if ladder else epochs))]
    warm = set(runs.loc[col(runs, T(M.TAG_WARM_START)).notna(), "point"])
    rows = []
    for point in dict.fromkeys(runs.loc[runs["stage"] == CONFIRM, "point"]):
        mine = full[full["point"] == point].sort_values(["seed", "run_id"])
        if mine.empty:
            continue
        first = mine[mine["stage"] == EXPLORE].head(1)
        val, test = tested_val(mine), numbers(mine, M.TEST_ACCURACY)
        rows.append({
            "label": str(mine["label"].iloc[0]), "warm": point in warm, "point": point,
            "seeds": [int(s) for s in mine["seed"]], "run_ids": list(mine["run_id"]),
            "first_val": tested_val(first).max(),
            "first_test": numbers(first, M.TEST_ACCURACY).max(),
            "val": val.mean(), "val_sd": val.std(), "test": test.mean(), "test_sd": test.std(),
        })  # fmt: skip
    if not rows:
        return pd.DataFrame(columns=["label", "val"])
    out = pd.DataFrame(rows).sort_values(["val", "label"], ascending=[False, True])
    return out.reset_index(drop=True)


def confirmation(study: Study) -> str:
    """The finalists' table and what it measured: first seed against the mean over seeds."""
    fin = finalists(study)
    if fin.empty:
        return "No finalist has completed a full-length run yet: nothing confirmed."
    rows = [
        [f"`{r['label']}`" + (f" {WARM}" if r["warm"] else "") + (" (winner)" if i == 0 else ""),
         ", ".join(map(str, r["seeds"])), num(r["first_val"]), _mean_sd(r["val"], r["val_sd"]),
         num(r["first_val"] - r["val"], sign=True), num(r["first_test"]),
         _mean_sd(r["test"], r["test_sd"])]
        for i, r in enumerate(fin.to_dict("records"))
    ]  # fmt: skip
    heads = ("finalist | seeds | val acc, first seed | val acc, mean over seeds | "
             "first − mean | test acc, first seed | test acc, mean over seeds")  # fmt: skip
    win = fin.iloc[0]
    curse = (fin["first_val"] - fin["val"]).mean()
    text = (
        "The winner's curse, measured: the first seed's validation accuracy is what ranked "
        f"the finalists; on average it reads {num(curse, sign=True)} against their mean over "
        f"seeds. The winner, `{win['label']}`, read {num(win['first_val'])} on its first seed "
        f"and averages {_mean_sd(win['val'], win['val_sd'])} on validation and "
        f"{_mean_sd(win['test'], win['test_sd'])} on test over {len(win['seeds'])} seeds."
    )
    return table(heads, rows, right=range(2, 7)) + "\n\n" + text


def _mean_sd(mean: float, sd: float) -> str:
    return num(mean) + (f" ± {num(sd)}" if sd == sd else "")


def side_by_side(study: Study, rivals: list[Study]) -> str:
    """The halving study beside each Optuna study (TPE + pruner) of the same space file:
    each one's best as the leaderboard chooses it (most seeds, then validation)."""
    rows = []
    for s in [study, *rivals]:
        board = summarize(s.done)
        best = best_row(board) if len(board) else None
        how = f"halving (eta {s.tag('eta') or DASH})" if s is study else _optuna(s)
        rows.append([how, f"`{s.name}`", _budget(s), _minutes(s.wall_s), _trainings(s.runs),
                     *(_best_cells(best) if best is not None else [DASH] * 4)])  # fmt: skip
    heads = ("strategy | study | budget | wall time (min) | trainings | best configuration | "
             "seeds | val acc | test acc")  # fmt: skip
    return (
        "Beside the Optuna studies of the same space file, each study's best configuration "
        "(the most seeds, then validation). Read the budgets and wall times first: a study "
        "that ran longer had more chances.\n\n" + table(heads, rows, right=(3, 6, 7, 8))
    )


def _optuna(study: Study) -> str:
    sampler, pruner = study.tag("sampler") or DASH, study.tag("pruner") or DASH
    return f"{study.strategy} ({sampler}, {pruner} pruner)"


def _best_cells(best: pd.Series) -> list[str]:
    return [f"`{best['label']}`", str(best["n"]), mean_std(best, M.VAL_ACCURACY),
            mean_std(best, M.TEST_ACCURACY)]  # fmt: skip


def _budget(study: Study) -> str:
    """What the study was given: minutes (halving), a timeout, or a number of trials."""
    if (minutes := study.number("budget_minutes")) is not None:
        return f"{minutes:g} min"
    if (timeout := study.number("timeout")) is not None:
        return f"{timeout / 60:g} min (timeout)"
    trials = study.tag("n_trials")
    return f"{trials} trials" if trials else DASH
