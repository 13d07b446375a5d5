"""The trial process's side of benchmark/train/isolate.py: warm up, take a job, train it,
report one message; again while its trials are short and its memory stays within bounds.

Every child imports this module first (it holds the child's entry point), so it must not
import TensorFlow at the top: the child imports TF itself, through benchmark/quiet.py, or TF's
start-up lines would print once per trial.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any  # job: an isolate.TrialJob (the parent imports us)

import optuna
import psutil

from benchmark import patience, stop
from benchmark.quiet import THREADS_ENV, import_tensorflow
from benchmark.train.diskspace import quiet_store_errors

SHORT_TRIAL_CPU_S = 30.0  # a trial process serves another after a trial using less CPU...
REUSE_GROWTH_MB = 256  # ...while its RSS stays within this of its RSS after its first trial

if TYPE_CHECKING:
    from benchmark.train.trial import TrialResult


def serve(jobs, send, tracking_uri: str, parent_pid: int, threads: int | None,
          env: dict[str, str] | None = None) -> None:  # fmt: skip
    """The trial process: warm up, wait for a job, run it, report; again while the trials
    are short and memory stays within bounds (the report says so), else exit. `env`: the
    environment to run in (its pool's, as when the pool was made), before anything reads it."""
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    stop.install(deadline=False)  # SIGTERM / Ctrl-C: end the run KILLED, then report it
    quiet_store_errors()  # a full disk is reported once, by the search
    patience.install()  # before the job (its Optuna storage connects) arrives
    _die_with_parent(parent_pid)
    if threads is not None:  # read by runtime.configure_threads and the tf.data pipelines
        os.environ[THREADS_ENV] = str(threads)
    try:
        stop.unblock()  # a signal that came while we started is delivered here
        _warm_up(tracking_uri)
    except BaseException:  # the job's own run reports whatever is really broken
        pass
    first_mb = None
    while True:
        try:
            job = jobs.recv()
        except (EOFError, KeyboardInterrupt):
            return  # the search ended (or was interrupted), or it has no job for us
        started = time.process_time()  # CPU time: other load does not make a trial "long"
        kind, payload = _child(job)
        again = time.process_time() - started < SHORT_TRIAL_CPU_S and kind in ("ok", "pruned")
        if again:  # a short trial that ended as trials do: may this process serve another?
            rss_mb = psutil.Process().memory_info().rss / 2**20
            first_mb = rss_mb if first_mb is None else first_mb
            again = rss_mb <= first_mb + REUSE_GROWTH_MB
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        send.send((kind, payload, again, peak_mb))
        if not again:
            return
        _release()  # while the search hands out the next trial


def _release() -> None:
    """Let the finished trial's Keras state go (its traced functions stay: TensorFlow keeps
    them, hence the memory bound)."""
    import gc

    import keras

    keras.backend.clear_session(free_memory=True)
    gc.collect()


def _warm_up(tracking_uri: str) -> None:
    """What every trial pays once per process: TF, Keras, MLflow's store, the version tags."""
    import logging

    import_tensorflow()
    import mlflow

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    # A process that serves several trials traces each one's new model: that is no mistake
    logging.getLogger("tensorflow").addFilter(
        lambda record: "triggered tf.function retracing" not in record.getMessage()
    )
    from benchmark.train import trial  # noqa: F401  (Keras, the model and pipeline modules)
    from benchmark.train.runtime import configure_threads, version_tags

    configure_threads()  # before TensorFlow runs its first op

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.MlflowClient().search_experiments(max_results=1)  # engine, schema check
    version_tags()


def _child(job: Any) -> tuple[str, object]:
    """Run the job; the message for the search: every failure, even one while starting."""
    try:
        if (signum := stop.received()) is not None:  # stopped before the job arrived
            raise stop.Stopped(signum)
        result = _train(job)
        return "ok", {"run_id": result.run_id, "metrics": result.metrics,
                      "history": result.history}  # fmt: skip
    except optuna.TrialPruned as exc:
        return "pruned", str(exc)
    except KeyboardInterrupt as exc:
        return "interrupted", stop.signal_name(stop.as_stopped(exc).signum)
    except BaseException as exc:  # every failure goes back to the search, with its reason
        from benchmark.train.diskspace import no_space

        if (full := no_space(exc)) is not None:  # not the trial's fault: the search stops
            return "full", (full.path, full.line)
        return "failed", (_reason(exc), traceback.format_exc())


def _train(job: Any) -> TrialResult:
    import logging

    import_tensorflow()  # TF's C++ start-up lines, once per trial, would bury the progress
    import mlflow

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # as the CLI does
    from benchmark import metrics as M
    from benchmark.train.trial import load_for, run_trial

    timings = {M.STARTUP_TIME: time.time() - job.created_at}  # spawn, imports, TF start-up
    if job.cores is not None:
        from benchmark.train.runtime import pin_to_cores

        pin_to_cores(job.cores)
    mlflow.set_tracking_uri(job.tracking_uri)
    callbacks = []
    if job.trial_number is not None:
        callbacks.append(_pruning(job))
    started = time.perf_counter()
    data = load_for(job.cfg, job.data_dir)
    timings[M.DATA_TIME] = time.perf_counter() - started
    return run_trial(
        job.cfg,
        data,
        timings=timings,
        callbacks=callbacks,
        parent_run_id=job.parent_run_id,
        run_name=job.run_name,
        tags=job.tags | {stop.TAG_PROCESS: str(os.getpid())},  # the process to stop or kill
        verbose=0,
        log_models=job.log_models,
        # one worker: the search's own processes (the next trial's warming up) are not load
        # beside this fit; with several, another worker's training is (cost.CostMeter)
        search_pid=job.parent_pid if job.cores is None else None,
    )


def _pruning(job: Any) -> Any:
    """The callback that reports each epoch to the search's trial and prunes it: the trial
    found by its number through the storage's public API, as the search holds it."""
    from benchmark.train.callbacks import PruningCallback

    store = job.storage
    study = optuna.load_study(study_name=job.study_name, storage=store, pruner=job.pruner)
    study_id = store.get_study_id_from_name(job.study_name)
    trial_id = store.get_trial_id_from_study_id_trial_number(study_id, job.trial_number)
    return PruningCallback(optuna.Trial(study, trial_id))


def _reason(exc: BaseException) -> str:
    """The one-line reason for the progress line: the message and the frame that raised."""
    text = str(exc) or type(exc).__name__
    trial = sys.modules.get("benchmark.train.trial")
    if trial is not None and isinstance(exc, trial.TrialFailed):
        return text  # its message is the whole story ("nan loss at epoch 3")
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    return text + "".join(f" ({os.path.basename(f.filename)}:{f.lineno})" for f in last)


def _die_with_parent(parent_pid: int) -> None:
    """kill -9 of the search must not leave a trial training on: Linux can tie us to it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere an orphan finishes its trial; the resumed search reruns it anyway
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
