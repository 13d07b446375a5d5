"""Grid or Optuna search: one Optuna study in persistent storage, one MLflow child run per
trial and seed repeat under the search's parent run.

Grid and TPE are the same `optuna.create_study(sampler=..., pruner=..., storage=...,
load_if_exists=True)`, so resume and scale-out work alike for both: run the same command
again (or on another machine against a shared storage) and it continues the same study.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import socket
import statistics
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import mlflow
import optuna
import psutil
import yaml
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark import runtime
from benchmark.callbacks import PruningCallback
from benchmark.config import TrialConfig
from benchmark.datasets import Dataset
from benchmark.errors import UserError
from benchmark.isolate import TrialJob, isolated_default, run_isolated, stop_prestarted
from benchmark.space import Dimension, SearchSpace
from benchmark.trial import DATA_FIELDS, load_for, record_wall_time, run_trial

log = logging.getLogger("benchmark.search")

HEARTBEAT_S = 10  # a live trial touches the storage this often...
GRACE_S = 40  # ...so one silent for this long belongs to a dead worker: failed and retried
POLL_S = 5  # how often a worker with nothing left to claim checks on others' trials
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# An interrupted or dead worker's trial is enqueued again with the same parameters, at most
# 3 times (a configuration that kills its worker every time is not retried forever).
with warnings.catch_warnings():  # "experimental" since Optuna 2.8, still the supported way
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)


@dataclass
class SearchSummary:
    study_name: str
    storage: str
    counts: dict[str, int]
    best_params: dict[str, Any] | None = None
    best_value: float | None = None
    best_run_id: str | None = None
    stopped_reason: str = ""
    durations: list[float] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)  # per trial run trained

    def median_timings(self) -> dict[str, float]:
        """Median of each of M.TIMING_METRICS over the trial runs this search trained."""
        return {
            k: statistics.median(t[k] for t in self.timings if k in t)
            for k in M.TIMING_METRICS
            if any(k in t for t in self.timings)
        }


# --- plugging Optuna's parts in -------------------------------------------------------


def default_storage() -> str:
    """An SQLite file beside the MLflow store when that is SQLite, else in the cwd."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        db = uri.removeprefix("sqlite:///")
        return f"sqlite:///{os.path.join(os.path.dirname(db) or '.', 'optuna.db')}"
    return "sqlite:///optuna.db"


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """Heartbeats let any worker fail a dead worker's trial and enqueue it again."""
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=RETRY,
                )
        except Exception as exc:  # bad URL, server down, missing driver: all "cannot store"
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            # Workers started together on a new database race to create Optuna's tables:
            # the loser's CREATE fails, and a moment later the tables are there.
            if attempt < 2 and ("already exists" in first or "duplicate key" in first):
                time.sleep(1 + attempt)
                continue
            raise UserError(f"Optuna storage {redact(url)!r} unusable: {first[:200]}") from None
    raise AssertionError("unreachable")


def make_sampler(space: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    if space.strategy == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    startup = {} if space.startup_trials is None else {"n_startup_trials": space.startup_trials}
    return {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, **startup),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "grid": lambda: optuna.samplers.GridSampler(space.grid(), seed=seed),
    }[space.sampler]()


def make_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    p = dict(space.pruner)
    kind = p.pop("type", "median")
    if space.strategy == "grid" or kind == "none":  # a grid means: run every point fully
        return optuna.pruners.NopPruner()
    if kind == "threshold":  # stop any trial whose val_accuracy is below `lower`
        return optuna.pruners.ThresholdPruner(
            lower=p.get("lower", 0.0), n_warmup_steps=p.get("n_warmup_steps", 0)
        )
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=p.get("min_resource", 1), reduction_factor=p.get("reduction_factor", 3)
        )
    return optuna.pruners.MedianPruner(
        n_startup_trials=p.get("n_startup_trials", 5), n_warmup_steps=p.get("n_warmup_steps", 0)
    )


