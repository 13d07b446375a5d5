"""Shared fixtures: the offline archives in ../shared/data and isolated caches/stores."""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
from pathlib import Path

import mlflow
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real archives; absent -> skip locally, fail under CI=true (CI must test them)."""
    if not (SHARED_DATA / "cifar-10-python.tar.gz").exists():
        msg = f"real archives not found in {SHARED_DATA} (see ../shared/data/README.md)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One decoded-array cache for the whole run, so each archive is decoded once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made and nothing in it. Making the tables
    (MLflow's migrations) takes 2-4 s; every test that tracks anything starts from a copy."""
    path = tmp_path_factory.mktemp("empty_store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def _fresh_store(empty: Path, tmp_path: Path) -> str:
    """A copy of the empty store in `tmp_path`; its Default experiment keeps artifacts in
    tmp_path/mlruns/0, where MLflow would put them had it made the store here."""
    db = tmp_path / "mlflow.db"
    shutil.copyfile(empty, db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                    (str(tmp_path / "mlruns" / "0"),))  # fmt: skip
    con.close()
    return f"sqlite:///{db}"


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path, session_cache, empty_store):
    """Never touch the user's ~/.keras, ~/.cache, ./mlflow.db or ./mlruns from a test."""
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder is ./mlruns
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(session_cache))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    uri = _fresh_store(empty_store, tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # the module-level URI outlives a test: reset it every time
    while mlflow.active_run():  # a test that failed inside a run must not nest the next one
        mlflow.end_run()
    # mlflow.set_experiment (the CLI's train, called in-process) keeps the experiment's id in
    # a global and in MLFLOW_EXPERIMENT_ID: an id of the last test's store, not this one's.
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    monkeypatch.delenv("BENCHMARK_DATA_DIR", raising=False)
    # Trials in the test process: fast, and monkeypatches reach them. Tests of the default
    # (a process per trial) remove this or pass isolate=True.
    monkeypatch.setenv("BENCHMARK_IN_PROCESS", "1")
    # What earlier tests left alive is not scanned again by this test's full collections
    # (clear_session(free_memory=True) after each in-process trial, the dry run's release):
    # one takes 0.2-0.4 s in a fresh process with TensorFlow loaded, and grows with the
    # objects a test process has accumulated. The young generations go first (cheap), so
    # little garbage is frozen with them.
    gc.collect(1)
    gc.freeze()
    yield
    # mlflow.set_experiment sets MLFLOW_EXPERIMENT_ID in os.environ itself, outside the
    # monkeypatch: left there, a later module's store fixture hands an id of this test's store
    # to its subprocess ("No Experiment with id=1 exists" in CI, after test_ablate_parts).
    for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        os.environ.pop(key, None)
