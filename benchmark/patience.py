"""Riding out a database that goes away for seconds: a PostgreSQL restart, a failover, a
network blip between the workers and the server.

Without this, one refused connection in any of the many places a search touches its stores
(a trial's epoch metrics, Optuna's tell, the heartbeat thread, a warm trial process loading
the study) ends the trial FAILED or the search with a page of traceback, and the grid point
is lost. Here every call of MLflow's SQL store and of Optuna's RDB storage that fails for a
lost connection is retried, with backoff, for up to WAIT_S; any other error (a bad query,
a full disk, SQLite's own locking) is raised at once as before. `install()` patches both
classes once per process: the search and each trial process call it first.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

WAIT_S = 90.0  # a database down longer than this fails the calls as before
BACKOFF_S = (0.5, 1.0, 2.0, 3.0)  # then every 3 s
GONE = (
    "connection refused",
    "connection failed",
    "could not connect",
    "server closed the connection",
    "the database system is starting up",
    "the database system is shutting down",
    "terminating connection due to administrator command",
    "connection is closed",
    "ssl connection has been closed",
    "connection timed out",
    "no connection to the server",
)
log = logging.getLogger(__name__)


class _Patience:
    """Whether this process patched the store classes, and when it last said it is retrying.
    One module-level instance (`_state`), on purpose: the patched classes are the process's
    own (every store object of every thread uses them), so having patched them is a fact
    about the process, and one line per outage means one whichever call met it first."""

    def __init__(self) -> None:
        self.installed = False
        self.warned = 0.0  # when the last "retrying" line was logged: one per outage, not per call


_state = _Patience()


def lost_connection(exc: BaseException) -> bool:
    """Whether `exc` (or an exception in its chain) says the database went away, as opposed
    to refusing what was asked (those are not retried)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "connection_invalidated", False):  # SQLAlchemy: a dropped connection
            return True
        text = str(exc).lower()
        if any(g in text for g in GONE):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def patient(fn: Callable) -> Callable:
    """`fn`, retried while the database is away (up to WAIT_S)."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + WAIT_S
        for attempt in range(10**6):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not lost_connection(exc) or time.monotonic() > deadline:
                    raise
                _warn_once()
                time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        raise AssertionError("unreachable")

    call.__patient__ = True
    return call


def _warn_once() -> None:
    if time.monotonic() - _state.warned > WAIT_S:
        _state.warned = time.monotonic()
        log.warning("database unreachable; retrying for up to %.0f s", WAIT_S)


def _patch(cls: type, extra: tuple[str, ...] = ()) -> None:
    for name, fn in list(vars(cls).items()):
        public = not name.startswith("_") or name in extra
        if public and inspect.isfunction(fn) and not getattr(fn, "__patient__", False):
            setattr(cls, name, patient(fn))


def install() -> None:
    """Make MLflow's SQL tracking store and Optuna's RDB storage patient, once per process."""
    if _state.installed:
        return
    _state.installed = True
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from optuna.storages import RDBStorage

    _patch(SqlAlchemyStore)
    _patch(RDBStorage, extra=("__setstate__",))  # a trial process loads it: it connects
    # Each retried statement would also be logged by MLflow with its traceback.
    logging.getLogger("mlflow.store.db.utils").addFilter(_not_while_away)


def _not_while_away(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not (lost_connection(exc) if exc is not None else False)
