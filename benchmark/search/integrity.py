"""Two stores that agree: the Optuna study and the MLflow runs of its trials, cross-checked.

A search keeps its state in both, and either can be lost alone (a journal emptied, deleted or
cut back by a repair; a tracking store deleted). When a search starts:

- finished trial runs of the study (tag `study_name`: dataset, space digest and overrides are
  in the name) whose configuration the study does not hold become Optuna trials again
  (`optuna.trial.create_trial` + `Study.add_trial`): parameters from the runs' params with the
  space's distributions, the value the objective returns (the mean over seeds of each run's
  tested val accuracy), `run_id_<i>` and `run_name`, halving's rung, stage and seed. Nothing
  is trained twice. A run whose trial is still in the study unfinished is left to the resume
  logic, which reuses a finished run of an interrupted trial (faults.finished_before).
- complete trials whose runs are not FINISHED in the tracking store are trained again. Optuna
  cannot reopen a finished trial, so the study is rewritten with only its public API (a copy
  of every trial and attribute, `delete_study`, `create_study`, `add_trial` in the same
  order, so numbers stay): those trials go back as FAIL with an `interrupted` reason, which
  is how a stopped trial looks, and the resume logic queues each once with its parameters.
May import: benchmark.metrics, benchmark.runfilter, benchmark.search.study, .journal, .names,
.storage.
"""

from __future__ import annotations

import datetime
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlflow
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from benchmark import metrics as M
from benchmark.runfilter import literal
from benchmark.search import journal, names
from benchmark.search.space import Dimension, SearchSpace
from benchmark.search.storage import journal_path, redact
from benchmark.search.study import grid_left, other_worker

LOST = "its runs are missing from the tracking store"  # the `interrupted` reason of a lost trial


@dataclass
class Finished:
    """One trial's FINISHED runs in the tracking store (one per seed; halving: one)."""

    number: str  # the run's `optuna_trial` tag: the trial number when it ran
    runs: list[Any] = field(default_factory=list)


def finished_runs(study_name: str) -> list[Any]:
    """The study's FINISHED trial runs, in any experiment: one query."""
    return mlflow.search_runs(
        search_all_experiments=True, output_format="list",
        filter_string=f"tags.study_name = {literal(study_name)} and attributes.status = "
        f"'FINISHED' and tags.{M.TAG_ROLE} = 'trial'",
    )  # fmt: skip


def run_ids(trial: FrozenTrial) -> list[str]:
    """The runs a trial trained (`run_id_<i>`, one per seed)."""
    return [v for k, v in trial.user_attrs.items() if re.fullmatch(names.RUN_ID + r"\d+", k)]


def unreferenced(study: optuna.Study, runs: list[Any]) -> list[Any]:
    """The runs no trial of the study names: the only ones that may need restoring (on an
    intact study there are none, and nothing more is read)."""
    named = {i for t in study.get_trials(deepcopy=False) for i in run_ids(t)}
    return [r for r in runs if r.info.run_id not in named]


def lost_trials(study: optuna.Study, finished_ids: set[str]) -> list[FrozenTrial]:
    """Complete trials that name a run the tracking store does not hold FINISHED (a trial
    that repeated an earlier one, `duplicate_of`, names none and is never lost)."""
    lost = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if (ids := run_ids(t)) and any(i not in finished_ids for i in ids):
            lost.append(t)
    return lost


def distribution(dim: Dimension) -> BaseDistribution:
    """The distribution `Dimension.suggest` gives the parameter, so a restored trial and a
    sampled one are the same parameter to every sampler."""
    if dim.low is None:
        return CategoricalDistribution(list(dim.values))
    if all(isinstance(v, int) for v in (dim.low, dim.high, dim.step or 1)):
        return IntDistribution(dim.low, dim.high, log=dim.log, step=dim.step or 1)
    return FloatDistribution(dim.low, dim.high, log=dim.log, step=dim.step)


def _value(dim: Dimension, text: str) -> Any:
    """A run's param (MLflow keeps the string) back as the dimension's value."""
    if dim.low is None:
        for v in dim.values:
            if str(v) == text or (isinstance(v, float) and _float(text) == v):
                return v
        raise ValueError(f"{dim.name}={text} is not one of the space's values")
    if isinstance(distribution(dim), IntDistribution):
        return int(float(text))
    return float(text)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _objective(run: Any) -> float:
    """What the objective took from the trained run: the tested weights' val accuracy."""
    m = run.data.metrics
    return float(m.get(M.SELECTED_VAL_ACCURACY, m.get(M.VAL_ACCURACY)))


