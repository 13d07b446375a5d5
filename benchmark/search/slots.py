"""The trial slots: claim a trial, run it, report it, until the study says stop.

`--workers N` runs N slots as threads of the search process (each trial trains in its own
process, so the threads only wait); one slot runs in the main thread, where Ctrl-C arrives.
The answer to "what now" is typed once (benchmark.search.halving: a Job, `Wait` or `Done`;
here also None: a plain trial of the sampler's), and a slot's claim on the study is one
context manager (`Slot.claimed`).
May import: benchmark.search.halving, .study, .rungs, .state, .summary, benchmark.train.isolate.
The trial processes are the search's `pool`, which the driver makes and closes.
"""

from __future__ import annotations

import functools
import resource
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mlflow
import psutil
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark.search import rungs
from benchmark.search.halving import WAIT, Done, Job, Next
from benchmark.search.state import Search
from benchmark.search.study import (
    POLL_S,
    epochs_trained,
    finished_by,
    grid_left,
    own_trial,
    recover_dead_trials,
    trial_counts,
)
from benchmark.search.summary import SearchSummary, progress_line

if TYPE_CHECKING:
    from benchmark.train.isolate import TrialPool


@dataclass
class Slot:
    """One trial slot: which share of the cores its trials are pinned to, and the claim on
    the study it holds from its look at what is left until its trial has its parameters,
    so two slots never take the same grid point or overshoot n_trials."""

    index: int
    claim: threading.Lock
    trial_number: int | None = None
    job: Job | None = None  # strategy halving: what the next new trial trains
    held: bool = False

    @contextmanager
    def claimed(self) -> Iterator[Slot]:
        """The claim, held for the block and released on every way out of it; the trial
        calls `chosen` inside the block once it has its parameters, to let the next slot
        claim its own while this one trains."""
        self.claim.acquire()
        self.held = True
        try:
            yield self
        finally:
            self.chosen()

    def chosen(self) -> None:
        """The trial has its parameters: the claim goes (once) to the next slot."""
        if self.held:
            self.held = False
            self.claim.release()


def drive(search: Search, objective, printer, parent=None) -> SearchSummary:
    """Claim and run trials, `search.workers` at a time, until the grid is covered, the
    trials done, or the budget spent.

    An epoch budget (max_epochs) lets no trial start that could take the study past it
    (running trials count as if they ran every epoch; duplicates and pruned trials cost
    less, so more fit); a halving budget decides each next training itself.

    Each slot (a thread; the trial itself runs in its own process) runs one trial per
    `optimize` call, so between trials it can requeue interrupted trials, wait for other
    workers' last trials (and take them over if their worker died), and stop on a run of
    failures.
    """
    summary = SearchSummary(study_name="", storage="", counts={})
    budget = search.epoch_budget
    state = _DriveState(started=time.monotonic(), rss=psutil.Process(),
                        epochs_at_start=None if budget is None
                        else epochs_trained(search.study, budget[2]))  # fmt: skip

    def run_slot(index: int = 0) -> None:
        slot = Slot(index=index, claim=state.claim)
        while not state.stop.is_set():
            took = None
            with slot.claimed():
                decision = _next(search, state, slot, printer)
                if isinstance(decision, Done):
                    summary.stopped_reason = summary.stopped_reason or decision.reason
                    state.stop.set()
                    break
                if decision != WAIT:
                    slot.trial_number = None
                    t0 = time.monotonic()
                    search.study.optimize(functools.partial(objective, slot=slot), n_trials=1,
                                          catch=(Exception,), gc_after_trial=True)  # fmt: skip
                    took = time.monotonic() - t0
            if took is None:  # another worker's trial: wait for it or its heartbeat
                state.stop.wait(POLL_S)
                continue
            _after_trial(search, slot.trial_number, took, summary, state, printer, parent)

    if search.workers == 1:  # the main thread: Ctrl-C arrives where the trial waits
        run_slot()
    else:
        _run_slots(run_slot, search.workers, state, search.pool)
    summary.counts = trial_counts(search.study)
    return summary


@dataclass
class _DriveState:
    """What the trial slots of one search share."""

    started: float
    rss: psutil.Process
    epochs_at_start: int | None
    claim: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the summary and printer
    failures_in_row: int = 0


def _next(search: Search, state: _DriveState, slot: Slot, printer) -> Next | None:
    """What this slot does now: Done (why no slot may start another trial), WAIT (one may
    later), or start one: under halving the slot's Job (queued when it is a survivor),
    else None (the sampler's next trial)."""
    if search.budget is None:
        return _stop_reason(search, state)
    recover_dead_trials(search.study, search.store)
    decision = rungs.decide(search.study, search.budget, printer)
    if isinstance(decision, Job):
        rungs.prepare(search.study, decision)
        slot.job = decision
    return decision


