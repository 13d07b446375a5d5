"""Grid, Optuna or halving search: one Optuna study in persistent storage, one MLflow child
run per trial and seed repeat under the search's parent run.

All three are the same `optuna.create_study(sampler=..., pruner=..., storage=...,
load_if_exists=True)`, so resume and scale-out work alike: run the same command again (or on
another machine against a shared storage) and it continues the same study. `run_search` reads
as its steps: open the study, check the data, (halving) plan the budget, then trial slots
under the study's one parent run (benchmark.search.parent: reopened on resume, shared by
workers) until the study says stop, then the summary on the parent.
"""

from __future__ import annotations

import os
import statistics
import time
import traceback
from typing import Any

import keras
import mlflow
import optuna
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark import stop
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.search import faults, integrity, names, rungs
from benchmark.search.champion import crown_search
from benchmark.search.cores import cores_for_slot, threads_per_trial
from benchmark.search.halving import CONFIRM, Job, scaled_config
from benchmark.search.parent import StudyParent
from benchmark.search.parts import make_pruner, make_sampler
from benchmark.search.slots import Slot, drive
from benchmark.search.space import SearchSpace
from benchmark.search.state import Search
from benchmark.search.storage import default_storage, make_storage, redact
from benchmark.search.study import (
    already_done,
    best_trial,
    finished_with_params,
    mark_orphans,
    study_name_for,
    trial_counts,
)
from benchmark.search.summary import Describer, SearchSummary, log_summary, parent_run_name
from benchmark.search.warm import enqueue_warm_start
from benchmark.stop import WORKER
from benchmark.train.callbacks import PruningCallback
from benchmark.train.export import check_log_models
from benchmark.train.isolate import TrialJob, TrialPool, isolated_default
from benchmark.train.tracking import Tracking
from benchmark.train.trial import DataCache, record_wall_time, run_trial


