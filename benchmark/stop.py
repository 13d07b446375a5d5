"""Stopping a command cleanly: SIGTERM (schedulers, `kill PID`), SIGINT (Ctrl-C) and faults
that make going on pointless (a full disk, benchmark.train.diskspace).

Schedulers stop jobs with SIGTERM, whose default action ends Python at once: the search's
parent run and its running trial would stay RUNNING in MLflow, and the UI would show a search
that never ends. Here both signals raise `Stopped` (a KeyboardInterrupt, so every place that
already cleans up after Ctrl-C cleans up after SIGTERM too): the trial processes are stopped,
the running trial and its parent end KILLED with the signal as a tag, and the command prints
one line and exits with 128+signal. A rerun resumes as after kill -9 (the interrupted trial
is queued again). A watchdog bounds the whole clean-up: whatever hangs (a tracking server that
went away), the process is gone within `DEADLINE_S`.

Light on purpose (the CLI imports it before parsing): MLflow is imported only when needed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import multiprocessing.process
    from multiprocessing.connection import Connection

SIGNALS = (signal.SIGTERM, signal.SIGINT)
TAG_SIGNAL = "stop_signal"  # on a run ended KILLED by a signal: SIGTERM, SIGINT
TAG_PROCESS = "trial_pid"  # the process that trains a trial run (beside its search's `worker`)
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # this process, as its runs' `worker` tag
DEADLINE_S = 9.0  # after the first signal the process exits within this, whatever hangs
CHILD_GRACE_S = 4.0  # how long a stopped trial process gets to end its run before a kill
RESUME = "run the same command to resume"


class Stopped(KeyboardInterrupt):
    """The command was stopped from outside (`signum`) or by a fault (`line` says which:
    a full disk). A KeyboardInterrupt, so Optuna fails the trial and re-raises, the trial
    process ends its run KILLED, and the search requeues the trial on the next run."""

    def __init__(self, signum: int | None = None, line: str | None = None) -> None:
        super().__init__(line or signal_name(signum))
        self.signum, self.line = signum, line

    @property
    def reason(self) -> str:
        """What the runs' `failure_reason` tag and the command's last line say."""
        return self.line or f"stopped by {signal_name(self.signum)}"

    @property
    def exit_code(self) -> int:
        """128+signal, as a shell reports a process a signal ended; 1 for a fault."""
        return 128 + self.signum if self.signum else 1


class _Stop:
    """How far this process's stop has come. One module-level instance (`_state`), on
    purpose: a signal is delivered to the process, its handler runs in whatever frame the
    main thread is in, and the trial slots' threads, the watchdog and a fault's `halt` must
    all see the same first stop, so this state cannot be handed down as an argument."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal this process got
        self.stopping: Stopped | None = None  # why this process is stopping: a signal or a fault
        self.said = threading.Event()  # the one line was printed (by finish or by the watchdog)


_state = _Stop()


def signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum else "SIGINT"


def install(deadline: bool = True) -> None:
    """SIGTERM and SIGINT raise Stopped in the main thread, once: a second signal while the
    first one's clean-up runs is ignored (it would cut the clean-up short and leave runs
    RUNNING); the watchdog (`deadline`) still ends the process in time."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (a command run from a test's thread)
    handler = _on_signal if deadline else _on_signal_no_deadline
    for sig in SIGNALS:
        signal.signal(sig, handler)


def with_parent() -> None:
    """Under `mlflow run`: SIGTERM to `mlflow run` ends it at once without passing the signal
    on; Linux then sends this process SIGTERM (PR_SET_PDEATHSIG), so `mlflow run`'s run and
    the trial still end KILLED instead of the search training on, orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a search whose `mlflow run` died goes on; rerun resumes it anyway


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """SIGTERM and SIGINT held back in this thread while it starts a trial process: the child
    inherits the mask, so a Ctrl-C during its start-up waits for its handler (`unblock`)
    instead of printing a traceback from multiprocessing's bootstrap."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def unblock() -> None:
    """Take the signals `blocked` held back (a pending one is handled now)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def received() -> int | None:
    """The stop signal this process got, or None."""
    return _state.received


def stopping() -> Stopped | None:
    """Why this process is stopping (the first signal, or a fault passed to `halt`), or None."""
    return _state.stopping


def halt(stopped: Stopped) -> Stopped:
    """Record a fault that stops the command (trials stopped because of it are not killed
    from outside); returns it, to be raised."""
    if _state.stopping is None:
        _state.stopping = stopped
    return stopped


def as_stopped(exc: BaseException) -> Stopped:
    """A Ctrl-C that reached Python before install() (or another KeyboardInterrupt) reads as
    SIGINT."""
    return exc if isinstance(exc, Stopped) else Stopped(_state.received or signal.SIGINT)


