"""Chaos as a test: a search stopped and killed every way a machine does it, a database that
goes away, a disk that fills, a report read mid-search; then a rerun must leave every grid
point complete exactly once (in Optuna and as one FINISHED MLflow run), nothing RUNNING, and
a report that lists each configuration once.

Seeded (the kinds and the moments), bounded: trials of 200 images and one epoch.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import psutil
import pytest
import test_scaleout
from optuna.trial import TrialState
from test_scaleout import _complete_points, _space

from benchmark import stop
from benchmark.report import load_runs, split_by_dataset, write_reports
from benchmark.report.stats import summarize
from benchmark.search.storage import make_storage

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
postgres, clean_dbs = test_scaleout.postgres, test_scaleout.clean_dbs  # its server, reused
SEED = 23
GRID = """
    strategy: grid
    fixed: {epochs: EPOCHS, padding: valid, filters_max: 32, steps_per_execution: 4}
    space:
      depth: {values: [2, 3]}
      kernel_size: {values: [3, 5]}
      augmentation: {values: AUGS}
"""
KINDS = ("sigterm", "sigint_group", "kill9_search", "kill9_group", "kill9_trial")
RESUME_LINE = re.compile(r"^stopped by SIG(TERM|INT); run the same command to resume$")


def _grid(tmp_path: Path, augs: str = "[none, shift, grayscale]", epochs: int = 1) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(textwrap.dedent(GRID).replace("AUGS", augs).replace("EPOCHS", str(epochs)))
    return path


class Search:
    """One `python -m benchmark search` in its own session (as a terminal's job would be),
    its output in files the test reads while it runs."""

    count = 0

    def __init__(self, cwd: Path, space: Path, data: Path, env: dict, *extra: str) -> None:
        Search.count += 1
        self.out, self.err = (cwd / f"search{Search.count}.{k}" for k in ("out", "err"))
        cmd = [sys.executable, "-m", "benchmark", "search", "--dataset", "cifar10", "--space",
               str(space), "--data-dir", str(data), "--max-train-samples", "200",
               *extra]  # fmt: skip
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err,
                                         start_new_session=True)  # fmt: skip

    def text(self, which: str = "out") -> str:
        return (self.out if which == "out" else self.err).read_text()

    def completed(self) -> int:
        """Trials this process saw complete (progress lines with a value)."""
        return len(re.findall(r"^\[\d+/\d+\] .* val_accuracy ", self.text(), re.M))

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BENCHMARK_IN_PROCESS", None)  # the default: each trial in its own process
    return env


def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _training_trial(search: Search) -> int | None:
    """The pid of a trial process of `search` training now (its run RUNNING), or None."""
    runs = mlflow.search_runs(
        search_all_experiments=True, output_format="list",
        filter_string="tags.cnn_benchmark_role = 'trial' and attributes.status = 'RUNNING'",
    )  # fmt: skip
    try:
        kids = {p.pid for p in psutil.Process(search.proc.pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return None
    pids = [int(r.data.tags.get(stop.TAG_PROCESS, 0)) for r in runs]
    return next((p for p in pids if p in kids), None)


def _running_runs() -> list:
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="attributes.status = 'RUNNING'")  # fmt: skip


def _chaos_round(kind: str, search: Search, rng: random.Random) -> tuple[str, bool]:
    """Wait for progress (a trial completes) and a trial training, then hit. Returns what
    happened and whether the search process is gone."""
    before = search.completed()
    _until(lambda: search.completed() > before or search.proc.poll() is not None, 600,
           "a trial to complete")  # fmt: skip
    if search.proc.poll() is not None:
        return f"search ended by itself (rc {search.proc.returncode})", True
    victim = _until(lambda: _training_trial(search) or search.proc.poll() is not None, 300,
                    "a trial to train")  # fmt: skip
    if search.proc.poll() is not None:
        return f"search ended by itself (rc {search.proc.returncode})", True
    time.sleep(rng.uniform(0.0, 2.0))  # somewhere in the trial, or already past it
    if kind == "kill9_trial":
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
        _until(lambda: not [r for r in _running_runs()  # its run ended while the search goes on
                            if r.data.tags.get(stop.TAG_PROCESS) == str(victim)],
               60, "the killed trial's run to end")  # fmt: skip
        return f"kill -9 of trial process {victim}", False
    kids = psutil.Process(search.proc.pid).children(recursive=True)
    sig = {"sigterm": signal.SIGTERM, "sigint_group": signal.SIGINT}.get(kind, signal.SIGKILL)
    t0 = time.monotonic()
    if kind.endswith("_group"):
        os.killpg(search.proc.pid, sig)
    else:
        search.proc.send_signal(sig)
    rc = search.wait(timeout=30)
    took = time.monotonic() - t0
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, f"{kind}: trial processes outlived the search"
    if sig != signal.SIGKILL:  # a stop: in time, one line, 128+signal, nothing RUNNING
        err = search.text("err").strip().splitlines()
        assert rc == 128 + sig and took < 10, (kind, rc, took, err[-20:])
        assert RESUME_LINE.match(err[-1]) and "Traceback" not in search.text("err"), err[-20:]
        assert _running_runs() == [], kind
    return f"{kind}: rc {rc} in {took:.1f} s", True


def _assert_every_point_once(tmp_path: Path, points: int) -> None:
    store = make_storage(str(tmp_path / "optuna.journal"))
    (summary,) = optuna.get_all_study_summaries(store)
    study = optuna.load_study(study_name=summary.study_name, storage=store)
    complete = Counter(tuple(sorted(t.params.items())) for t in study.trials
                       if t.state == TrialState.COMPLETE)  # fmt: skip
    assert len(complete) == points and set(complete.values()) == {1}
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not [t for t in study.trials if "fail_reason" in t.user_attrs]  # none failed for real
    trials = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string="tags.cnn_benchmark_role = 'trial'")  # fmt: skip
    finished = Counter(r.info.run_name for r in trials if r.info.status == "FINISHED")
    assert len(finished) == points and set(finished.values()) == {1}, finished
    assert _running_runs() == []
    board = summarize(split_by_dataset(load_runs())["cifar10"].main)
    assert len(board) == points and set(board["n"]) == {1}  # each configuration once
    db = tmp_path / "mlflow.db"
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_seeded_chaos_rounds_then_a_rerun_leave_every_point_once(tmp_path, shared_data):
    """>= 8 rounds, each kind at least once: SIGTERM of the search, Ctrl-C (SIGINT to its
    process group), kill -9 of the search alone, of its process group, of one trial process;
    each round waits for a completed trial so the study moves on between hits."""
    rng = random.Random(SEED)
    rounds = [*KINDS, *rng.choices(KINDS, k=4)]
    rng.shuffle(rounds)
    space, env = _grid(tmp_path), _env()
    search, log = None, []
    started = time.monotonic()
    for kind in rounds:
        search = search or Search(tmp_path, space, shared_data, env)
        what, gone = _chaos_round(kind, search, rng)
        log.append(what)
        search = None if gone else search
    if search is not None:  # the last round killed a trial: the search goes on to its end
        search.wait(timeout=900)
    final = Search(tmp_path, space, shared_data, env)
    assert final.wait(timeout=900) == 0, final.text("err")[-3000:]
    print(f"chaos rounds (seed {SEED}, {time.monotonic() - started:.0f} s):", *log, sep="\n  ")
    assert len(log) >= 8 and not any("by itself" in w for w in log), log
    assert "12 complete, 0 pruned, 0 failed" in final.text()  # covered (maybe before it)
    _assert_every_point_once(tmp_path, 12)


def test_a_report_during_a_search_counts_finished_trials_only(tmp_path, shared_data):
    """Reports written while a search writes the store: none fails on a half-written run,
    each counts only finished trials and says how many were still running."""
    search = Search(tmp_path, _grid(tmp_path, "[none]", epochs=3), shared_data, _env())
    said_running = 0
    _until(lambda: _running_runs() or search.proc.poll() is not None, 300, "a first run")
    while search.proc.poll() is None:
        out = tmp_path / "report"
        write_reports("all", out)
        text = (out / "cifar10.md").read_text() if (out / "cifar10.md").exists() else ""
        found = re.search(r"\*\*Still running\*\*: (\d+) trial run", text)
        said_running += bool(found)
        board = summarize(split_by_dataset(load_runs())["cifar10"].main)
        for ids in board.get("run_ids", []):
            assert all(mlflow.get_run(i).info.status == "FINISHED" for i in ids)
    assert search.proc.returncode == 0, search.text("err")[-2000:]
    assert said_running, "no report saw a trial still running"
    write_reports("all", tmp_path / "final")
    assert "Still running" not in (tmp_path / "final" / "cifar10.md").read_text()


def test_postgresql_down_for_10_s_during_a_two_worker_search(tmp_path, shared_data, clean_dbs):
    """An immediate stop of the database (as a crash), 10 s down, then up again: the
    `--workers 2` search finishes with exit 0 and every point once."""
    pg, n = clean_dbs
    mlflow.set_tracking_uri(f"{pg}/mlflow{n}")
    mlflow.search_experiments()  # MLflow's tables, before the search
    env = _env() | {"MLFLOW_TRACKING_URI": f"{pg}/mlflow{n}"}
    search = Search(tmp_path, _space(tmp_path, epochs=2), shared_data, env,
                    "--storage", f"{pg}/optuna{n}", "--workers", "2")  # fmt: skip
    _until(lambda: search.completed() or search.proc.poll() is not None, 600, "a trial")
    write_reports("all", tmp_path / "report", tracking_uri=f"{pg}/mlflow{n}")  # mid-search
    pg.stop()
    time.sleep(10)
    pg.start()
    assert search.wait(timeout=900) == 0, search.text("err")[-3000:]
    assert "grid covered; 8 complete" in search.text()
    done, study = _complete_points((pg, n))
    assert len(done) == 8 and set(done.values()) == {1}
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    trials = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string="tags.cnn_benchmark_role = 'trial'")  # fmt: skip
    finished = Counter(r.info.run_name for r in trials if r.info.status == "FINISHED")
    assert len(finished) == 8 and set(finished.values()) == {1}
    assert _running_runs() == []


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Path:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path) -> Path:
    """Take every free byte of the filesystem at `path`; returns the file to free it."""
    filler = path / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 2**16)
            f.flush()
    return filler


@pytest.mark.parametrize("full", ["store", "artifacts"])
def test_a_full_disk_stops_the_search_in_one_line_and_a_rerun_completes(
    tmp_path, shared_data, full
):
    """The tracking store (SQLite) or the artifact folder on a small tmpfs that fills after
    the first trial: one line naming the place, exit 1, no traceback; where the store can
    still be written nothing is left RUNNING and the trial is FAILED with the reason; after
    the space is freed the same command completes the grid and SQLite is intact."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    with _tmpfs(tmp_path / "small", "24m") as small:
        db = (small if full == "store" else tmp_path) / "mlflow.db"
        env = _env() | {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
        mlflow.set_tracking_uri(f"sqlite:///{db}")
        mlflow.create_experiment("cnn-benchmark/cifar10", (small / "artifacts").as_uri())
        space = _grid(tmp_path, "[none]")
        first = Search(db.parent, space, shared_data, env)
        _until(lambda: first.completed() or first.proc.poll() is not None, 600, "a trial")
        filler = _fill(small)
        assert first.wait(timeout=120) == 1, first.text("err")[-3000:]
        said = (first.text() + first.text("err")).strip()
        assert "Traceback" not in said, said[-3000:]
        assert re.fullmatch(rf"no space left on {re.escape(str(small))}\S* \(.* free\): free some "
                            "space and run the same command to resume",
                            said.splitlines()[-1]), said[-1000:]  # fmt: skip
        if full == "artifacts":  # the store itself can still be written
            assert _running_runs() == []
            failed = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                        filter_string="attributes.status = 'FAILED'")  # fmt: skip
            assert {r.data.tags["failure_reason"] for r in failed} == {said.splitlines()[-1]}
        filler.unlink()
        again = Search(db.parent, space, shared_data, env)
        assert again.wait(timeout=900) == 0, again.text("err")[-3000:]
        assert "grid covered; 4 complete" in again.text()
        _assert_every_point_once(db.parent, 4)  # and SQLite's integrity_check says ok
