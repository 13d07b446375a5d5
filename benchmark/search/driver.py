"""Grid or Optuna search: one Optuna study in persistent storage, one MLflow child run per
trial and seed repeat under the search's parent run.

Grid and TPE are the same `optuna.create_study(sampler=..., pruner=..., storage=...,
load_if_exists=True)`, so resume and scale-out work alike for both: run the same command
again (or on another machine against a shared storage) and it continues the same study.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import keras
import mlflow
import optuna
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.data import Dataset
from benchmark.errors import UserError
from benchmark.search.champion import crown_search
from benchmark.search.parts import make_pruner, make_sampler
from benchmark.search.slots import drive
from benchmark.search.space import SearchSpace
from benchmark.search.storage import default_storage, make_storage, redact
from benchmark.search.study import (
    WORKER,
    already_done,
    best_trial,
    finished_with_params,
    mark_orphans,
    study_name_for,
    study_parents,
    trial_counts,
)
from benchmark.search.summary import Describer, SearchSummary, log_summary, parent_run_name
from benchmark.train import runtime
from benchmark.train.callbacks import PruningCallback
from benchmark.train.isolate import TrialJob, isolated_default, run_isolated, stop_prestarted
from benchmark.train.trial import DATA_FIELDS, load_for, record_wall_time, run_trial


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
    describe: Describer | None = None,
    printer=print,
) -> SearchSummary:
    """Run (or resume) the study inside the active MLflow parent run, or a new one.

    `isolate` (default: yes, unless BENCHMARK_IN_PROCESS=1) trains each trial in its own
    process; in-process trials share the decoded arrays but leak TF memory from trial to
    trial. `workers` trial processes run at once, the machine's cores split between them;
    all claim trials of the one study and log under the one parent run. `describe` (the
    report's ParentDescription, from the CLI) writes the leaderboard and report onto it.
    """
    isolate = isolated_default() if isolate is None else isolate
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    seeds = seeds or space.seeds
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line replaces its log
    study_name = study_name or study_name_for(space, dataset, overrides | {"seeds": seeds})
    storage = storage or default_storage(study_name)
    if workers < 1:
        raise UserError(f"workers must be 1 or more, got {workers}")
    if workers > 1 and not isolate:
        raise UserError("workers > 1 needs each trial in its own process: unset "
                        "BENCHMARK_IN_PROCESS")  # fmt: skip
    store = make_storage(storage)
    study = optuna.create_study(
        study_name=study_name,
        storage=store,
        sampler=make_sampler(space, seed=0),
        pruner=make_pruner(space),
        direction="maximize",
        load_if_exists=True,
    )
    total = len(space.grid_points()) if space.strategy == "grid" else (n_trials or space.n_trials)
    if total is None:
        raise UserError("strategy optuna needs n_trials (option or optuna.n_trials in the space)")
    timeout = timeout if timeout is not None else space.timeout
    max_epochs = max_epochs if max_epochs is not None else space.max_epochs
    if max_epochs is not None and space.strategy == "grid":
        raise UserError(
            "max_epochs (an epoch budget) is for strategy optuna; a grid runs every point"
        )

    base = {"dataset": dataset, **overrides}
    epochs = space.config({}, **base).epochs
    budget = None if max_epochs is None else (max_epochs, epochs, seeds)
    if (done := already_done(study, store, space, total, budget)) is not None:
        return _complete(study, study_name, storage, space, total, done)

    datasets: dict[tuple, Dataset] = {}  # decoded once per distinct data setting, not per trial

    def data_for(cfg: TrialConfig) -> Dataset:
        key = tuple(getattr(cfg, f) for f in DATA_FIELDS)
        if key not in datasets:
            datasets[key] = load_for(cfg, data_dir)
        return datasets[key]

    data_for(space.config({}, **base))  # bad data fails before any trial or run exists
    if isolate:
        datasets.clear()  # each trial process reads the npz cache this check just wrote

    run_name = parent_run_name(role, study_name, space.strategy)
    resolved = {
        "strategy": space.strategy, "dataset": dataset, "space_file": _shown(space.path),
        "study_name": study_name, "storage": redact(storage), "seeds": seeds,
        "n_trials": total, "sampler": space.sampler if space.strategy == "optuna" else "grid",
        "pruner": space.pruner.get("type", "median") if space.strategy == "optuna" else "none",
        "workers": workers,
    }  # fmt: skip
    if max_epochs is not None:
        resolved["max_epochs"] = max_epochs
    # Tags hold the resolved values: under `mlflow run` the same names are already params
    # holding what was typed ("none" = default), and MLflow params cannot change.
    tags = {**{t: role for t in M.ROLE_TAGS}, "worker": WORKER, **resolved}
    if earlier := study_parents(study_name):  # a resumed study: link its earlier parents
        tags[M.TAG_FIRST_PARENT] = earlier[0].info.run_id
        tags[M.TAG_PREVIOUS_PARENT] = earlier[-1].info.run_id

    # A failure ends the parent FAILED (Ctrl-C: KILLED) with the reason as a tag.
    with runtime.search_parent(dataset, run_name, {k: str(v) for k, v in tags.items()}) as parent:
        mark_orphans(study_name, store)
        given = parent.data.params if parent.data else {}
        mlflow.log_params(
            {k: v for k, v in resolved.items() if k not in given}
            | {f"fixed.{k}": v for k, v in {**space.fixed, **overrides}.items()}
        )
        mlflow.log_text(space.text, f"search_space/{os.path.basename(space.path)}")

        timings: list[dict[str, float]] = []  # where each trained run's time went
        client, parent_id = mlflow.MlflowClient(), parent.info.run_id
        threads = threads_per_trial(workers)
        slot = threading.local()  # the trial slot (thread) running this objective

        def objective(trial: optuna.Trial) -> float:
            params = {d.name: d.suggest(trial) for d in space.dimensions}
            trial.set_user_attr("worker", WORKER)
            slot.trial_number = trial.number
            slot.release_claim()  # parameters chosen: the next slot may claim its trial
            if (earlier := finished_with_params(trial.study, trial.number, params)) is not None:
                # TPE re-proposes categorical points; a seeded trial would only repeat itself
                trial.set_user_attr("duplicate_of", earlier.number)
                trial.set_user_attr("run_name", earlier.user_attrs.get("run_name", ""))
                if earlier.state == TrialState.PRUNED:
                    raise optuna.TrialPruned(f"same as pruned trial {earlier.number}")
                return earlier.value
            scores = []
            try:
                cfg = space.config(params, **base)
                trial.set_user_attr("run_name", cfg.run_name)
                for rep in range(seeds):
                    rep_cfg = cfg.replace(seed=cfg.seed + rep)
                    name = cfg.run_name + (f"-s{rep_cfg.seed}" if seeds > 1 else "")
                    tags = {"optuna_trial": str(trial.number), "study_name": study_name,
                            "worker": WORKER, **{t: "trial" for t in M.ROLE_TAGS}}  # fmt: skip
                    if isolate:  # a fresh process per trial: memory flat; the next one warms up
                        result = run_isolated(TrialJob(
                            cfg=rep_cfg, data_dir=data_dir, run_name=name, tags=tags,
                            tracking_uri=mlflow.get_tracking_uri(), parent_run_id=parent_id,
                            storage=store if rep == 0 else None, study_name=study_name,
                            trial_id=trial._trial_id if rep == 0 else None,
                            pruner=study.pruner,
                            cores=cores_for_slot(getattr(slot, "index", 0), workers),
                        ), prestart_next=True, threads=threads, keep=workers)  # fmt: skip
                    else:
                        started = time.time()
                        result = run_trial(
                            rep_cfg,
                            data_for(cfg),
                            callbacks=[PruningCallback(trial)] if rep == 0 else [],
                            nested=True,
                            parent_run_id=parent_id,  # its experiment, too
                            run_name=name,
                            tags=tags,
                            verbose=0,
                        )
                        record_wall_time(result, time.time() - started)
                    timings.append({k: result.metrics[k] for k in M.TIMING_METRICS
                                    if k in result.metrics})  # fmt: skip
                    scores.append(result.objective)  # the tested weights: last or best epoch
                    trial.set_user_attr(f"run_id_{rep}", result.run_id)
                    _release_memory(isolate)
            except optuna.TrialPruned:
                _release_memory(isolate)
                raise
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)  # the next run of the command reruns it
                raise
            except Exception as exc:
                reason = (str(exc) or type(exc).__name__)[:500]
                trial.set_user_attr("fail_reason", reason)
                # The progress line says why; the traceback goes to the parent run, not stderr.
                client.log_text(parent_id, traceback.format_exc(),
                                f"failures/trial_{trial.number:04d}.txt")  # fmt: skip
                _release_memory(isolate)
                raise
            return statistics.fmean(scores)

        try:
            summary = drive(study, store, objective, slot, space, total, timeout, budget,
                             max_failures, printer, workers, (client, parent_id))  # fmt: skip
        finally:
            stop_prestarted()  # the warm processes for trials that will not come
        summary.study_name, summary.storage = study_name, redact(storage)
        summary.timings = timings
        mlflow.log_metrics({f"median_{k}": v for k, v in summary.median_timings().items()})
        log_summary(study, summary, parent.info.run_id, space=space, dataset=dataset,
                    seeds=seeds, describe=describe)  # fmt: skip
        crown_search(study, dataset)  # the winner's model into the registry
    return summary


def _shown(path: str) -> str:
    """A shipped space as `search_spaces/x.yaml` (same on every machine), others as given."""
    p = Path(path).resolve()
    root = Path(__file__).resolve().parents[2]
    return str(p.relative_to(root)) if p.is_relative_to(root) else path


def _release_memory(isolated: bool = False) -> None:
    """Keras keeps every model of the process in its global graph: clear it between trials
    (trials in their own processes built nothing here)."""
    if not isolated:
        keras.backend.clear_session(free_memory=True)
    gc.collect()


def _cores() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def threads_per_trial(workers: int) -> int | None:
    """TensorFlow threads per trial process: None for one worker (TensorFlow's default,
    one per core); with N workers the same count, given explicitly.

    Why not cores/N: the thread count decides how TensorFlow splits its sums, so a trial
    with fewer threads computes other numbers (measured: 1 vs 2 threads moved flowers17
    validation accuracy by a median 1.6 pp, up to 5 pp). Each worker's trials get the
    threads one worker's would and are pinned to their share of the cores instead
    (`cores_for_slot`): a trial's results do not depend on `--workers`."""
    return None if workers <= 1 else len(_cores())


def cores_for_slot(index: int, workers: int) -> tuple[int, ...] | None:
    """The CPUs trial slot `index` of `workers` pins its trial processes to: the cores split
    in contiguous shares, one core each (round robin) when there are more slots than cores.
    None for one worker: it has them all."""
    if workers <= 1:
        return None
    cores = _cores()
    share = len(cores) // workers
    if share == 0:
        return (cores[index % len(cores)],)
    return tuple(cores[index * share : (index + 1) * share])


def _complete(study, study_name: str, storage: str, space: SearchSpace, total: int,
              reason: str) -> SearchSummary:  # fmt: skip
    """A finished study run again: no run and no training, and say how to start afresh."""
    summary = SearchSummary(
        study_name=study_name, storage=redact(storage), counts=trial_counts(study)
    )
    best_trial(study, summary)
    more = ""
    if space.strategy == "optuna":
        more = f", or {runtime.option('n_trials', str(total + total))} to add trials to this one"
    summary.stopped_reason = (
        f"already complete ({reason}), nothing to train; for a fresh search give it a new "
        f"name with {runtime.option('study_name', 'NEW')}{more}"
    )
    runtime.mark_project_run(
        "wrapper", note=f"Study `{study_name}` was already complete ({reason}): nothing trained."
    )
    return summary


# --- dry run and ablation ---------------------------------------------------------------
