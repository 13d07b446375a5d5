"""Shared fixtures: the offline archives in ../shared/data and isolated caches/stores."""

from __future__ import annotations

import os
from pathlib import Path

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
    """Never touch the user's ~/.keras, ~/.cache or ./mlflow.db from a test."""
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(session_cache))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("BENCHMARK_DATA_DIR", raising=False)