def _stop_reason(search: Search, state: _DriveState) -> Next | None:
    """Done or WAIT when no slot may start another trial now; None when one may."""
    study, space, total = search.study, search.space, search.total
    recover_dead_trials(study, search.store)
    counts = trial_counts(study)
    if space.strategy == "grid":
        left = grid_left(study, space)
        if not left["unclaimed"] and not left["waiting"]:
            return WAIT if left["running"] else Done("grid covered")
    elif counts["finished"] >= total:
        return Done(f"{total} trials done")
    elif counts["finished"] + counts["running"] >= total and not counts["waiting"]:
        return WAIT  # the last trials are running: one of them may yet fail and be retried
    if search.epoch_budget is not None:
        max_epochs, epochs, seeds = search.epoch_budget
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        reserved = sum(max(epochs - len(t.intermediate_values), 0) * seeds for t in running)
        if epochs_trained(study, seeds) + reserved + epochs * seeds > max_epochs:
            if running:
                return WAIT
            return Done(f"epoch budget: {epochs_trained(study, seeds)} of {max_epochs} "
                        "epochs used")  # fmt: skip
    if search.timeout is not None and time.monotonic() - state.started > search.timeout:
        return Done(f"timeout {search.timeout:.0f} s")
    return None


def _after_trial(search: Search, number, took, summary, state: _DriveState, printer,
                 parent) -> None:  # fmt: skip
    """The progress line, and the memory metrics and budget spent (halving) on the parent
    run, for the trial a slot just ran."""
    study = search.study
    trial = own_trial(study, number)
    if trial is None:
        return
    with state.lock:
        summary.durations.append(took)
        step = len(summary.durations)
        counts = trial_counts(study) | {"finished": finished_by(study, trial)}
        failed = trial.state == TrialState.FAIL
        state.failures_in_row = state.failures_in_row + 1 if failed else 0
        spent, extra, cap, eta, account = None, "", None, None, {}
        if search.timeout is not None:  # no trial starts after it: at most one more runs on
            rest = search.timeout - (time.monotonic() - state.started)
            cap = max(rest, 0.0) + statistics.median(summary.durations)
        if search.epoch_budget is not None:  # (epochs used, the limit, trained here)
            used = epochs_trained(study, search.epoch_budget[2])
            spent = (used, search.epoch_budget[0], used - state.epochs_at_start)
        total = search.total
        if search.budget is not None:
            account = {M.BUDGET_SPENT: search.budget.save(study)}  # for the parent run
            extra = f"  {rungs.where(trial)}  {search.budget.status()}"
            eta, total = search.budget.eta(), search.budget.trainings or total  # rungs grow
        printer(progress_line(trial, counts, total, took, summary.durations, spent,
                              cap=cap, eta=eta) + extra)  # fmt: skip
        limit = search.max_failures
        if limit and state.failures_in_row >= limit and not state.stop.is_set():
            summary.stopped_reason = f"stopped after {state.failures_in_row} failures in a row"
            printer(f"search {summary.stopped_reason}: last reason: "
                    f"{trial.user_attrs.get('fail_reason', '?')}")  # fmt: skip
            state.stop.set()
    if parent is not None:
        client, parent_id = parent
        now = int(time.time() * 1000)
        # the account at step 0: its latest is then the newest, across resumes too (a resumed
        # command counts its steps from 1 again, and MLflow's latest is the highest step)
        client.log_batch(
            parent_id,
            metrics=[
                *(mlflow.entities.Metric(k, v, now, step)
                  for k, v in _memory_mb(state.rss, search.pool).items()),
                *(mlflow.entities.Metric(k, v, now, 0) for k, v in account.items()),
            ],
        )


def _run_slots(run_slot, workers: int, state: _DriveState, pool: TrialPool) -> None:
    """`workers` slots as threads; the first exception (Ctrl-C included) stops them all and
    is raised here once every slot has finished its trial (`pool`: their trial processes)."""
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            run_slot(index)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(exc)
            state.stop.set()

    threads = [threading.Thread(target=guarded, args=(i,), name=f"trial-slot-{i}", daemon=True)
               for i in range(workers)]  # fmt: skip
    for i, t in enumerate(threads):
        t.start()
        if i + 1 < workers:
            time.sleep(0.2)  # the first slot opens the study's data before the others
    interrupted = None
    while any(t.is_alive() for t in threads):
        try:
            for t in threads:
                t.join(timeout=0.5)
        except KeyboardInterrupt as exc:  # a second Ctrl-C: stop waiting politely
            if interrupted is not None:
                raise
            interrupted = exc
            state.stop.set()
            time.sleep(2)  # a terminal's Ctrl-C reached the trials too; give them a moment
            pool.interrupt_busy()  # kill -INT of the search alone: pass it on to the trials
    if interrupted is not None:
        raise interrupted
    if errors:
        raise errors[0]


def _memory_mb(proc: psutil.Process, pool: TrialPool) -> dict[str, float]:
    """The search process's RSS now and at its peak, and the largest trial process's peak
    (children are reaped by the time we look, so their high-water mark is what is left)."""
    rss = proc.memory_info().rss / 2**20
    # ru_maxrss (KiB on Linux) follows the kernel's lazily updated high-water mark, which
    # can lag the RSS just read by a fraction of a MB
    peak = max(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    children = max(children, pool.peak_trial_rss_mb)  # trial processes that still serve
    return {"rss_mb": rss, "peak_rss_mb": peak, "peak_trial_rss_mb": children}
