"""A full disk (tracking store, artifacts, Optuna journal or data cache): one line naming the
place and its free space, instead of a page of SQLAlchemy traceback; and a warning before a
search that its store's filesystem is likely too small for it.

A full disk is not the configuration's fault: the trial it hit fails with the reason but is
queued again (like an interrupted one), the search stops at once (`DiskFull` is a `Stopped`),
and after space is freed the same command completes the grid.
Light: MLflow is imported only when needed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from benchmark.runfilter import literal
from benchmark.stop import RESUME, Stopped

SQLITE_FULL = "database or disk is full"
NO_SPACE = "No space left on device"
NEARLY_FULL = 64 * 2**20  # a filesystem with less free than this is the full one
DEFAULT_ARTIFACTS_MB = 2.0  # a trial's curves, previews, summary and config, when unmeasured


class DiskFull(Stopped):
    """No space left where the command writes: the search stops, the rerun resumes."""

    def __init__(self, path: str, line: str | None = None) -> None:
        self.path = path
        super().__init__(line=line or f"no space left on {path} ({_size(free_bytes(path))} "
                         f"free): free some space and {RESUME}")  # fmt: skip


def no_space(exc: BaseException) -> DiskFull | None:
    """The DiskFull that `exc` (or an exception in its chain) means, or None. Remembered on
    `exc`: asked again later (after its run ended) it names the same place."""
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, DiskFull) or isinstance(getattr(e, "_disk_full", None), DiskFull):
            return e if isinstance(e, DiskFull) else e._disk_full
    found = None
    for e in chain:
        text = str(e)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            found = DiskFull(_where(e.filename))
        elif SQLITE_FULL in text:  # SQLite names no file: the store's
            found = DiskFull(store_path() or _where(None))
        elif NO_SPACE in text:
            found = DiskFull(_where(_path_in(text)))
        if found is not None:
            with contextlib.suppress(AttributeError, TypeError):
                exc._disk_full = found
            return found
    return None


def quiet_store_errors() -> None:
    """MLflow logs every failed SQL statement with its traceback (pages of them when the disk
    is full); those of a full disk are dropped: the command says it in one line instead."""
    logger = logging.getLogger("mlflow.store.db.utils")
    if _keep_record not in logger.filters:
        logger.addFilter(_keep_record)


def _keep_record(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not (SQLITE_FULL in record.getMessage() or (exc is not None and no_space(exc)))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _path_in(text: str) -> str | None:
    """An absolute path a message names ("cannot write to cache directory /x: ..."), if any."""
    found = re.search(r"(/[^\s:'\"()]+)", text)
    return found[1] if found and os.path.exists(os.path.dirname(found[1]) or "/") else None


def _where(path: str | os.PathLike | None) -> str:
    """The place to free: the file the error names when its filesystem is nearly full, else
    (for a copy it may name the source) the fullest place the command writes: the run's
    artifacts, the tracking store, the data cache."""
    if path and free_bytes(str(path)) < NEARLY_FULL:
        return str(path)
    places = candidate_places() or [str(path or os.getcwd())]
    return min(places, key=free_bytes)


def candidate_places() -> list[str]:
    """Where a search writes: the SQLite tracking store, the local artifact root, the data
    cache (each as the nearest folder that exists)."""
    import mlflow

    from benchmark.data.cache import cache_root

    run = mlflow.active_run()  # a trial logging its artifacts: its own folder first
    uri = run.info.artifact_uri if run else ""
    here = uri.removeprefix("file://") if uri.startswith(("file://", "/")) else None
    places = [here, store_path(), artifact_path(), str(cache_root())]
    return [p for p in (_existing(p) for p in places if p) if p]


def store_path() -> str | None:
    """The SQLite file of the tracking store, or None (a server, PostgreSQL)."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    return uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None


def artifact_path() -> str | None:
    """Where local artifacts go: ./mlruns beside a local store, or a file: URI; else None."""
    import mlflow

    try:
        exp_id = mlflow.tracking.fluent._get_experiment_id()
        location = mlflow.MlflowClient().get_experiment(exp_id).artifact_location
    except Exception:  # no experiment yet: MLflow's default for a local store
        location = os.path.abspath("mlruns")
    if location.startswith("file://"):
        location = location.removeprefix("file://")
    return location if location.startswith("/") else None


def _existing(path: str) -> str | None:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return str(p) if p.exists() else None


def free_bytes(path: str) -> int:
    try:
        return shutil.disk_usage(_existing(path) or "/").free
    except OSError:
        return 0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def artifacts_per_trial_mb(runs: list) -> float:
    """The median size of finished trials' local artifact folders, or DEFAULT_ARTIFACTS_MB."""
    sizes = []
    for run in runs[:20]:
        uri = run.info.artifact_uri or ""
        folder = Path(uri.removeprefix("file://"))
        if uri.startswith(("file://", "/")) and folder.is_dir():
            sizes.append(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()))
    sizes.sort()
    return sizes[len(sizes) // 2] / 2**20 if sizes else DEFAULT_ARTIFACTS_MB


def space_warning(trials: int, study_name: str) -> str | None:
    """One line when the store's filesystem has less free space than `trials` more trials
    are likely to need (artifacts per trial x trials, measured on this study's finished
    runs when there are some), else None."""
    import mlflow

    places = [p for p in (store_path(), artifact_path()) if p and _existing(p)]
    if not places or trials <= 0:
        return None
    try:
        runs = mlflow.search_runs(
            search_all_experiments=True, output_format="list", max_results=20,
            filter_string=f"tags.study_name = {literal(study_name)}"
            " and attributes.status = 'FINISHED'",
        )  # fmt: skip
    except Exception:  # a store that cannot answer says so itself, later
        runs = []
    need = artifacts_per_trial_mb(runs) * 2**20 * trials
    place = min(places, key=free_bytes)
    free = free_bytes(place)
    if free >= need:
        return None
    each = _size(need / trials)
    return (f"warning: {place} has {_size(free)} free; this search likely needs about "
            f"{_size(need)} ({trials} runs x about {each} of artifacts)")  # fmt: skip