def redact(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    head, sep, tail = url.partition("@")
    if sep and "://" in head and ":" in head.split("://", 1)[1]:
        scheme, cred = head.split("://", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{tail}"
    return url


# --- the search -------------------------------------------------------------------------


def study_name_for(space: SearchSpace, dataset: str, overrides: dict[str, Any]) -> str:
    """Same space + same overrides -> same study, so rerunning the command resumes it."""
    suffix = "-".join(f"{k}{v}" for k, v in sorted(overrides.items()) if v is not None)
    stem = os.path.splitext(os.path.basename(space.path))[0]
    name = f"{dataset}-{stem}-{space.strategy}-{space.digest}"
    return f"{name}-{suffix}" if suffix else name


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
    printer=print,
) -> SearchSummary:
    """Run (or resume) the study inside the active MLflow parent run, or a new one.

    `isolate` (default: yes, unless BENCHMARK_IN_PROCESS=1) trains each trial in its own
    process; in-process trials share the decoded arrays but leak TF memory from trial to
    trial.
    """
    isolate = isolated_default() if isolate is None else isolate
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    seeds = seeds or space.seeds
    storage = storage or default_storage()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our progress line replaces its log
    study_name = study_name or study_name_for(space, dataset, overrides | {"seeds": seeds})
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
    if (done := _already_done(study, store, space, total, budget)) is not None:
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
        _mark_orphans(study_name, store)
        given = parent.data.params if parent.data else {}
        mlflow.log_params(
            {k: v for k, v in resolved.items() if k not in given}
            | {f"fixed.{k}": v for k, v in {**space.fixed, **overrides}.items()}
        )
        mlflow.log_text(space.text, f"search_space/{os.path.basename(space.path)}")

        timings: list[dict[str, float]] = []  # where each trained run's time went

        def objective(trial: optuna.Trial) -> float:
            params = {d.name: d.suggest(trial) for d in space.dimensions}
            trial.set_user_attr("worker", WORKER)
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
                            tracking_uri=mlflow.get_tracking_uri(),
                            parent_run_id=parent.info.run_id,
                            storage_url=storage if rep == 0 else None, study_name=study_name,
                            trial_id=trial._trial_id if rep == 0 else None,
                            pruner=study.pruner,
                        ), prestart_next=True)  # fmt: skip
                    else:
                        started = time.time()
                        result = run_trial(
                            rep_cfg,
                            data_for(cfg),
                            callbacks=[PruningCallback(trial)] if rep == 0 else [],
                            nested=True,
                            parent_run_id=parent.info.run_id,  # its experiment, too
                            run_name=name,
                            tags=tags,
                            verbose=0,
                        )
                        record_wall_time(result, time.time() - started)
                    timings.append({k: result.metrics[k] for k in M.TIMING_METRICS
                                    if k in result.metrics})  # fmt: skip
                    scores.append(result.objective)  # the tested weights: last or best epoch
                    trial.set_user_attr(f"run_id_{rep}", result.run_id)
                    _release_memory()
            except optuna.TrialPruned:
                _release_memory()
                raise
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)  # the next run of the command reruns it
                raise
            except Exception as exc:
                reason = (str(exc) or type(exc).__name__)[:500]
                trial.set_user_attr("fail_reason", reason)
                # The progress line says why; the traceback goes to the parent run, not stderr.
                mlflow.log_text(traceback.format_exc(), f"failures/trial_{trial.number:04d}.txt")
                _release_memory()
                raise
            return statistics.fmean(scores)

        try:
            summary = _drive(study, store, objective, space, total, timeout, budget,
                             max_failures, printer)  # fmt: skip
        finally:
            stop_prestarted()  # the warm process for a trial that will not come
        summary.study_name, summary.storage = study_name, redact(storage)
        summary.timings = timings
        mlflow.log_metrics({f"median_{k}": v for k, v in summary.median_timings().items()})
        _log_summary(study, summary, parent.info.run_id, space=space, dataset=dataset,
                     seeds=seeds)  # fmt: skip
    return summary


def _shown(path: str) -> str:
    """A shipped space as `search_spaces/x.yaml` (same on every machine), others as given."""
    p = Path(path).resolve()
    root = Path(__file__).resolve().parent.parent
    return str(p.relative_to(root)) if p.is_relative_to(root) else path


