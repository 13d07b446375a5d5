"""`--workers N`: N trial processes of one study at once on one machine, on the embedded
journal storage (PostgreSQL: tests/test_scaleout.py). Every grid point runs exactly once,
every trial run hangs under the one parent, and a kill -9 leaves nothing to clean by hand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from benchmark.search import (
    cores_for_slot,
    journal_path,
    make_storage,
    run_search,
    threads_per_trial,
)
from benchmark.search.space import load_space

REPO = Path(__file__).resolve().parents[1]

GRID = """
    strategy: grid
    fixed: {epochs: EPOCHS, padding: valid, filters_max: 64, steps_per_execution: 4}
    space:
      depth: {values: [2, 3]}
      augmentation: {values: [none, shift]}
"""


def _space(tmp_path: Path, epochs: int = 1) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(textwrap.dedent(GRID.replace("EPOCHS", str(epochs))))
    return path


def _study(storage: str) -> optuna.Study:
    store = make_storage(storage)
    (summary,) = optuna.get_all_study_summaries(store)
    return optuna.load_study(study_name=summary.study_name, storage=store)


def _points(study: optuna.Study) -> Counter:
    return Counter(
        tuple(sorted(t.params.items())) for t in study.trials if t.state == TrialState.COMPLETE
    )


def test_storage_strings_name_journal_files_or_databases(tmp_path):
    assert journal_path("journal:///abs/optuna.journal") == "/abs/optuna.journal"
    assert journal_path("journal:rel/optuna.journal") == "rel/optuna.journal"
    assert journal_path("runs/optuna.journal") == "runs/optuna.journal"  # as optuna-dashboard
    assert journal_path("sqlite:///optuna.db") is None
    assert journal_path("postgresql://u@h/db") is None
    assert isinstance(make_storage(str(tmp_path / "j.journal")), optuna.storages.JournalStorage)


def test_workers_split_the_cores_but_keep_one_workers_thread_count():
    """Same thread count as one worker (a trial's numbers depend on it); the cores are split
    by pinning each slot's trials to its own share."""
    cores = sorted(os.sched_getaffinity(0))
    assert threads_per_trial(1) is None and cores_for_slot(0, 1) is None  # every core
    assert threads_per_trial(2) == len(cores)
    shares = [cores_for_slot(i, 2) for i in range(2)]
    if len(cores) >= 2:
        assert set(shares[0]).isdisjoint(shares[1])
        assert len(shares[0]) == len(shares[1]) == len(cores) // 2
    many = [cores_for_slot(i, 3 * len(cores)) for i in range(3 * len(cores))]
    assert all(len(s) == 1 for s in many) and {s[0] for s in many} == set(cores)


def test_each_finished_trial_gets_its_own_progress_number():
    """[k/N] is the trial's place among the finished ones, even when two workers' trials
    end together: read after both ended, each still gets its own number."""
    from benchmark.search.study import finished_by

    study = optuna.create_study()
    for value in (0.1, 0.2, 0.3):
        study.enqueue_trial({"x": value})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    pruned = study.ask()
    study.tell(pruned, state=TrialState.PRUNED)
    interrupted = study.ask()  # failed without a reason of its own: not counted
    study.tell(interrupted, state=TrialState.FAIL)
    trials = study.get_trials()  # every trial has ended before any number is asked for
    assert [finished_by(study, t) for t in trials] == [1, 2, 3, 4, 4]


def test_pinning_moves_every_thread_and_the_ones_started_later():
    code = textwrap.dedent("""
        import json, os, threading
        from benchmark.train.runtime import pin_to_cores
        stop = threading.Event()
        early = threading.Thread(target=stop.wait); early.start()
        core = min(os.sched_getaffinity(0))
        pin_to_cores((core,))
        late = threading.Thread(target=stop.wait); late.start()
        tids = [int(t) for t in os.listdir("/proc/self/task")]
        print(json.dumps([len(tids), sorted({tuple(sorted(os.sched_getaffinity(t)))
                                              for t in tids}), core]))
        stop.set()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)  # fmt: skip
    threads, affinities, core = json.loads(out.stdout)
    assert threads >= 3  # main, early, late
    assert affinities == [[core]]  # every thread, the late one too, on that core alone


@pytest.mark.slow
def test_two_workers_cover_the_grid_once_under_one_parent(tmp_path, shared_data):
    storage = str(tmp_path / "optuna.journal")
    lines: list[str] = []
    summary = run_search(
        load_space(str(_space(tmp_path))), dataset="cifar10", data_dir=str(shared_data),
        overrides={"max_train_samples": 200}, storage=storage, printer=lines.append,
        isolate=True, workers=2,
    )  # fmt: skip
    assert summary.stopped_reason == "grid covered"
    study = _study(storage)
    assert len(study.trials) == 4 and set(_points(study).values()) == {1}  # each exactly once
    assert sorted(line.split("]")[0] for line in lines) == ["[1/4", "[2/4", "[3/4", "[4/4"]

    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    (parent,) = [r for r in runs if r.data.tags.get("benchmark.role") == "search"]
    assert parent.data.params["workers"] == "2"
    kids = [r for r in runs if r.data.tags.get("benchmark.role") == "trial"]
    assert len(kids) == 4
    assert {k.data.tags["mlflow.parentRunId"] for k in kids} == {parent.info.run_id}
    assert all(k.info.status == "FINISHED" for k in kids)
    # two trials did train at the same time: some pair of runs overlaps
    spans = sorted((k.info.start_time, k.info.end_time) for k in kids)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))

    # the same grid with one worker: every configuration scores exactly the same
    alone = str(tmp_path / "alone.journal")
    run_search(
        load_space(str(_space(tmp_path))), dataset="cifar10", data_dir=str(shared_data),
        overrides={"max_train_samples": 200}, storage=alone, printer=lines.append,
        isolate=True, workers=1,
    )  # fmt: skip
    scores = {tuple(sorted(t.params.items())): t.value for t in study.trials}
    assert {tuple(sorted(t.params.items())): t.value for t in _study(alone).trials} == scores


@pytest.mark.slow
def test_kill_9_with_two_workers_then_a_rerun_leaves_no_duplicate(tmp_path, shared_data):
    import psutil

    space = _space(tmp_path, epochs=5)
    cmd = [sys.executable, "-m", "benchmark", "search", "--dataset", "cifar10", "--space",
           str(space), "--data-dir", str(shared_data), "--max-train-samples", "200",
           "--workers", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BENCHMARK_IN_PROCESS")  # workers need trials in their own processes
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # both slots training: two trial runs RUNNING
        running = mlflow.search_runs(
            search_all_experiments=True, output_format="list",
            filter_string="tags.`benchmark.role` = 'trial' and attributes.status = 'RUNNING'",
        )  # fmt: skip
        if len(running) == 2:
            break
        time.sleep(0.5)
    assert len(running) == 2, "two trials never trained at once"
    trial_procs = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(trial_procs, timeout=10)
    assert not alive  # the trial processes died with the search

    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "grid covered; 4 complete" in out.stdout

    study = _study(str(tmp_path / "optuna.journal"))  # the default, beside mlflow.db
    assert len(_points(study)) == 4 and set(_points(study).values()) == {1}
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    killed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert 1 <= len(killed) <= 2  # the trials killed mid-epoch, each rerun once, same params
    for t in killed:
        assert [r.params for r in study.trials if r.system_attrs.get("failed_trial") == t.number
                ] == [t.params]  # fmt: skip
    statuses = [r.info.status for r in mlflow.search_runs(search_all_experiments=True,
                                                          output_format="list")]  # fmt: skip
    assert "RUNNING" not in statuses
    assert statuses.count("KILLED") == len(killed)  # their runs; their parent:
    (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                   filter_string="tags.cnn_benchmark_role = 'search'")  # fmt: skip
    assert parent.info.status == "FINISHED"  # reopened by the rerun (issue 31), not an orphan