def run_search(
    space: SearchSpace,
    *,
    dataset: str,
    data_dir: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    max_epochs: int | None = None,
    seeds: int | None = None,
    overrides: dict[str, Any] | None = None,
    max_failures: int | None = None,
    role: str = "search",
    isolate: bool | None = None,
    workers: int = 1,
    budget_minutes: float | None = None,
    warm_start: bool | None = None,
    log_models: str = "all",
    describe: Describer | None = None,
    tracking: Tracking | None = None,
    tags: dict[str, str] | None = None,
    printer=print,
) -> SearchSummary:
    """Run (or resume) the study inside the active MLflow parent run, or a new one.

    `isolate` (default: yes, unless BENCHMARK_IN_PROCESS=1) trains each trial in its own
    process; in-process trials share the decoded arrays but leak TF memory from trial to
    trial. `workers` trial processes run at once, the machine's cores split between them;
    all claim trials of the one study and log under the one parent run. `budget_minutes`
    and `warm_start` are strategy halving's (the space's `halving:` keys otherwise).
    `describe` (the report's ParentDescription, from the CLI) writes the leaderboard and
    report onto it. `tracking` (from the CLI's prepare_tracking) says where runs go; by
    default, as the environment says. `tags` go on the parent and on every trial run (the
    lab command's `lab_task`), so a report can find a stage's runs without knowing its study.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line replaces its log
    search = _open(
        space, dataset=dataset, data_dir=data_dir, storage=storage, study_name=study_name,
        n_trials=n_trials, timeout=timeout, max_epochs=max_epochs, seeds=seeds,
        overrides=overrides, max_failures=max_failures, role=role, isolate=isolate,
        workers=workers, tracking=tracking or Tracking.from_env(),
    )  # fmt: skip
    search.log_models, search.tags = check_log_models(log_models), dict(tags or {})
    integrity.cross_check(search, printer)  # the study and the tracking store agree
    if (done := already_done(search.study, search.store, space, search.total,
                             search.epoch_budget)) is not None:  # fmt: skip
        return _complete(search, done)
    faults.warn_low_space(search, printer)  # one line, before anything is written
    datasets = DataCache(data_dir)
    datasets.get(space.config({}, **search.base))  # bad data fails before any trial or run
    if search.isolate:
        datasets.clear()  # each trial process reads the npz cache this check just wrote
    if space.strategy == "halving":
        search.budget = rungs.open_plan(search, budget_minutes, printer)
        if (done := rungs.done_reason(search)) is not None:
            rungs.log_spent(search.study)  # for the report: its last command may have died
            return _complete(search, done)
        if rungs.warm_start_wanted(space, warm_start) and not search.study.trials:
            enqueue_warm_start(search.study, space, search.base, search.budget.plan, printer)
    run_name = parent_run_name(role, search.study_name, space.strategy)
    claim = StudyParent(search.study, role)  # resumes and other workers: the same parent
    with search.tracking.search_parent(dataset, run_name, _parent_tags(search),
                                       claim) as parent:  # fmt: skip
        summary = _run_slots(search, parent, datasets, printer)
        log_summary(search.study, summary, parent.info.run_id, space=space, dataset=dataset,
                    seeds=search.seeds if space.strategy != "halving" else 1,
                    describe=describe, best=rungs.best_filler(search))  # fmt: skip
        crown_search(search.study, dataset,  # the winner's model into the registry
                     run_ids=rungs.winner_run_ids(search.study, search.budget),
                     log_models=search.log_models)  # fmt: skip
    return summary


def _open(space: SearchSpace, *, dataset: str, data_dir, storage, study_name, n_trials,
          timeout, max_epochs, seeds, overrides, max_failures, role, isolate, workers,
          tracking: Tracking) -> Search:  # fmt: skip
    """Settings checked and resolved, the study opened (created on first use)."""
    isolate = isolated_default() if isolate is None else isolate
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    seeds = seeds or space.seeds
    study_name = study_name or study_name_for(space, dataset, overrides | {"seeds": seeds})
    storage = storage or default_storage(study_name)
    if workers < 1:
        raise UserError(f"workers must be 1 or more, got {workers}")
    if workers > 1 and not isolate:
        raise UserError("workers > 1 needs each trial in its own process: unset "
                        "BENCHMARK_IN_PROCESS")  # fmt: skip
    if space.strategy == "grid":
        total = len(space.grid_points())
    elif space.strategy == "halving":
        total = 0  # the plan says, once the probe has timed an epoch
    elif (total := n_trials or space.n_trials) is None:
        raise UserError("strategy optuna needs n_trials (option or optuna.n_trials in the space)")
    max_epochs = max_epochs if max_epochs is not None else space.max_epochs
    if max_epochs is not None and space.strategy != "optuna":
        raise UserError(f"max_epochs (an epoch budget) is for strategy optuna; strategy "
                        f"{space.strategy} sets its own")  # fmt: skip
    base = {"dataset": dataset, **overrides}
    epochs = space.config({}, **base).epochs
    store = make_storage(storage)
    study = optuna.create_study(study_name=study_name, storage=store,
                                sampler=make_sampler(space, seed=0), pruner=make_pruner(space),
                                direction="maximize", load_if_exists=True)  # fmt: skip
    return Search(
        space=space, dataset=dataset, data_dir=data_dir, study_name=study_name,
        storage=storage, store=store, study=study, base=base, seeds=seeds, total=total,
        timeout=timeout if timeout is not None else space.timeout,
        epoch_budget=None if max_epochs is None else (max_epochs, epochs, seeds),
        max_failures=max_failures, workers=workers, isolate=isolate, role=role,
        tracking=tracking,
    )  # fmt: skip


def _parent_tags(search: Search) -> dict[str, str]:
    """Tags hold the resolved values: under `mlflow run` the same names are already params
    holding what was typed ("none" = default), and MLflow params cannot change."""
    tags = {**{t: search.role for t in M.ROLE_TAGS}, "worker": WORKER, **search.settings(),
            **(search.tags or {})}  # fmt: skip
    return {k: str(v) for k, v in tags.items()}


def _log_parent(search: Search, parent: mlflow.ActiveRun) -> None:
    """The settings as params (those `mlflow run` or an earlier command of the study did not
    already log: MLflow params cannot change; the tags hold this command's) and the space."""
    space = search.space
    given = parent.data.params if parent.data else {}
    params = search.settings() | {f"fixed.{k}": v for k, v in {**space.fixed, **search.base}
                                  .items() if k != "dataset"}  # fmt: skip
    mlflow.log_params({k: v for k, v in params.items() if k not in given})
    mlflow.log_text(space.text, f"search_space/{os.path.basename(space.path)}")


def _run_slots(search: Search, parent: mlflow.ActiveRun, datasets: DataCache,
               printer) -> SearchSummary:  # fmt: skip
    """Trials until the study says stop; then the summary with the timings they took."""
    mark_orphans(search.study_name, search.store)
    _log_parent(search, parent)
    tracking = (mlflow.MlflowClient(), parent.info.run_id)
    objective = Objective(search, tracking, datasets)
    with TrialPool() as pool:  # closing it ends the warm processes of trials that will not come
        search.pool = pool
        summary = drive(search, objective, printer, tracking)
    summary.study_name, summary.storage = search.study_name, redact(search.storage)
    summary.timings = objective.timings
    mlflow.log_metrics({f"median_{k}": v for k, v in summary.median_timings().items()})
    return summary


class Objective:
    """One Optuna trial: parameters from the sampler (or the queue), the configuration's
    seeds trained (halving: the one seed and length its rung says), the mean validation
    accuracy returned. The slot that runs it is passed in, so the claim it holds on the
    study is released here, explicitly, once the trial has its parameters."""

    def __init__(self, search: Search, tracking: tuple[Any, str], datasets: DataCache) -> None:
        self.search, self.datasets = search, datasets
        self.client, self.parent_id = tracking
        self.timings: list[dict[str, float]] = []  # where each trained run's time went

    def __call__(self, trial: optuna.Trial, slot: Slot) -> float:
        search = self.search
        params = {d.name: d.suggest(trial) for d in search.space.dimensions}
        trial.set_user_attr("worker", WORKER)
        job = rungs.job_of(trial, slot.job) if search.budget is not None else None
        slot.trial_number = trial.number
        slot.chosen()  # parameters chosen: the next slot may claim its trial
        if (earlier := finished_with_params(trial.study, trial.number, params)) is not None:
            return self._duplicate(trial, earlier)  # TPE re-proposes categorical points
        try:
            runs = self._runs(trial, params, job)
            scores = [self._train(trial, cfg, name, tags, i, slot) for i, (cfg, name, tags)
                      in enumerate(runs)]  # fmt: skip
        except optuna.TrialPruned:
            _release_memory(search.isolate)
            raise
        except KeyboardInterrupt as exc:  # SIGTERM, Ctrl-C, a full disk
            faults.interrupted(trial, exc)  # the next run of the command reruns it
            raise
        except stop.TrialKilled as exc:  # its process killed alone: retried once
            if not faults.retry_killed(trial, exc, search.store):
                self._failed(trial, exc)
            raise
        except Exception as exc:
            self._failed(trial, exc)
            raise
        return statistics.fmean(scores)

    def _duplicate(self, trial: optuna.Trial, earlier) -> float:
        """A seeded trial would only repeat itself: the earlier result stands."""
        trial.set_user_attr(names.DUPLICATE_OF, earlier.number)
        trial.set_user_attr("run_name", earlier.user_attrs.get("run_name", ""))
        if earlier.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"same as pruned trial {earlier.number}")
        return earlier.value

    def _runs(self, trial: optuna.Trial, params: dict, job: Job | None) -> list[tuple]:
        """(config, run name, tags) of each run this trial trains: every seed, or, under
        halving, the job's seed with its whole schedule scaled to its rung's epochs."""
        search = self.search
        cfg = search.space.config(params, **search.base)
        trial.set_user_attr("run_name", cfg.run_name)
        tags = {"optuna_trial": str(trial.number), "study_name": search.study_name,
                "worker": WORKER, **{t: "trial" for t in M.ROLE_TAGS},
                **(search.tags or {})}  # fmt: skip
        if job is None:
            seeds = [cfg.seed + rep for rep in range(search.seeds)]
            return [(cfg.replace(seed=s), cfg.run_name + (f"-s{s}" if search.seeds > 1 else ""),
                     tags) for s in seeds]  # fmt: skip
        epochs = search.budget.plan.epochs[job.rung]
        run_cfg = scaled_config(cfg, epochs).replace(seed=cfg.seed + job.seed)
        name = f"{cfg.run_name}-e{epochs}" + (f"-s{run_cfg.seed}" if job.stage == CONFIRM else "")
        tags |= {M.TAG_RUNG: str(job.rung), M.TAG_STAGE: job.stage}
        if warm := trial.user_attrs.get(names.WARM_START):
            tags[M.TAG_WARM_START] = warm
        return [(run_cfg, name, tags)]

    def _train(self, trial: optuna.Trial, cfg: TrialConfig, name: str, tags: dict, rep: int,
               slot: Slot) -> float:  # fmt: skip
        """One run, in its own process (memory stays flat; the next one warms up) or here."""
        search = self.search
        if (done := faults.finished_before(trial, search.store, search.study_name,
                                           name)) is not None:  # fmt: skip
            trial.set_user_attr(names.run_id_attr(rep), done[0])  # a retry whose run had finished
            return done[1]
        if search.isolate:
            result = search.pool.run(TrialJob(
                cfg=cfg, data_dir=search.data_dir, run_name=name, tags=tags,
                tracking_uri=mlflow.get_tracking_uri(), parent_run_id=self.parent_id,
                storage=search.store if rep == 0 else None, study_name=search.study_name,
                trial_number=trial.number if rep == 0 else None, pruner=search.study.pruner,
                cores=cores_for_slot(slot.index, search.workers), log_models=search.log_models,
            ), prestart_next=True, threads=threads_per_trial(search.workers),
                keep=search.workers)  # fmt: skip
        else:
            started = time.time()
            result = run_trial(cfg, self.datasets.get(cfg),
                               callbacks=[PruningCallback(trial)] if rep == 0 else [],
                               nested=True, parent_run_id=self.parent_id, run_name=name,
                               tags=tags, verbose=0, log_models=search.log_models)  # fmt: skip
            record_wall_time(result, time.time() - started)
        self.timings.append({k: result.metrics[k] for k in M.TIMING_METRICS
                             if k in result.metrics})  # fmt: skip
        trial.set_user_attr(names.run_id_attr(rep), result.run_id)
        _release_memory(search.isolate)
        return result.objective  # the tested weights: last or best epoch

    def _failed(self, trial: optuna.Trial, exc: Exception) -> None:
        """The progress line says why; the traceback goes to the parent run, not stderr."""
        trial.set_user_attr(names.FAIL_REASON, (str(exc) or type(exc).__name__)[:500])
        self.client.log_text(self.parent_id, traceback.format_exc(),
                             f"failures/trial_{trial.number:04d}.txt")  # fmt: skip
        _release_memory(self.search.isolate)


