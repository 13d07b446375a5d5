"""Run one trial in a fresh process, so a long search keeps flat memory.

TensorFlow keeps every traced function of a process alive (clear_session does not free
them): in one process RSS grew ~50 MB per trial. A spawned child starts clean and gives
everything back when it exits; it reads the decoded arrays from the on-disk cache, reports
each epoch to the same Optuna trial through the storage, and logs its MLflow run under the
search's parent run. The parent only waits for one small message.

Short trials (a smoke search: 2 epochs on a few hundred images, seconds each) would spend
more time starting a process than training, and the next trial's process could not finish
starting TensorFlow behind them: a trial process that finished a short trial (under
SHORT_TRIAL_CPU_S of CPU time) with its memory within REUSE_GROWTH_MB (both in child.py) of
what it held after its first one serves the search's next trial too, warm, then the next,
until one is long or its memory grew past that bound. Long trials keep a fresh process each.

A search's trial processes belong to one TrialPool, which its driver makes and closes; a
trial run alone (`run_isolated` without a pool) gets a pool of its own. This module is the
search's side; benchmark/train/child.py is the trial process's.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from benchmark import stop
from benchmark.config import TrialConfig
from benchmark.train.child import serve

if TYPE_CHECKING:
    from benchmark.train.trial import TrialResult


@dataclass(frozen=True)
class TrialJob:
    """Everything a child needs, all picklable: no live objects cross the process line."""

    cfg: TrialConfig
    data_dir: str | None
    tracking_uri: str
    parent_run_id: str
    run_name: str
    tags: dict[str, str]
    storage: optuna.storages.BaseStorage | None = None  # with study_name, trial_number: prune
    study_name: str | None = None
    trial_number: int | None = None  # the trial's number (its id is looked up in `storage`)
    pruner: optuna.pruners.BasePruner | None = None
    cores: tuple[int, ...] | None = None  # CPUs to pin the trial to (--workers N), None: all
    log_models: str = "all"  # the search's --log-models: `none` keeps no model
    parent_pid: int = field(default_factory=os.getpid)  # the search process
    created_at: float = field(default_factory=time.time)  # wall clock: startup_s starts here


class ChildTraceback(Exception):
    """The child's full traceback as text, chained as the cause of the TrialFailed raised here.

    traceback.format_exc() of that TrialFailed (what the search logs under its parent run's
    `failures/`) then shows the frames where the trial really failed, not only this module's;
    concurrent.futures' process pool hands tracebacks back the same way.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'in the trial process:\n"""\n{self.text.rstrip()}\n"""'


class _Worker:
    """A spawned trial process that imports TensorFlow and opens the tracking store before
    its job arrives, so the next trial's start-up overlaps the current trial's training.

    `threads` (None: TensorFlow's default, every core) sizes the process's TensorFlow and
    tf.data thread pools; with `--workers N` the job's `cores` pin the process to its
    slot's share of the cores (see search.cores.threads_per_trial for why not fewer
    threads). `env` is the environment the process runs in (its pool's)."""

    def __init__(self, tracking_uri: str, threads: int | None, env: dict[str, str]) -> None:
        ctx = multiprocessing.get_context("spawn")  # fork after TF started threads is unsafe
        self.key = (tracking_uri, threads)  # the jobs it may serve (see TrialPool._take)
        job_read, self.job_write = ctx.Pipe(duplex=False)  # (receiving end, sending end)
        self.results, result_write = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=serve,
            args=(job_read, result_write, tracking_uri, os.getpid(), threads, env),
            daemon=True,
        )
        with stop.blocked():  # until the child's own handler is in place (see stop.blocked)
            self.process.start()
        job_read.close()  # the child's ends: closed here, so EOF means the child is gone
        result_write.close()

    def stop(self) -> None:
        self.job_write.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)


