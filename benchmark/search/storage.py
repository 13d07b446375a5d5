"""Where a study lives: Optuna storages from the string a user gives.

A journal file (the local default, `optuna.journal` beside mlflow.db) takes N concurrent
local writers, the trial slots of `--workers N` and each trial process reporting its epochs,
without SQLite's "database is locked"; any SQLAlchemy URL (PostgreSQL for many machines) gets
heartbeats, so a worker on any machine can fail a dead worker's trial and enqueue it again.
May import: benchmark.errors, benchmark.search.journal.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import mlflow
import optuna

from benchmark.errors import UserError
from benchmark.search import journal

HEARTBEAT_S = 10  # a live trial touches the storage this often...


GRACE_S = 40  # ...so one silent for this long belongs to a dead worker: failed and retried


# An interrupted or dead worker's trial is enqueued again with the same parameters, at most
# 3 times (a configuration that kills its worker every time is not retried forever).
with warnings.catch_warnings():  # "experimental" since Optuna 2.8, still the supported way
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)


JOURNAL = "optuna.journal"  # the embedded default: an append-only log, safe for N writers


LEGACY_SQLITE = "optuna.db"  # the embedded default before --workers: studies there resume


def default_storage(study_name: str | None = None) -> str:
    """Optuna's journal file beside the MLflow store when that is SQLite, else in the cwd.

    A journal file takes concurrent local writers (N trial slots, each trial process
    reporting its epochs) without SQLite's "database is locked". A study begun in the older
    default, `optuna.db` in the same folder, resumes there.
    """
    uri = mlflow.get_tracking_uri()
    folder = "."
    if uri.startswith("sqlite:///"):
        folder = os.path.dirname(uri.removeprefix("sqlite:///")) or "."
    legacy = os.path.join(folder, LEGACY_SQLITE)
    if study_name and os.path.exists(legacy):
        try:
            if study_name in optuna.study.get_all_study_names(f"sqlite:///{legacy}"):
                return f"sqlite:///{legacy}"
        except Exception:  # not an Optuna database: the journal is the default
            pass
    return f"journal://{os.path.abspath(os.path.join(folder, JOURNAL))}"


def journal_path(url: str) -> str | None:
    """The journal file a storage string names (`journal:///abs/path`, `journal:rel/path`,
    or a plain path with no `://`, as optuna-dashboard takes it), else None (an RDB URL)."""
    if url.startswith("journal:"):
        rest = url.removeprefix("journal:")
        return rest.removeprefix("//") if rest.startswith("///") else rest
    return None if "://" in url else url


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file for local work; any SQLAlchemy URL (PostgreSQL for many machines) with
    heartbeats, so any worker can fail a dead worker's trial and enqueue it again."""
    if (path := journal_path(url)) is not None:
        return _open_journal(path)
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


def _open_journal(path: str) -> optuna.storages.BaseStorage:
    """The journal, a torn last record cut off first (one line on stderr says so); a journal
    Optuna cannot replay is one line naming the file and the line, not a traceback."""
    from optuna.storages.journal import JournalFileBackend

    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if (line := journal.mend_tail(path)) is not None:
            print(line, file=sys.stderr, flush=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    except OSError as exc:
        raise UserError(f"Optuna journal {path!r} unusable: {exc.strerror or exc}") from None
    except Exception as exc:  # JSONDecodeError, "Invalid log format.", a record's KeyError
        raise journal.damage(path, f"{type(exc).__name__}: {exc}"[:200]) from None


def redact(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    head, sep, tail = url.partition("@")
    if sep and "://" in head and ":" in head.split("://", 1)[1]:
        scheme, cred = head.split("://", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{tail}"
    return url