def _release_memory(isolated: bool = False) -> None:
    """Keras keeps every model of the process in its global graph: clear it between trials
    (one full garbage collection, inside clear_session: 0.2-0.4 s measured in a fresh
    process with TensorFlow loaded, more in a long-lived one). Trials in their own
    processes built nothing here."""
    if not isolated:
        keras.backend.clear_session(free_memory=True)


def _complete(search: Search, reason: str) -> SearchSummary:
    """A finished study run again: no run and no training, and say how to start afresh."""
    study = search.study
    summary = SearchSummary(study_name=search.study_name, storage=redact(search.storage),
                            counts=trial_counts(study))  # fmt: skip
    if (found := rungs.best_filler(search)) is not None:
        found(study, summary)
    else:
        best_trial(study, summary)
    more = ""
    if search.space.strategy == "optuna":
        more = (f", or {search.tracking.option('n_trials', str(search.total * 2))} to add "
                "trials to this one")  # fmt: skip
    summary.stopped_reason = (
        f"already complete ({reason}), nothing to train; for a fresh search give it a new "
        f"name with {search.tracking.option('study_name', 'NEW')}{more}"
    )
    search.tracking.mark_project_run("wrapper", note=f"Study `{search.study_name}` was already "
                             f"complete ({reason}): nothing trained.")  # fmt: skip
    return summary