def finished_with_params(study, number: int, params: dict[str, Any]):
    """An earlier finished trial with these exact parameters, if any."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number != number and t.params == params:
            return t
    return None


def _release_memory() -> None:
    """Keras keeps every model of the process in its global graph: clear it between trials."""
    keras.backend.clear_session(free_memory=True)
    gc.collect()


def epochs_trained(study: optuna.Study, seeds: int = 1) -> int:
    """Epochs actually run. Every trial reports once per epoch of its first seed; pruning
    stops it there, while a completed one also trained its other seeds in full."""
    return sum(
        len(t.intermediate_values) * (seeds if t.state == TrialState.COMPLETE else 1)
        for t in study.get_trials(deepcopy=False)
    )


def fits_budget(study: optuna.Study, max_epochs: int, epochs: int, seeds: int = 1) -> bool:
    """Whether one more full trial (every seed, no pruning) stays within max_epochs."""
    return epochs_trained(study, seeds) + epochs * seeds <= max_epochs


def _drive(
    study, store, objective, space, total, timeout, budget, max_failures, printer
) -> SearchSummary:
    """Claim and run one trial at a time until the grid is covered or the budget spent.

    `budget` is (max_epochs, epochs per run, seeds per trial): no trial starts that could
    take the study past max_epochs (duplicates and pruned trials cost less, so more fit).

    One trial per `optimize` call lets this loop requeue interrupted trials, wait for other
    workers' last trials (and take them over if their worker died), and stop on a run of
    failures, all between trials.
    """
    summary = SearchSummary(study_name="", storage="", counts={})
    started, failures_in_row, rss = time.monotonic(), 0, psutil.Process()
    epochs_at_start = None if budget is None else epochs_trained(study, budget[2])
    while True:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # dead workers' trials -> FAIL + retry
        _requeue_interrupted(study, store)
        counts = _counts(study)
        if space.strategy == "grid":
            left = _grid_left(study, space)
            if not left["unclaimed"] and not left["waiting"]:
                if left["running"]:
                    time.sleep(POLL_S)  # another worker's trial: wait for it or its heartbeat
                    continue
                summary.stopped_reason = "grid covered"
                break
        elif counts["finished"] >= total:
            summary.stopped_reason = f"{total} trials done"
            break
        if budget is not None and not fits_budget(study, *budget):
            used = epochs_trained(study, budget[2])
            summary.stopped_reason = f"epoch budget: {used} of {budget[0]} epochs used"
            break
        if timeout is not None and time.monotonic() - started > timeout:
            summary.stopped_reason = f"timeout {timeout:.0f} s"
            break

        t0 = time.monotonic()
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        took = time.monotonic() - t0
        trial = _latest_own_trial(study)
        if trial is None:
            continue
        summary.durations.append(took)
        mlflow.log_metrics(_memory_mb(rss), step=len(summary.durations))
        counts = _counts(study)
        failures_in_row = failures_in_row + 1 if trial.state == TrialState.FAIL else 0
        spent = None
        if budget is not None:  # (epochs used, the limit, epochs this command trained)
            used = epochs_trained(study, budget[2])
            spent = (used, budget[0], used - epochs_at_start)
        printer(_progress_line(trial, counts, total, took, summary.durations, spent))
        if max_failures and failures_in_row >= max_failures:
            summary.stopped_reason = f"stopped after {failures_in_row} failures in a row"
            printer(f"search {summary.stopped_reason}: last reason: "
                    f"{trial.user_attrs.get('fail_reason', '?')}")  # fmt: skip
            break
    summary.counts = _counts(study)
    return summary


def _memory_mb(proc: psutil.Process) -> dict[str, float]:
    """The search process's RSS now and at its peak, and the largest trial process's peak
    (children are reaped by the time we look, so their high-water mark is what is left)."""
    rss = proc.memory_info().rss / 2**20
    # ru_maxrss (KiB on Linux) follows the kernel's lazily updated high-water mark, which
    # can lag the RSS just read by a fraction of a MB
    peak = max(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rss_mb": rss, "peak_rss_mb": peak, "peak_trial_rss_mb": children}


def _latest_own_trial(study) -> optuna.trial.FrozenTrial | None:
    own = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == WORKER]
    return max(own, key=lambda t: t.datetime_start or 0, default=None)


def _counts(study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    by = {s: sum(t.state == s for t in trials) for s in TrialState}
    fail_model = sum(
        t.state == TrialState.FAIL and "fail_reason" in t.user_attrs for t in trials
    )  # failures that are the configuration's own, not interruptions
    return {
        "complete": by[TrialState.COMPLETE],
        "pruned": by[TrialState.PRUNED],
        "failed": fail_model,
        "interrupted": by[TrialState.FAIL] - fail_model,
        "running": by[TrialState.RUNNING],
        "waiting": by[TrialState.WAITING],
        "finished": by[TrialState.COMPLETE] + by[TrialState.PRUNED] + fail_model,
    }


def _point_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def _grid_left(study, space: SearchSpace) -> dict[str, int]:
    """Grid points by state; a point is done once a trial with its params finished for real."""
    points = {_point_key(p) for p in space.grid_points()}
    done, running, waiting = set(), set(), 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            waiting += 1
        key = _point_key(t.params)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and "fail_reason" in t.user_attrs
        ):
            done.add(key)
        elif t.state == TrialState.RUNNING:
            running.add(key)
    # An interrupted point with no retry yet is neither done nor running: unclaimed.
    return {
        "unclaimed": len(points - done - running),
        "running": len(running - done),
        "waiting": waiting,
    }


def _requeue_interrupted(study, store) -> None:
    """Ctrl-C'd trials, and RUNNING ones whose local worker process is gone (kill -9), are
    failed and enqueued again with the same parameters, once each."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials}
    host = socket.gethostname()
    for t in trials:
        worker = t.user_attrs.get("worker", "")
        w_host, _, w_pid = worker.rpartition(":")
        dead_local = (
            t.state == TrialState.RUNNING
            and w_host == host
            and w_pid.isdigit()
            and not psutil.pid_exists(int(w_pid))
        )
        if dead_local:
            store.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        interrupted = t.state == TrialState.FAIL and "fail_reason" not in t.user_attrs
        if (dead_local or interrupted) and t.number not in retried:
            RETRY(study, t)
            retried.add(t.number)