class TrialPool:
    """The trial processes of one search: the warm ones waiting for its next trials (one per
    trial slot, each started while a trial trains), the ones training now, and the largest
    peak RSS they reported. The search's driver makes one and closes it at the end
    (`with TrialPool() as pool:`), which ends the warm processes nobody will use.

    Every process of the pool runs in the environment of the moment the pool was made
    (`env`), whatever os.environ holds when the process starts, so a warm process serves
    any job with its store and thread count. Slots are threads of the search process, hence
    the lock.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.spares: list[_Worker] = []  # warm, waiting for a job; the first is next in line
        self.busy: set[_Worker] = set()  # training a job right now
        self.lock = threading.Lock()
        # The largest peak RSS (MB) a trial process reported: those still serving count too,
        # which RUSAGE_CHILDREN (only processes that exited) misses.
        self.peak_trial_rss_mb = 0.0

    def __enter__(self) -> TrialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_prestarted()

    def prestart(self, tracking_uri: str, threads: int | None = None, keep: int = 1) -> None:
        """Start a trial process now (it warms up while others train), keeping at most `keep`
        warm ones: one per trial slot is enough. Warm ones for another store or thread count
        are stopped."""
        key = (tracking_uri, threads)
        with self.lock:
            stale = [w for w in self.spares if w.key != key]
            for w in stale:
                self.spares.remove(w)
            if len(self.spares) < keep:
                self.spares.append(_Worker(tracking_uri, threads, self.env))
        for w in stale:
            w.stop()

    def stop_prestarted(self) -> None:
        """End the warm workers nobody will use (the search is over, or its settings changed)."""
        with self.lock:
            spares = list(self.spares)
            self.spares.clear()
        for w in spares:
            w.stop()

    def interrupt_busy(self) -> int:
        """Ctrl-C the trial processes that are training: what a terminal's Ctrl-C does, for a
        search interrupted by a signal to itself alone (kill -INT). Returns how many."""
        with self.lock:
            busy = [w for w in self.busy if w.process.is_alive()]
        for w in busy:
            try:
                os.kill(w.process.pid, stop.received() or signal.SIGINT)
            except (ProcessLookupError, TypeError):
                pass
        return len(busy)

    def _take(self, tracking_uri: str, threads: int | None) -> _Worker:
        """A warm worker for this store and thread count, or a new one; marked busy."""
        key = (tracking_uri, threads)
        with self.lock:
            worker = next((w for w in self.spares if w.key == key and w.process.is_alive()),
                          None)  # fmt: skip
            if worker is not None:
                self.spares.remove(worker)
        return worker or _Worker(tracking_uri, threads, self.env)

    def _done(self, worker: _Worker, peak_mb: float, again: bool) -> None:
        """A worker that may serve another short trial is first in line for the next one;
        any other gets EOF, which ends it. No join: its exit (TF and MLflow teardown) takes
        seconds and overlaps the next trial; active_children() reaps it later."""
        with self.lock:
            self.peak_trial_rss_mb = max(self.peak_trial_rss_mb, peak_mb)
            if again:
                self.spares.insert(0, worker)
        if not again:
            worker.job_write.close()
        multiprocessing.active_children()

    def run(
        self, job: TrialJob, prestart_next: bool = False, threads: int | None = None,
        keep: int = 1,
    ) -> TrialResult:  # fmt: skip
        """The trial's result, or the exception the trial raised in the child, re-raised here.

        A failure comes back as TrialFailed (the child's one-line reason) caused by a
        ChildTraceback that holds the child's whole traceback. `prestart_next` starts the
        next trial's process as soon as this one has its job, keeping at most `keep` warm.
        `threads` caps the trial process's thread pools.
        """
        from benchmark.train.trial import TrialFailed

        worker = self._take(job.tracking_uri, threads)
        try:
            worker.job_write.send(job)
        except (BrokenPipeError, OSError):
            worker.stop()  # it died while waiting; a fresh one takes the job
            worker = _Worker(job.tracking_uri, threads, self.env)
            worker.job_write.send(job)
        with self.lock:
            self.busy.add(worker)
        if prestart_next:
            self.prestart(job.tracking_uri, threads, keep)
        child, receive = worker.process, worker.results
        try:
            message = receive.recv()  # EOFError: the child died without a word (OOM killer...)
        except EOFError:
            child.join()
            _died(child, TrialFailed, job.tags.get("worker", ""))
        except KeyboardInterrupt:  # SIGTERM / Ctrl-C: pass it on, let it end its run KILLED
            stop.stop_process(child, receive)
            raise
        finally:
            with self.lock:
                self.busy.discard(worker)
        wall = time.time() - job.created_at  # the trial is over once its message is here
        kind, payload, again, peak_mb = message
        # a search's next trial will come: this process may take it
        self._done(worker, peak_mb, again and prestart_next)
        return self._outcome(kind, payload, wall)

    def _outcome(self, kind: str, payload: Any, wall: float) -> TrialResult:
        """The child's message as the trial's result, or as the exception it stands for."""
        from benchmark.train.trial import TrialFailed, TrialResult, record_wall_time

        if kind == "ok":
            return record_wall_time(TrialResult(**payload), wall)
        if kind == "pruned":
            raise optuna.TrialPruned(payload)
        if kind == "interrupted":  # the search's stop reached it, or a signal to it alone
            signum = signal.Signals[payload or "SIGINT"]
            if (why := stop.stopping()) is None:
                raise stop.TrialKilled(f"trial process stopped by {signum.name}", signum)
            raise stop.Stopped(why.signum, why.line)
        if kind == "full":  # a full disk: stop the other trials too, the search stops at once
            from benchmark.train.diskspace import DiskFull

            full = stop.halt(DiskFull(*payload))
            self.interrupt_busy()
            raise full
        reason, child_traceback = payload
        raise TrialFailed(reason) from ChildTraceback(child_traceback)


def run_isolated(
    job: TrialJob, pool: TrialPool | None = None, *, prestart_next: bool = False,
    threads: int | None = None, keep: int = 1,
) -> TrialResult:  # fmt: skip
    """`pool.run(job, ...)`: the trial in a process of `pool` (a search's, which keeps the
    next trial's process warm). Without a pool, one trial alone: a pool of its own, closed
    when the trial ends, so there is no warm process to start for a next one."""
    if pool is None:
        if prestart_next:
            raise ValueError("prestart_next needs a pool that outlives this trial")
        with TrialPool() as own:
            return own.run(job, threads=threads)
    return pool.run(job, prestart_next=prestart_next, threads=threads, keep=keep)


def _died(child, failed: type[Exception], worker: str) -> None:
    """Raise why a trial process ended without a word: the search is stopping (Stopped),
    a signal from outside killed it (TrialKilled: retried once), or it crashed. The run it
    could not end is ended here (KILLED, FAILED), so none stays RUNNING while the search
    goes on."""
    if (why := stop.stopping()) is not None:
        raise stop.Stopped(why.signum, why.line)
    code = child.exitcode
    if code is not None and code < 0:
        hint = " (out of memory?)" if code == -signal.SIGKILL else ""
        reason, status = f"trial process killed by {stop.signal_name(-code)}{hint}", "KILLED"
    else:
        reason, status = f"trial process died with exit code {code}", "FAILED"
    with contextlib.suppress(Exception):  # the reason matters more than this bookkeeping
        where = f"tags.{stop.TAG_PROCESS} = '{child.pid}' and tags.worker = '{worker}'"
        stop.end_runs(where, reason, status)
    if status == "KILLED":
        raise stop.TrialKilled(reason, -code) from None
    raise failed(reason) from None


def isolated_default() -> bool:
    """Child processes unless BENCHMARK_IN_PROCESS=1 (debugging with pdb, profiling)."""
    return os.environ.get("BENCHMARK_IN_PROCESS", "") not in ("1", "true", "yes")
