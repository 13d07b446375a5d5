"""Scale-out for real: a PostgreSQL server on 127.0.0.1 and two worker processes sharing one
Optuna study and one MLflow store; every grid point must run exactly once."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # a PostgreSQL server and two worker processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A throwaway server (Debian's postgresql; .ci/run installs it), trust auth, loopback only."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        msg = "PostgreSQL server binaries not installed (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    bindir = Path(bins[-1]).parent
    # Not under pytest's tmp dir: that one is private to root and postgres must reach it.
    root = Path(tempfile.mkdtemp(prefix="cnn-benchmark-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_pg: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres system user
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run([*as_pg, *cmd], check=True, capture_output=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=100"
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w",
             "start"]  # fmt: skip
    run(*start)
    url = Server(f"postgresql://postgres@127.0.0.1:{port}")
    url.stop = lambda: run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    url.start = lambda: run(*start)
    yield url
    url.stop()
    shutil.rmtree(root, ignore_errors=True)


class Server(str):
    """The server's URL, with `stop()` (immediate: as a crash) and `start()` for tests of a
    database that goes away (tests/test_chaos.py)."""


def _worker(space: Path, dbs: tuple[str, int], cwd: Path, data: Path) -> subprocess.Popen:
    pg, n = dbs
    cmd = [sys.executable, "-m", "benchmark", "search", "--dataset", "cifar10", "--space",
           str(space), "--data-dir", str(data), "--max-train-samples", "200",
           "--storage", f"{pg}/optuna{n}"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"{pg}/mlflow{n}"}
    # BENCHMARK_IN_PROCESS=1 (from conftest) stays: sharing the study is what is tested here
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _space(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(
        textwrap.dedent(f"""
        strategy: grid
        fixed: {{epochs: {epochs}, padding: valid, filters_max: 64, steps_per_execution: 4}}
        space:
          depth: {{values: [2, 3]}}
          kernel_size: {{values: [3, 5]}}
          augmentation: {{values: [none, shift]}}
    """)
    )
    return path


def _complete_points(dbs: tuple[str, int]) -> tuple[Counter, optuna.Study]:
    storage = f"{dbs[0]}/optuna{dbs[1]}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    done = Counter(
        tuple(sorted(t.params.items())) for t in study.trials if t.state == TrialState.COMPLETE
    )
    return done, study


_DB_COUNT = iter(range(1000))


@pytest.fixture()
def clean_dbs(postgres):
    """Fresh optuna/mlflow databases on the shared server for each test."""
    import sqlalchemy

    n = next(_DB_COUNT)
    engine = sqlalchemy.create_engine(f"{postgres}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for db in ("optuna", "mlflow"):
            conn.exec_driver_sql(f"CREATE DATABASE {db}{n}")
    engine.dispose()
    return postgres, n


def test_two_workers_share_the_grid_without_duplicates(tmp_path, shared_data, clean_dbs):
    pg = clean_dbs
    mlflow.set_tracking_uri(f"{pg[0]}/mlflow{pg[1]}")
    mlflow.search_experiments()  # create MLflow's tables once, before two workers race to
    space = _space(tmp_path, epochs=1)
    workers = [_worker(space, pg, tmp_path, shared_data) for _ in range(2)]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), "\n".join(o[-2000:] for o in outs)

    done, study = _complete_points(pg)
    assert len(done) == 8 and set(done.values()) == {1}  # every point, each exactly once
    assert len(study.trials) == 8  # and nothing ran twice
    workers_seen = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers_seen) == 2  # both did share the work
    kids = mlflow.search_runs(search_all_experiments=True,
                              filter_string="tags.cnn_benchmark_role = 'trial'",
                              output_format="list")  # fmt: skip
    assert len(kids) == 8 and all(k.info.status == "FINISHED" for k in kids)


def test_a_killed_worker_trial_is_rerun_by_the_other(tmp_path, shared_data, clean_dbs):
    pg = clean_dbs
    mlflow.set_tracking_uri(f"{pg[0]}/mlflow{pg[1]}")
    mlflow.search_experiments()
    space = _space(tmp_path, epochs=5)
    victim = _worker(space, pg, tmp_path, shared_data)
    for line in victim.stdout:  # its first trial done
        if line.startswith("["):
            break
    survivor = _worker(space, pg, tmp_path, shared_data)
    # Kill it while a trial of its own is RUNNING (a fixed sleep could land between trials)
    mine = f"{socket.gethostname()}:{victim.pid}"
    storage = f"{pg[0]}/optuna{pg[1]}"
    deadline, busy = time.monotonic() + 120, False
    while time.monotonic() < deadline and not busy:
        (summary,) = optuna.get_all_study_summaries(storage)
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
        busy = any(t.state == TrialState.RUNNING and t.user_attrs.get("worker") == mine
                   for t in trials)  # fmt: skip
        time.sleep(0 if busy else 0.2)
    assert busy, "the victim never ran a trial of its own: nothing to kill mid-trial"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    out = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, out[-3000:]

    done, study = _complete_points(pg)
    assert len(done) == 8 and set(done.values()) == {1}
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 1  # the killed trial, rerun with the same parameters:
    assert any(t.system_attrs.get("failed_trial") == failed[0].number
               and t.state == TrialState.COMPLETE for t in study.trials)  # fmt: skip


def test_workers_2_on_postgresql_cover_the_grid_once_under_one_parent(
    tmp_path, shared_data, clean_dbs
):
    """`--workers 2` in one command against PostgreSQL (Optuna and MLflow): every point once,
    both slots used at the same time, every trial run under the one parent."""
    pg, n = clean_dbs
    space = _space(tmp_path, epochs=1)
    cmd = [sys.executable, "-m", "benchmark", "search", "--dataset", "cifar10", "--space",
           str(space), "--data-dir", str(shared_data), "--max-train-samples", "200",
           "--storage", f"{pg}/optuna{n}", "--workers", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": f"{pg}/mlflow{n}"}
    env.pop("BENCHMARK_IN_PROCESS", None)  # workers need trials in their own processes
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "grid covered; 8 complete" in out.stdout

    done, study = _complete_points(clean_dbs)
    assert len(done) == 8 and set(done.values()) == {1} and len(study.trials) == 8
    mlflow.set_tracking_uri(f"{pg}/mlflow{n}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    (parent,) = [r for r in runs if r.data.tags.get("benchmark.role") == "search"]
    kids = [r for r in runs if r.data.tags.get("benchmark.role") == "trial"]
    assert len(kids) == 8 and all(k.info.status == "FINISHED" for k in kids)
    assert {k.data.tags["mlflow.parentRunId"] for k in kids} == {parent.info.run_id}
    spans = sorted((k.info.start_time, k.info.end_time) for k in kids)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))  # in parallel