def _mark_orphans(study_name: str, store) -> None:
    """MLflow runs left RUNNING by a dead local worker of this study become KILLED."""
    host = socket.gethostname()
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.study_name = '{study_name}' and attributes.status = 'RUNNING'",
        output_format="list",
    )
    client = mlflow.MlflowClient()
    for run in runs:
        w_host, _, w_pid = run.data.tags.get("worker", "").rpartition(":")
        if w_host == host and w_pid.isdigit() and not psutil.pid_exists(int(w_pid)):
            client.set_tag(run.info.run_id, M.TAG_STATUS_REASON, "worker died (orphan run)")
            client.set_terminated(run.info.run_id, status="KILLED")


def _progress_line(trial, counts, total, took, durations, spent=None) -> str:
    done = counts["finished"]
    left = max(total - done, 0)
    eta = statistics.median(durations) * left
    budget = ""
    if spent is not None:  # an epoch budget ends the study first when it runs out first
        used, limit, trained_here = spent
        budget = f"  epochs {used}/{limit}"
        if trained_here:
            eta = min(eta, sum(durations) / trained_here * max(limit - used, 0))
    state = trial.state.name.lower()
    value = f"val_accuracy {trial.value:.4f}" if trial.value is not None else state
    if trial.state == TrialState.FAIL:
        value = f"failed: {trial.user_attrs.get('fail_reason', 'interrupted')}"
    elif trial.state == TrialState.PRUNED:
        value = f"pruned at epoch {max(trial.intermediate_values, default=0)}"
    name = trial.user_attrs.get("run_name", str(trial.params))
    if "duplicate_of" in trial.user_attrs:
        value += f" (as trial {trial.user_attrs['duplicate_of']}: not trained again)"
    return f"[{done}/{total}] {name}  {value}  in {took:.1f} s{budget}  ETA {_hms(eta)}"