def _key(params: dict[str, Any], attrs: dict[str, Any]) -> tuple:
    return names.config_key(params), tuple(attrs.get(a) for a in names.HALVING_ATTRS)


def restorable(study: optuna.Study, space: SearchSpace, runs: list[Any],
               seeds: int) -> list[FrozenTrial]:  # fmt: skip
    """The trials the finished runs describe that the study does not hold, oldest first.

    A configuration the study holds finished (complete or pruned: same parameters and, under
    halving, the same rung, stage and seed) is not restored; nor is a run whose trial is in
    the study unfinished (the resume logic takes its run), nor a trial that finished only
    some of its seeds (it is trained again in full)."""
    groups: dict[str, Finished] = {}
    for run in unreferenced(study, runs):
        number = run.data.tags.get("optuna_trial", "")
        groups.setdefault(number, Finished(number)).runs.append(run)
    held = {_key(t.params, t.user_attrs) for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}  # fmt: skip
    by_number = {str(t.number): t for t in study.get_trials(deepcopy=False)}
    out = []
    for group in sorted(groups.values(), key=lambda g: min(r.info.start_time for r in g.runs)):
        try:
            params, job = _job_of(group.runs[0], space)
        except (ValueError, KeyError, TypeError):
            continue  # a run of another space under this name, or with a param missing
        if _key(params, job) in held:
            continue
        if (mine := by_number.get(group.number)) is not None and mine.params == params:
            continue
        if (trial := _trial_of(group, space, seeds, params, job)) is not None:
            held.add(_key(params, job))
            out.append(trial)
    return out


def _job_of(run: Any, space: SearchSpace) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's parameters, and under halving its rung, stage and seed as trial attrs."""
    params = {d.name: _value(d, run.data.params[d.name]) for d in space.dimensions}
    if space.strategy != "halving":
        return params, {}
    tags = run.data.tags
    base = space.config(params, dataset=run.data.params.get("dataset", "cifar10")).seed
    return params, {names.RUNG: int(tags[M.TAG_RUNG]), names.STAGE: tags[M.TAG_STAGE],
                    names.SEED: int(run.data.params["seed"]) - base}  # fmt: skip


def _trial_of(group: Finished, space: SearchSpace, seeds: int, params: dict[str, Any],
              job: dict[str, Any]) -> FrozenTrial | None:  # fmt: skip
    """The Optuna trial that trained these runs, as the objective would have left it."""
    runs = sorted(group.runs, key=lambda r: (int(r.data.params.get("seed", 0)),
                                             r.info.start_time))  # fmt: skip
    halving = space.strategy == "halving"
    if not halving and len({r.data.params.get("seed") for r in runs}) < seeds:
        return None  # some seeds never finished: the configuration is trained again
    runs = runs if halving else runs[:seeds]
    first = runs[0]
    name = re.sub(r"(-e\d+)?(-s\d+)?$", "", first.info.run_name or "") if (halving or seeds > 1) \
        else first.info.run_name  # fmt: skip
    attrs = {"run_name": name, "restored": "from the tracking store", **job}
    attrs |= {names.run_id_attr(i): r.info.run_id for i, r in enumerate(runs)}
    history = mlflow.MlflowClient().get_metric_history(first.info.run_id, M.OBJECTIVE)
    trial = optuna.trial.create_trial(
        value=statistics.fmean(_objective(r) for r in runs), params=params,
        distributions={d.name: distribution(d) for d in space.dimensions}, user_attrs=attrs,
        intermediate_values={m.step: m.value for m in history},
    )  # fmt: skip
    trial.datetime_start = _when(min(r.info.start_time for r in runs))
    trial.datetime_complete = _when(max(r.info.end_time or r.info.start_time for r in runs))
    return trial


def _when(ms: int) -> datetime.datetime:
    """An MLflow time (ms since the epoch) as Optuna keeps its own: local, naive."""
    return datetime.datetime.fromtimestamp(ms / 1000)


