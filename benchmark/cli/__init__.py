"""`python -m benchmark {train,search,ablate,report,efficiency,bench,predict,retime}`.

Options are generated from TrialConfig's fields, so a new setting is one dataclass line (its
end-of-line comment becomes the flag's help). Bad input becomes one line on stderr and exit
code 2, never a traceback or a usage block; under `mlflow run` the line names the
`-P name=value` form the user typed. This module and what it imports at the top stay light:
`--help` answers without TensorFlow, MLflow or the report's pandas; the commands import what
they need when they run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from benchmark import patience, stop
from benchmark.cli.commands import config_from_args
from benchmark.cli.messages import (
    _dashes,
    _fail,
    _lazy,
    _options,
    _unrecognized,
    as_mlflow_parameters,
    project_run_id,
)
from benchmark.cli.options import add_config_options, build_parser
from benchmark.errors import UserError
from benchmark.train.diskspace import no_space, quiet_store_errors

__all__ = ["add_config_options", "as_mlflow_parameters", "build_parser", "config_from_args",
           "main"]  # fmt: skip

# Commands whose work imports TensorFlow: it is imported first, quietly (benchmark/quiet.py).
TENSORFLOW_COMMANDS = frozenset(
    {"train", "search", "ablate", "efficiency", "bench", "predict", "retime", "lab"}
)


class OnceEach(logging.Filter):
    """Each distinct message once: the lab loads a dataset for its plan, its probe and each
    stage's search, and said "dataset 'cifar10' from ..." every time, in one process."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def main(argv: Sequence[str] | None = None) -> int:
    from benchmark import quiet

    project_run = project_run_id()  # read now: prepare_tracking takes it from the environment
    quiet.quiet_environment()  # before anything imports TensorFlow or MLflow
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Two INFO lines per trial about the system-metrics thread starting and stopping would
    # bury the progress lines; its warnings and errors still show.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    logging.getLogger("benchmark.data.load").addFilter(OnceEach())
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(_dashes(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0), or Parser.error printed its one line (2)
        return exc.code if isinstance(exc.code, int) else 0
    options = _options(parser.commands[args.command])
    if extra:
        return _fail(_unrecognized(extra, options, bool(project_run)), set(), project_run)
    stop.install()  # SIGTERM and Ctrl-C: runs end KILLED, one line, exit 128+signal
    if project_run and argv is None:  # the command itself, not a call from a test
        stop.with_parent()  # `mlflow run` itself stopped: stop as if signalled
    quiet_store_errors()  # a full disk: one line, not MLflow's tracebacks of each statement
    try:
        if args.command in TENSORFLOW_COMMANDS:
            quiet.import_tensorflow()  # its C++ start-up lines filtered out, real errors kept
        patience.install()  # a database away for seconds: calls retried, not failed
        return args.func(args)
    except UserError as exc:
        if (full := no_space(exc)) is not None:  # the data cache's disk is full
            return stop.finish(full, _ender(project_run))
        return _fail(str(exc), options, project_run)  # under `mlflow run`: its run FAILED
    except KeyboardInterrupt as exc:  # a stop signal, or a full disk a trial ran into
        return stop.finish(exc, _ender(project_run))
    except Exception as exc:  # a full disk where the search itself writes: one line too
        if (full := no_space(exc)) is not None:
            return stop.finish(full, _ender(project_run))
        damaged = _lazy("benchmark.train.tracking", "damaged_store")
        if (line := damaged(exc, getattr(args, "tracking_uri", None))) is not None:
            return _fail(line, options, project_run)  # a half-written SQLite store
        raise


def _ender(project_run: str | None):
    """How a stopped command ends `mlflow run`'s run (None outside it): KILLED or FAILED with
    the reason, through the tracking code (imported only then: --help stays light)."""
    if not project_run:
        return None

    def end(reason: str, status: str) -> None:
        _lazy("benchmark.train.tracking", "end_project_run")(project_run, reason, status)

    return end
