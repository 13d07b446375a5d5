"""A trial logs what its fit cost in CPU and the load it trained beside: a real tiny trial on
a quiet machine is tagged `clean`, the same trial beside processes spinning on every core is
tagged `contended`; both log positive CPU metrics (no timing thresholds: the machine varies)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import mlflow
import psutil
import pytest

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.data import load_dataset
from benchmark.train.cost import CLEAN_OTHER_CORES, host_busy_s, own_cpu_s, timing_tag
from benchmark.train.trial import run_trial

CFG = TrialConfig.from_options(model="seed", augmentation="none", epochs=2,
                               max_train_samples=300, steps_per_execution=4)  # fmt: skip


@pytest.fixture(scope="module")
def cifar_small(shared_data, session_cache):
    return load_dataset("cifar10", data_dir=shared_data, max_train_samples=300,
                        cache_dir=session_cache)  # fmt: skip


@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[list[subprocess.Popen]]:
    """n Python processes spinning a core each; killed (and reaped) when the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them start spinning before the fit's first measurement
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)


def _others_cores(seconds: float = 1.0) -> float:
    """Cores other processes keep busy right now (this test process excluded)."""
    busy0, own0 = host_busy_s(), own_cpu_s()
    time.sleep(seconds)
    return (host_busy_s() - busy0 - (own_cpu_s() - own0)) / seconds


def _cost_of(run_id: str) -> tuple[dict[str, float], str]:
    run = mlflow.get_run(run_id)
    return run.data.metrics, run.data.tags[M.TAG_TIMING]


def _assert_cost_metrics(m: dict[str, float]) -> None:
    for key in (M.CPU_TIME, M.CPU_MS_PER_IMAGE):
        assert m[key] > 0, key
    assert 0.0 <= m[M.HOST_BUSY_OTHER] <= 1.0


def test_a_quiet_trial_is_clean_and_logs_its_cpu_cost(cifar_small):
    if _others_cores() >= CLEAN_OTHER_CORES:
        pytest.skip("other processes keep this machine busy: no clean timing can be had now")
    m, timing = _cost_of(run_trial(CFG, cifar_small, verbose=0).run_id)
    _assert_cost_metrics(m)
    assert timing == timing_tag(m[M.HOST_BUSY_OTHER], psutil.cpu_count())
    assert timing == "clean"


def test_a_trial_beside_busy_processes_is_contended(cifar_small):
    with busy_processes(psutil.cpu_count() or 2):
        m, timing = _cost_of(run_trial(CFG, cifar_small, verbose=0).run_id)
    _assert_cost_metrics(m)
    assert timing == "contended"
    assert m[M.HOST_BUSY_OTHER] > 0


def test_the_tag_rule():
    assert timing_tag(0.1, 2) == "clean"  # 0.2 of a core
    assert timing_tag(0.125, 2) == "contended"  # a quarter of a core
    assert timing_tag(0.05, 8) == "contended"  # 0.4 of a core


def test_the_searchs_own_processes_are_logged_apart_not_as_load_beside_the_trial(cifar_small):
    """A one-worker search starts the next trial's process (TensorFlow's start-up) while a
    trial trains: that work is the search's own (`host_busy_search`), not a neighbour's, so a
    quiet lab's short trainings are not flagged contended for it. Here a spinning child of
    this process stands for it, this process for the search."""
    import os

    with busy_processes(1):
        run_id = run_trial(CFG, cifar_small, verbose=0, search_pid=os.getpid()).run_id
    m, timing = _cost_of(run_id)
    assert m[M.HOST_BUSY_SEARCH] > 0.1  # a spinning core: about half of a 2-core machine
    if _others_cores() < CLEAN_OTHER_CORES:  # no real neighbour: nothing else was load
        assert timing == "clean" and m[M.HOST_BUSY_OTHER] < m[M.HOST_BUSY_SEARCH]
    m, _ = _cost_of(run_trial(CFG, cifar_small, verbose=0).run_id)
    assert M.HOST_BUSY_SEARCH not in m  # no search: nothing is set apart