def restore(study: optuna.Study, space: SearchSpace, trials: list[FrozenTrial]) -> None:
    """Add the restored trials; under a grid, queue the points still to train, so that no
    new trial takes its point from GridSampler's count of trial numbers (which would hand
    out a restored point again)."""
    for trial in trials:
        study.add_trial(trial)
    if trials and space.strategy == "grid" and grid_left(study, space)["unclaimed"]:
        # any trial holds its point: an interrupted one is queued again by the resume logic
        done = {_key(t.params, {})[0] for t in study.get_trials(deepcopy=False)}
        for point in space.grid_points():
            if _key(point, {})[0] not in done:
                study.enqueue_trial(point, skip_if_exists=True)


def reopen(study: optuna.Study, store: Any, lost: list[FrozenTrial]) -> None:
    """Rewrite the study with the lost trials as interrupted (see the module's note); the
    caller has made a backup (`backup`) first."""
    name, numbers = study.study_name, {t.number for t in lost}
    study_id = store.get_study_id_from_name(name)
    system = dict(store.get_study_system_attrs(study_id))
    user, directions = dict(study.user_attrs), study.directions
    trials = study.get_trials(deepcopy=True)
    optuna.delete_study(study_name=name, storage=store)
    fresh = optuna.create_study(study_name=name, storage=store, directions=directions)
    new_id = store.get_study_id_from_name(name)
    for key, value in system.items():
        store.set_study_system_attr(new_id, key, value)
    for key, value in user.items():
        fresh.set_user_attr(key, value)
    for t in trials:
        fresh.add_trial(_interrupted(t) if t.number in numbers else t)


def _interrupted(t: FrozenTrial) -> FrozenTrial:
    """A lost trial as a stopped one looks: FAIL, no `fail_reason`, its run ids dropped."""
    attrs = {k: v for k, v in t.user_attrs.items() if not re.fullmatch(names.RUN_ID + r"\d+", k)}
    trial = optuna.trial.create_trial(
        state=TrialState.FAIL, params=t.params, distributions=t.distributions,
        user_attrs=attrs | {"interrupted": LOST}, system_attrs=t.system_attrs,
        intermediate_values=t.intermediate_values,
    )  # fmt: skip
    trial.datetime_start, trial.datetime_complete = t.datetime_start, t.datetime_complete
    return trial


def backup(storage: str) -> str | None:
    """A copy of the study's file beside it (journal, or SQLite), None for a server."""
    if (path := journal_path(storage)) is not None:
        return journal.backup(path)
    if storage.startswith("sqlite:///"):
        return journal.backup(storage.removeprefix("sqlite:///"))
    return None


def cross_check(search: Any, printer: Callable[[str], Any]) -> None:
    """When a search starts: restore the finished trials the study lacks, and reopen the
    complete ones whose runs the tracking store lacks; one line for each that happens."""
    study, space, where = search.study, search.space, redact(mlflow.get_tracking_uri())
    runs = finished_runs(search.study_name)
    empty = not study.get_trials(deepcopy=False)
    if runs and (trials := restorable(study, space, runs, search.seeds)):
        restore(study, space, trials)
        why = "the study was missing or empty" if empty else "the study had lost their records"
        printer(f"restored {len(trials)} finished trial(s) of study {search.study_name} "
                f"from the runs in the tracking store {where} ({why}); none is trained again")
    if not (lost := lost_trials(study, {r.info.run_id for r in runs})):
        return
    shown = ", ".join(str(t.number) for t in lost[:10]) + (", ..." if len(lost) > 10 else "")
    if (busy := other_worker(study)) is not None:
        printer(f"warning: {len(lost)} complete trial(s) of study {search.study_name} have no "
                f"FINISHED run in {where} (trials {shown}); worker {busy} is still training, "
                "so they are left as they are: run `python -m benchmark check --repair` "
                "when it is done")  # fmt: skip
        return
    saved = backup(search.storage)
    reopen(study, search.store, lost)
    search.study = optuna.load_study(study_name=search.study_name, storage=search.store,
                                     sampler=study.sampler, pruner=study.pruner)  # fmt: skip
    kept = f"; the study as it was is kept as {saved}" if saved else ""
    printer(f"{len(lost)} complete trial(s) of study {search.study_name} have no FINISHED run "
            f"in the tracking store {where} (trials {shown}): they are trained again{kept}")