def reason(exc: BaseException) -> str:
    """The reason a run stopped by `exc` is tagged with: "stopped by SIGTERM", a fault's line."""
    return as_stopped(exc).reason


def run_tags(exc: BaseException) -> dict[str, str]:
    """The tags of a run that `exc` (a KeyboardInterrupt) stopped: the signal, when one."""
    stopped = as_stopped(exc)
    return {TAG_SIGNAL: signal_name(stopped.signum)} if stopped.signum else {}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _first(signum, watchdog=True)


def _on_signal_no_deadline(signum: int, frame: FrameType | None) -> None:
    _first(signum, watchdog=False)


def _first(signum: int, watchdog: bool) -> None:
    if _state.received is not None:
        return  # the first signal's clean-up is under way
    _state.received = signum
    _state.stopping = _state.stopping or Stopped(signum)
    if watchdog:
        timer = threading.Timer(DEADLINE_S, _give_up, args=(Stopped(signum),))
        timer.daemon = True
        timer.start()
    raise Stopped(signum)


def _give_up(stopped: Stopped) -> None:
    """The clean-up hung: say the line anyway and exit (trial processes die with us)."""
    _say(stopped)
    os._exit(stopped.exit_code)


def _say(stopped: Stopped) -> None:
    if not _state.said.is_set():
        _state.said.set()
        tail = "" if stopped.line else f"; {RESUME}"
        print(f"{stopped.reason}{tail}", file=sys.stderr, flush=True)


def finish(exc: BaseException, end_project: Callable[[str, str], None] | None = None) -> int:
    """The end of a stopped command: runs of this process still RUNNING end KILLED (FAILED
    for a fault) with the reason, `mlflow run`'s run too (`end_project(reason, status)`, the
    CLI's: this module stays below the tracking code); one line; the exit code."""
    stopped = halt(as_stopped(exc))
    status = "FAILED" if stopped.line else "KILLED"
    with contextlib.suppress(Exception):
        end_own_runs(stopped)
    if end_project is not None:
        with contextlib.suppress(Exception):
            end_project(stopped.reason, status)
    _say(stopped)
    return stopped.exit_code


def end_own_runs(stopped: Stopped) -> int:
    """Runs this process (its `worker` tag) left RUNNING: KILLED with the reason. Returns how
    many. Its trials' own processes normally ended theirs; one killed at the grace's end, or
    a parent the stop reached before its `with` block, is ended here."""
    if "mlflow" not in sys.modules:
        return 0  # nothing tracked yet
    from benchmark.runfilter import literal

    return end_runs(f"tags.worker = {literal(WORKER)}", stopped.reason, "KILLED",
                    run_tags(stopped))  # fmt: skip


def end_runs(where: str, reason: str, status: str, tags: dict[str, str] | None = None) -> int:
    """End the RUNNING runs that the filter `where` selects with `status` and the reason (a
    process that died cannot end its own); returns how many."""
    import mlflow

    from benchmark import metrics as M

    where = f"{where} and attributes.status = 'RUNNING'"
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string=where)  # fmt: skip
    client = mlflow.MlflowClient()
    for run in runs:
        values = {M.TAG_STATUS_REASON: reason[:500], **(tags or {})}
        client.log_batch(run.info.run_id, tags=[mlflow.entities.RunTag(k, v)
                                                 for k, v in values.items()])  # fmt: skip
        client.set_terminated(run.info.run_id, status=status)
    return len(runs)


class TrialKilled(Exception):
    """A trial process died by a signal while the search was not stopping (kill -9 of the
    trial alone, the OOM killer): not the configuration's own failure the first time."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


def stop_process(
    process: multiprocessing.process.BaseProcess,
    results: Connection | None = None,
    signum: int | None = None,
) -> None:
    """Pass the stop on to a trial process (it ignores a second one), give it CHILD_GRACE_S
    to end its run KILLED and say so on `results` (or to exit), then kill it: what is left
    of its exit (TensorFlow's teardown) would only delay ours."""
    with contextlib.suppress(ProcessLookupError, TypeError, OSError):
        os.kill(process.pid, signum or _state.received or signal.SIGINT)
    with contextlib.suppress(OSError, EOFError):
        if results is not None and results.poll(CHILD_GRACE_S):
            results.recv()  # its run is ended: nothing more to wait for
        else:
            process.join(timeout=CHILD_GRACE_S)
    if process.is_alive():
        process.kill()
        process.join(timeout=2)


def exit_now(code: int) -> None:
    """A stopped command ends here, skipping the interpreter's teardown (TensorFlow's,
    multiprocessing's joins: seconds) once its runs are ended and its line printed; a
    command that was not stopped returns."""
    if _state.stopping is None:
        return
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