def _hms(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def parent_run_name(role: str, study_name: str, strategy: str) -> str:
    """`search-<study>-<strategy>`: one name per study, so its parents are found together
    (the strategy is not repeated when the study's name already says it)."""
    name = f"{role}-{study_name}"
    return name if strategy in study_name.split("-") else f"{name}-{strategy}"


def _quoted(text: str) -> str:
    """A string literal for an MLflow filter."""
    return f'"{text}"' if "'" in text else f"'{text}'"


def study_parents(study_name: str) -> list:
    """The study's parent runs (searches, ablations) in any experiment, oldest first."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.study_name = {_quoted(study_name)} and tags.{M.TAG_ROLE} != 'trial'",
        output_format="list",
    )
    runs = [r for r in runs if r.data.tags.get(M.TAG_ROLE) in ("search", "ablation")]
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def _already_done(study, store, space: SearchSpace, total: int, budget) -> str | None:
    """Why the study has nothing left to train for any worker, or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    _requeue_interrupted(study, store)  # an interrupted trial is work left
    counts = _counts(study)
    if counts["running"] or counts["waiting"]:
        return None
    if space.strategy == "grid":
        return None if _grid_left(study, space)["unclaimed"] else "grid covered"
    if counts["finished"] >= total:
        return f"{total} trials done"
    if budget is not None and not fits_budget(study, *budget):
        return f"epoch budget spent: {epochs_trained(study, budget[2])} of {budget[0]} epochs"
    return None


def _complete(study, study_name: str, storage: str, space: SearchSpace, total: int,
              reason: str) -> SearchSummary:  # fmt: skip
    """A finished study run again: no run and no training, and say how to start afresh."""
    summary = SearchSummary(study_name=study_name, storage=redact(storage), counts=_counts(study))
    _best(study, summary)
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


def _best(study, summary: SearchSummary):
    """The study's best completed trial (also fills the summary), or None."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    best = max(complete, key=lambda t: t.value)
    summary.best_params, summary.best_value = best.params, best.value
    summary.best_run_id = best.user_attrs.get("run_id_0")
    return best


def _log_summary(
    study,
    summary: SearchSummary,
    parent_id: str,
    *,
    space: SearchSpace | None = None,
    dataset: str | None = None,
    seeds: int = 1,
) -> None:
    """The study's counts, best run and leaderboard on every parent run of the study, so
    each shows the same; the report of the dataset on this parent (MLflow's hyperparameter
    example, with the comparison readable in the UI)."""
    client = mlflow.MlflowClient()
    c = summary.counts
    values = {f"n_{k}": float(v) for k, v in c.items() if k != "waiting"}
    values["epochs_trained"] = float(epochs_trained(study, seeds))
    tags: dict[str, str] = {}
    if (best := _best(study, summary)) is not None:
        tags = {
            M.TAG_BEST_RUN: summary.best_run_id or "",
            M.TAG_BEST_CONFIG: best.user_attrs.get("run_name", ""),
        }
        values[f"best_{M.OBJECTIVE}"] = best.value
        try:
            run = client.get_run(summary.best_run_id) if summary.best_run_id else None
        except mlflow.exceptions.MlflowException:  # logged to another tracking store: no copy
            run = None
        for key in (M.TEST_ACCURACY, M.OVERFIT_GAP, M.TRAIN_TIME, M.PARAM_COUNT):
            if run and key in run.data.metrics:
                values[f"best_{key}"] = run.data.metrics[key]
    parents = study_parents(summary.study_name)
    if parent_id not in {p.info.run_id for p in parents}:  # a store that lags its writes
        parents.append(client.get_run(parent_id))
    tags[M.TAG_STUDY_PARENTS] = str(len(parents))
    tags[M.TAG_NOTE] = _leaderboard_note(summary, parents, parent_id, space)
    now = int(time.time() * 1000)
    for p in parents:
        client.log_batch(
            p.info.run_id,
            metrics=[mlflow.entities.Metric(k, v, now, 0) for k, v in values.items()],
            tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()],
        )
    if dataset is not None:
        _log_report(dataset, parent_id)


NOTE_ROWS = 10  # configurations in a parent's description; the report artifact has them all
NOTE_LIMIT = 7500  # characters: MLflow keeps at most 8000 in a tag


def _leaderboard_note(summary: SearchSummary, parents: list, parent_id: str,
                      space: SearchSpace | None) -> str:  # fmt: skip
    """The study's leaderboard as markdown, for the parent's description in the UI."""
    from benchmark import report as R

    c = summary.counts
    links = [
        runtime.run_link(p.info.experiment_id, p.info.run_id, f"#{i}")
        + (" (latest)" if p.info.run_id == parent_id else "")
        for i, p in enumerate(parents, 1)
    ]
    lines = [
        f"**Study `{summary.study_name}`**: {c['complete']} complete, {c['pruned']} pruned, "
        f"{c['failed']} failed trials"
        + (f", {c['interrupted']} interrupted" if c.get("interrupted") else "")
        + f". Parent runs of the study: {', '.join(links)}.",
        "",
    ]
    runs = R.load_study_runs(summary.study_name)
    board = R.summarize(runs.main)
    if board.empty:
        return "\n".join([*lines, "No completed trials yet."])
    experiment = dict(zip(runs.trials["run_id"], runs.trials["experiment_id"], strict=True))
    params = runs.trials.set_index("run_id")
    dims = [d.name for d in space.dimensions] if space is not None else []
    dims = [d for d in dims if R.P(d) in params.columns]
    heads = " | ".join(["#", "configuration", *dims, "val acc", "test acc", "params",
                        "overfit gap", "overfit", "seeds"])  # fmt: skip
    rows = []
    for i, r in enumerate(board.to_dict("records"), 1):
        first = r["run_ids"][0]
        row = [
            str(i), runtime.run_link(experiment[first], first, r["label"]),
            *(str(params.at[first, R.P(d)]) for d in dims),
            R.mean_std(r, M.VAL_ACCURACY), R.mean_std(r, M.TEST_ACCURACY),
            R.num(r[M.PARAM_COUNT], 0), R.mean_std(r, M.OVERFIT_GAP), r["overfit"], str(r["n"]),
        ]  # fmt: skip
        if i > NOTE_ROWS or len(R.table(heads, [*rows, row])) > NOTE_LIMIT - 600:
            break
        rows.append(row)
    right = range(2 + len(dims), 6 + len(dims))
    lines += [
        R.table(heads, rows, right=right),
        "",
        f"Top {len(rows)} of {len(board)} configurations, ranked by validation accuracy "
        "(mean ± std over seeds); test accuracy is shown, never used to rank. The full "
        "report with figures is in this run's artifacts under `report/`.",
    ]
    return "\n".join(lines)[:NOTE_LIMIT]


def _log_report(dataset: str, run_id: str) -> None:
    """The dataset's report and figures as the parent's artifacts (`report/`). A search that
    trained for hours is not failed by its report: a problem here is one warning line."""
    from benchmark.report import write_reports

    with tempfile.TemporaryDirectory() as tmp:
        try:
            write_reports(dataset, tmp)
            mlflow.MlflowClient().log_artifacts(run_id, tmp, "report")
        except Exception as exc:  # whatever failed, the search's results stand
            log.warning("report not attached to run %s: %s", run_id, str(exc)[:200])


# --- dry run and ablation ---------------------------------------------------------------


def dry_run(
    space: SearchSpace,
    *,
    dataset: str,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: int | None = None,
    n_trials: int | None = None,
    printer=print,
) -> float:
    """Build every model of the space (no training, no MLflow) and estimate the time.

    The estimate scales a one-epoch probe of the first configuration by FLOPs x train
    images x epochs: rough, but it tells minutes from hours before the search starts.
    """
    from benchmark.models import build_model, plan
    from benchmark.pipeline import train_dataset

    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    seeds = seeds or space.seeds
    base = {"dataset": dataset, **overrides}
    points = space.grid_points() if space.strategy == "grid" else []
    if not points:  # Optuna ranges: show the corners the sampler can reach
        points = [{d.name: (d.values or (d.low,))[0] for d in space.dimensions}]
    data = load_for(space.config({}, **base), data_dir)
    rows = []
    for p in points:
        cfg = space.config(p, **base).replace(image_size=data.image_shape[0])
        try:
            flops = plan(cfg, data.image_shape, data.n_classes).flops
            params = build_model(cfg, data.image_shape, data.n_classes).count_params()
            rows.append((cfg, params, flops))
        except UserError as exc:
            rows.append((cfg, None, str(exc)))
        _release_memory()
    probe_cfg, _, probe_flops = next(r for r in rows if r[1] is not None)
    model = build_model(probe_cfg, data.image_shape, data.n_classes)
    model.compile("rmsprop", "sparse_categorical_crossentropy", steps_per_execution=16)
    from benchmark.augment import build_augmentation

    ds = train_dataset(
        data.x_train, data.y_train, probe_cfg.batch_size, 0, build_augmentation("none")
    )
    t0 = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0, shuffle=False)
    probe = time.perf_counter() - t0
    _release_memory()

    printer(f"{'configuration':32} {'params':>10} {'MFLOPs':>9} {'est. min':>9}")
    total_s = 0.0
    for cfg, params, flops in rows:
        if params is None:
            printer(f"{cfg.run_name:32} rejected: {flops}")
            continue
        est = probe * flops / probe_flops * cfg.epochs * seeds * 1.15  # +15% validation
        total_s += est
        printer(f"{cfg.run_name:32} {params:>10,} {flops / 1e6:>9.1f} {est / 60:>9.1f}")
    if space.strategy == "optuna":
        total_s = total_s / len(rows) * (n_trials or space.n_trials or 1)
    printer(
        f"{len(rows)} configuration(s) x {seeds} seed(s); one-epoch probe {probe:.1f} s on "
        f"{len(data.x_train)} images; estimated total {_hms(total_s)} (probe includes tracing)"
    )
    return total_s


ARCHITECTURE_FIELDS = (
    "model", "depth", "kernel_size", "dense_units", "filters_base", "filters_max", "padding",
    "batch_norm", "dropout", "optimizer", "learning_rate", "batch_size", "image_size",
    "epochs", "label_mode", "split", "val_fraction", "max_train_samples", "steps_per_execution",
)  # fmt: skip


def best_of_latest_search(dataset: str) -> tuple[str, dict[str, Any]]:
    """The latest search's best trial run on `dataset` (by validation accuracy) and its
    settings, read back from MLflow so the ablation needs no state of its own. A resumed
    study's trials hang under several parents: all of them count."""
    parents = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.{M.TAG_ROLE} = 'search' and tags.{M.TAG_DATASET} = '{dataset}'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    for parent in parents:
        study = parent.data.tags.get("study_name")
        same = (
            f"tags.study_name = {_quoted(study)}"
            if study
            else f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        children = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=f"{same} and tags.{M.TAG_TRIAL_STATE} = 'complete'",
            order_by=[f"metrics.{M.OBJECTIVE} DESC"],
            max_results=1,
            output_format="list",
        )
        if children:
            p = children[0].data.params
            return children[0].info.run_id, {k: _parse_param(p[k]) for k in ARCHITECTURE_FIELDS}
    raise UserError(
        f"no completed search on {dataset!r} in {mlflow.get_tracking_uri()}; run "
        f"`mlflow run . -P dataset={dataset}` first"
    )


def _parse_param(text: str) -> Any:
    """MLflow params come back as strings; YAML reads them back to their types."""
    value = yaml.safe_load(text)
    return None if value == "None" else value


def ablation_space(fixed: dict[str, Any], seeds: int, policies: list[str]) -> SearchSpace:
    """The best architecture, fixed, times every augmentation policy: a one-dimension grid."""

    doc = {"strategy": "grid", "seeds": seeds, "fixed": fixed,
           "space": {"augmentation": {"values": policies}}}  # fmt: skip
    text = yaml.safe_dump(doc, sort_keys=False)
    return SearchSpace(
        path="ablation.yaml",
        text=text,
        dataset=None,
        strategy="grid",
        fixed=fixed,
        dimensions=(Dimension(name="augmentation", values=tuple(policies)),),
        seeds=seeds,
    )
