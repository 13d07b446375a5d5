"""Shared fixtures: the offline archives in ../shared/data and isolated caches/stores."""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path, session_cache):
    """Never touch the user's ~/.keras, ~/.cache, ./mlflow.db or ./mlruns from a test."""
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder is ./mlruns
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(session_cache))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
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
