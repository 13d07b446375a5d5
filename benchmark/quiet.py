"""Keep TensorFlow's start-up chatter off the terminal, in every process the project starts.

Why more than TF_CPP_MIN_LOG_LEVEL: since TF 2.16 the start-up lines ("oneDNN custom operations
are on", "Could not find cuda drivers", ...) are written by absl before absl::InitializeLog(),
which ignores that variable, and the error-level "failed call to cuInit" that every process
prints on a machine without a GPU would need level 3, which also hides real errors. So the
variable is set before TensorFlow loads (what it can silence, it does), TensorFlow is imported
and its devices listed (where cuInit runs) with file descriptor 2 captured, and of the captured
lines only those known to be start-up noise are dropped; anything else is written back.

Light on purpose: the CLI and the spawned trial processes import it before TensorFlow.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# The environment every process of the project runs with; a user's own setting wins.
ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TF's own C++ INFO and WARNING lines
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # "Creating initial MLflow database tables..." per store
    # Logging a trial's model checks its input example by loading it back: no progress bar
    # for that download in every trial's output.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

# Set in a trial process started by `--workers N`: how many threads its TensorFlow and
# tf.data pools get (the machine's cores split between the N trials).
THREADS_ENV = "BENCHMARK_THREADS"

_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\] ")
_CONTINUATION = re.compile(r"^To enable the following instructions: .* compiler flags\.$")
_CUINIT = "failed call to cuInit"  # no GPU (or no driver): the run's device tag says CPU anyway


def quiet_environment() -> None:
    """Set ENVIRONMENT's variables that the user did not; children inherit them."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def is_noise(line: str) -> bool:
    """A start-up line of TensorFlow's C++ side that the log level asks to hide."""
    line = line.rstrip("\n")
    if line.startswith(_ABSL_PREAMBLE) or _CONTINUATION.match(line):
        return True
    m = _LOG_LINE.match(line)
    if not m:
        return False
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    severity = "IWEF".index(m.group(1))
    return severity < level or (level >= 1 and severity == 2 and _CUINIT in line)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Capture fd 2 (C++ writes bypass sys.stderr) and write back all but the noise."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not is_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


_RETRACING = "triggered tf.function retracing"


class _NoRetracing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _RETRACING not in record.getMessage()


@contextlib.contextmanager
def no_retracing_warning() -> Iterator[None]:
    """Drop TensorFlow's "N out of the last M calls ... triggered tf.function retracing"
    warning inside the block. Why: the dry run and the halving probe fit several models in
    one process on purpose, each with its own tf.function, and TensorFlow counts those as
    retracing of one function; a trial process fits one model, where the warning stays."""
    logger = logging.getLogger("tensorflow")  # TensorFlow's Python logger (tf.get_logger())
    drop = _NoRetracing()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


@functools.cache
def import_tensorflow() -> None:
    """Import TensorFlow and list its devices quietly; a no-op after the first call that
    returned (functools.cache keeps that fact: TensorFlow loads once per process, so the
    record that it did is the process's, not any caller's)."""
    quiet_environment()
    with filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA is initialised (cuInit) on the first query
