"""What a study holds, read back: counts, grid coverage, epochs spent, dead workers' trials,
and the MLflow parent runs of a study. Shared by the driver, the summary and the ablation.
May import: benchmark.metrics, benchmark.stop, benchmark.search.names, .space, .storage.
"""

from __future__ import annotations

import os
import socket
import warnings
from typing import Any

import mlflow
import optuna
import psutil
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark.runfilter import literal
from benchmark.search import names
from benchmark.search.space import SearchSpace
from benchmark.search.storage import RETRY
from benchmark.stop import WORKER

POLL_S = 5  # how often a worker with nothing left to claim checks on others' trials


def study_name_for(space: SearchSpace, dataset: str, overrides: dict[str, Any]) -> str:
    """Same space + same overrides -> same study, so rerunning the command resumes it."""
    suffix = "-".join(f"{k}{v}" for k, v in sorted(overrides.items()) if v is not None)
    stem = os.path.splitext(os.path.basename(space.path))[0]
    name = f"{dataset}-{stem}-{space.strategy}-{space.digest}"
    return f"{name}-{suffix}" if suffix else name


def trial_id(store: optuna.storages.BaseStorage, study_name: str, number: int) -> int:
    """The id `store` knows trial `number` of the study by: Optuna's public storage API (the
    id a Trial object carries is private), so a trial process, given the number, finds it too."""
    study_id = store.get_study_id_from_name(study_name)
    return store.get_trial_id_from_study_id_trial_number(study_id, number)


def stored_trial(
    store: optuna.storages.BaseStorage, study_name: str, number: int
) -> optuna.trial.FrozenTrial:
    """The trial as `store` holds it now. A running Trial's `user_attrs` are its own copy
    from when it started; this one has what the store has since."""
    return store.get_trial(trial_id(store, study_name, number))


def finished_with_params(study, number: int, params: dict[str, Any]):
    """An earlier finished trial with these exact parameters (and, under halving, the same
    rung, stage and seed: a survivor's next rung is new work), if any."""
    mine = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    job = [mine.user_attrs.get(a) for a in names.HALVING_ATTRS]
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        same_job = [t.user_attrs.get(a) for a in names.HALVING_ATTRS] == job
        if t.number != number and t.params == params and same_job:
            return t
    return None


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


def _finished(t) -> bool:
    """Complete, pruned, or failed for a reason of its own (not an interruption)."""
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and names.FAIL_REASON in t.user_attrs
    )


