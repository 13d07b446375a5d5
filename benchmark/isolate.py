"""Run one trial in a fresh process, so a long search keeps flat memory.

TensorFlow keeps every traced function of a process alive (clear_session does not free
them): in one process RSS grew ~50 MB per trial. A spawned child starts clean and gives
everything back when it exits; it reads the decoded arrays from the on-disk cache, reports
each epoch to the same Optuna trial through the storage, and logs its MLflow run under the
search's parent run. The parent only waits for one small message.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass, field

import optuna

from benchmark.config import TrialConfig
from benchmark.trial import TrialFailed, TrialResult


@dataclass(frozen=True)
class TrialJob:
    """Everything a child needs, all picklable: no live objects cross the process line."""

    cfg: TrialConfig
    data_dir: str | None
    tracking_uri: str
    parent_run_id: str
    run_name: str
    tags: dict[str, str]
    storage_url: str | None = None  # with study_name and trial_id: report epochs, prune
    study_name: str | None = None
    trial_id: int | None = None
    pruner: optuna.pruners.BasePruner | None = None
    parent_pid: int = field(default_factory=os.getpid)  # the search process


def run_isolated(job: TrialJob) -> TrialResult:
    """The trial's result, or the exception the trial raised in the child, re-raised here."""
    ctx = multiprocessing.get_context("spawn")  # fork after TF started its threads is unsafe
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(job, send), name=f"trial-{job.run_name}")
    child.start()
    send.close()
    try:
        message = receive.recv()  # EOFError: the child died without a word (OOM killer...)
    except EOFError:
        child.join()
        raise TrialFailed(
            f"trial process died with exit code {child.exitcode}"
            + (" (killed: out of memory?)" if child.exitcode == -signal.SIGKILL else "")
        ) from None
    except KeyboardInterrupt:
        child.join(timeout=30)  # Ctrl-C reached the child too: let it mark its run KILLED
        raise
    child.join()
    kind, payload = message
    if kind == "ok":
        return TrialResult(**payload)
    if kind == "pruned":
        raise optuna.TrialPruned(payload)
    if kind == "interrupted":
        raise KeyboardInterrupt
    raise TrialFailed(payload)


def _child(job: TrialJob, send) -> None:
    _die_with_parent(job.parent_pid)
    import logging

    with _quiet_stderr():  # TF's C++ start-up lines, once per trial, would bury the progress
        import mlflow
        import tensorflow  # noqa: F401

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # as the CLI does
    from benchmark.trial import load_for, run_trial

    mlflow.set_tracking_uri(job.tracking_uri)
    callbacks = []
    if job.trial_id is not None:
        from benchmark.search import PruningCallback

        study = optuna.load_study(
            study_name=job.study_name, storage=job.storage_url, pruner=job.pruner
        )
        callbacks.append(PruningCallback(optuna.Trial(study, job.trial_id)))
    try:
        result = run_trial(
            job.cfg,
            load_for(job.cfg, job.data_dir),
            callbacks=callbacks,
            parent_run_id=job.parent_run_id,
            run_name=job.run_name,
            tags=job.tags,
            verbose=0,
        )
        send.send(("ok", {"run_id": result.run_id, "metrics": result.metrics,
                          "history": result.history}))  # fmt: skip
    except optuna.TrialPruned as exc:
        send.send(("pruned", str(exc)))
    except KeyboardInterrupt:
        send.send(("interrupted", ""))
    except BaseException as exc:  # every failure goes back to the search, with its reason
        send.send(("failed", (str(exc) or type(exc).__name__) + _where(exc)))


@contextlib.contextmanager
def _quiet_stderr():
    """fd 2 to /dev/null: the C++ logs bypass Python's sys.stderr and TF_CPP_MIN_LOG_LEVEL."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _where(exc: BaseException) -> str:
    if isinstance(exc, TrialFailed):
        return ""  # its message is the whole story ("nan loss at epoch 3")
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    return "".join(f" ({os.path.basename(f.filename)}:{f.lineno})" for f in last)


def _die_with_parent(parent_pid: int) -> None:
    """kill -9 of the search must not leave a trial training on: Linux can tie us to it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere an orphan finishes its trial; the resumed search reruns it anyway
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def isolated_default() -> bool:
    """Child processes unless BENCHMARK_IN_PROCESS=1 (debugging with pdb, profiling)."""
    return os.environ.get("BENCHMARK_IN_PROCESS", "") not in ("1", "true", "yes")