def trial_counts(study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    by = {s: sum(t.state == s for t in trials) for s in TrialState}
    # failures that are the configuration's own, not interruptions
    fail_model = sum(t.state == TrialState.FAIL and _finished(t) for t in trials)
    return {
        "complete": by[TrialState.COMPLETE],
        "pruned": by[TrialState.PRUNED],
        "failed": fail_model,
        "interrupted": by[TrialState.FAIL] - fail_model,
        "running": by[TrialState.RUNNING],
        "waiting": by[TrialState.WAITING],
        "finished": sum(_finished(t) for t in trials),
    }


def finished_by(study, trial) -> int:
    """How many trials had finished when `trial` finished, itself included: its number in
    the progress count. Counting the study's finished trials at print time instead gave two
    workers' trials that ended together the same number ([2/4] twice, no [1/4])."""

    def order(t) -> tuple:
        return (t.datetime_complete is None, t.datetime_complete or 0, t.number)

    mine = order(trial)
    return sum(1 for t in study.get_trials(deepcopy=False) if _finished(t) and order(t) <= mine)


def grid_left(study, space: SearchSpace) -> dict[str, int]:
    """Grid points by state; a point is done once a trial with its params finished for real."""
    points = {names.config_key(p) for p in space.grid_points()}
    done, running, waiting = set(), set(), 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            waiting += 1
        key = names.config_key(t.params)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and names.FAIL_REASON in t.user_attrs
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


def requeue_interrupted(study, store) -> None:
    """Ctrl-C'd trials, and RUNNING ones whose local worker process is gone (kill -9), are
    failed and enqueued again with the same parameters, once each. A retry's `failed_trial`
    names the first trial of its chain, `retry_history` every one: a retry that was itself
    interrupted (SIGTERM, then kill -9 of the rerun) is retried once, not at every call."""
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
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
            store.set_trial_state_values(trial_id(store, study.study_name, t.number),
                                         state=TrialState.FAIL)  # fmt: skip
        interrupted = t.state == TrialState.FAIL and names.FAIL_REASON not in t.user_attrs
        if (dead_local or interrupted) and t.number not in retried:
            RETRY(study, t)
            retried.add(t.number)


def mark_orphans(study_name: str, store) -> None:
    """MLflow runs left RUNNING by a dead local worker of this study become KILLED."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.study_name = {literal(study_name)} and attributes.status = 'RUNNING'",
        output_format="list",
    )
    for run in filter(is_orphan, runs):
        end_orphan(run)


def is_orphan(run: mlflow.entities.Run) -> bool:
    """A RUNNING run whose worker (host:pid tag) is a process of this host that is gone."""
    w_host, _, w_pid = run.data.tags.get("worker", "").rpartition(":")
    return w_host == socket.gethostname() and w_pid.isdigit() and not psutil.pid_exists(int(w_pid))


def end_orphan(run: mlflow.entities.Run) -> None:
    """A run whose command died KILLED, with the reason, ended when it was last seen alive:
    its latest epoch's metrics, else its start. Ended now, its duration would span the time
    its command lay dead (hours, after a session's end) in every sum of the report's."""
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run.info.run_id, M.EPOCH_TIME)
    last = max((m.timestamp for m in history), default=run.info.start_time)
    client.set_tag(run.info.run_id, M.TAG_STATUS_REASON, M.ORPHAN_REASON)
    client.set_terminated(run.info.run_id, status="KILLED", end_time=last)


def own_trial(study, number: int | None) -> optuna.trial.FrozenTrial | None:
    """The trial a slot just ran (None: it failed before its objective started)."""
    if number is None:
        return None
    return next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)


def other_worker(study) -> str | None:
    """A worker other than this process with a trial RUNNING in the study (on this host: one
    whose process is alive), or None: whom this command leaves the shared parent run to."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        w_host, _, w_pid = worker.rpartition(":")
        gone = w_host == host and w_pid.isdigit() and not psutil.pid_exists(int(w_pid))
        if worker and worker != WORKER and not gone:
            return worker
    return None


def study_parents(study_name: str) -> list:
    """The study's parent runs (searches, ablations) in any experiment, oldest first."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.study_name = {literal(study_name)} and tags.{M.TAG_ROLE} != 'trial'",
        output_format="list",
    )
    runs = [r for r in runs if r.data.tags.get(M.TAG_ROLE) in ("search", "ablation")]
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def recover_dead_trials(study, store) -> None:
    """Dead workers' trials (heartbeat gone, or a local pid gone) and Ctrl-C'd ones are
    failed and enqueued again with their parameters: work left for any worker."""
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    requeue_interrupted(study, store)


def already_done(study, store, space: SearchSpace, total: int, budget) -> str | None:
    """Why the study has nothing left to train for any worker, or None."""
    recover_dead_trials(study, store)  # an interrupted trial is work left
    if space.strategy == "halving":
        return None  # its plan decides (search.rungs), once loaded
    counts = trial_counts(study)
    if counts["running"] or counts["waiting"]:
        return None
    if space.strategy == "grid":
        return None if grid_left(study, space)["unclaimed"] else "grid covered"
    if counts["finished"] >= total:
        return f"{total} trials done"
    if budget is not None and not fits_budget(study, *budget):
        return f"epoch budget spent: {epochs_trained(study, budget[2])} of {budget[0]} epochs"
    return None


def best_trial(study, summary):
    """The study's best completed trial (also fills the summary), or None."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    best = max(complete, key=lambda t: t.value)
    summary.best_params, summary.best_value = best.params, best.value
    summary.best_run_id = best.user_attrs.get(names.run_id_attr(0))
    return best
