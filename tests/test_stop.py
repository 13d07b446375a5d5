"""SIGTERM and Ctrl-C, and a full disk, as a user meets them: one line, the exit code a shell
reports, runs ended KILLED (FAILED for a full disk) with the reason, nothing left RUNNING.

The chaos rounds (every kind of kill in one seeded sequence, then a rerun), PostgreSQL going
away mid-search and a full tmpfs are in tests/test_chaos.py.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from benchmark import metrics as M
from benchmark import stop
from benchmark.train import diskspace
from benchmark.train.diskspace import DiskFull, no_space, space_warning
from benchmark.train.outcome import run_outcome

REPO = Path(__file__).resolve().parents[1]


def test_each_stop_says_why_and_exits_as_a_shell_reports_it():
    term = stop.Stopped(signal.SIGTERM)
    assert (term.reason, term.exit_code) == ("stopped by SIGTERM", 143)
    assert run_outcome(term) == ("failed", "stopped by SIGTERM", "KILLED",
                                      {stop.TAG_SIGNAL: "SIGTERM"})  # fmt: skip
    assert stop.reason(KeyboardInterrupt()) == "stopped by SIGINT"  # a Ctrl-C before install
    assert run_outcome(optuna.TrialPruned("at epoch 2"))[2] == "KILLED"
    assert run_outcome(ValueError("bad"))[1:3] == ("bad", "FAILED")


def test_a_full_disk_is_one_line_naming_the_place_wherever_it_is_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 0)  # every place is full
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.npz"))
    assert no_space(RuntimeError("not a disk problem")) is None
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("logging the artifacts failed") from exc
    except RuntimeError as exc:
        found = no_space(exc)
    assert isinstance(found, DiskFull) and found.exit_code == 1
    assert found.line.startswith(f"no space left on {tmp_path / 'x.npz'} (")
    assert found.line.endswith("free): free some space and run the same command to resume")
    sqlite = no_space(Exception("(sqlite3.OperationalError) database or disk is full"))
    assert sqlite is not None and sqlite.line.startswith("no space left on ")
    state, reason, status, _ = run_outcome(sqlite)
    assert (state, reason, status) == ("failed", sqlite.line, "FAILED")


def test_a_search_too_big_for_its_disk_is_warned_about_in_one_line(tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    trials = int(free / (2 * 2**20)) + 10  # more runs x 2 MB (nothing measured) than fits
    line = space_warning(trials, "no-such-study")
    assert line and line.startswith(f"warning: {tmp_path}")
    assert f"({trials} runs x about 2.0 MB of artifacts)" in line
    assert space_warning(1, "no-such-study") is None


def test_the_disk_warning_measures_a_study_whose_name_holds_a_quote(tmp_path):
    """Its finished runs' artifacts price the runs to come, whatever the study is called."""
    with mlflow.start_run(tags={"study_name": "it's mine"}):
        mlflow.log_text("x" * 3 * 2**20, "big.txt")  # 3 MB, not the 2-MB default
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    trials = int(free / (3 * 2**20)) + 10
    line = space_warning(trials, "it's mine")
    assert line and f"({trials} runs x about 3.0 MB of artifacts)" in line


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BENCHMARK_IN_PROCESS", None)  # the default: each trial in its own process
    return env


def _wait_for_running_trial(deadline_s: float = 300) -> mlflow.entities.Run:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        runs = mlflow.search_runs(
            search_all_experiments=True, output_format="list",
            filter_string="tags.cnn_benchmark_role = 'trial' and attributes.status = 'RUNNING'",
        )  # fmt: skip
        if runs and mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, M.LOSS):
            return runs[0]  # an epoch logged: it is training
        time.sleep(0.3)
    raise AssertionError("no trial started training")


def _stop(proc: subprocess.Popen, sig: int, group: bool = False) -> tuple[int, float, str]:
    """Send `sig` (to the process group: a terminal's Ctrl-C); rc, seconds to exit, stderr."""
    t0 = time.monotonic()
    os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, time.monotonic() - t0, err


@pytest.mark.slow
def test_sigterm_on_train_ends_its_run_killed_with_the_signal(tmp_path, shared_data):
    cmd = [sys.executable, "-m", "benchmark", "train", "--dataset", "cifar10", "--data-dir",
           str(shared_data), "--max-train-samples", "200", "--epochs", "50", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # `train` has no role tag filter: any run with an epoch
        runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
        if runs and mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, M.LOSS):
            break
        time.sleep(0.3)
    rc, took, err = _stop(proc, signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM and took < 10, (rc, took, err[-2000:])
    assert err.strip().splitlines()[-1] == "stopped by SIGTERM; run the same command to resume"
    assert "Traceback" not in err
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "KILLED"
    assert run.data.tags[M.TAG_STATUS_REASON] == "stopped by SIGTERM"
    assert run.data.tags[stop.TAG_SIGNAL] == "SIGTERM"


GRID = """
strategy: grid
fixed: {epochs: 30, padding: valid, filters_max: 64, steps_per_execution: 4}
space:
  depth: {values: [2, 3]}
"""


@pytest.mark.slow
def test_sigterm_to_mlflow_run_itself_ends_its_run_and_the_trial_killed(tmp_path, shared_data):
    """`kill PID` of `mlflow run`: it dies at once without passing the signal on, and the
    search it started still stops (it follows its parent): `mlflow run`'s run, the search's
    parent, and the running trial end KILLED with the signal; nothing stays RUNNING."""
    (tmp_path / "grid.yaml").write_text(GRID)
    mlflow.create_experiment("cnn-benchmark/cifar10", (tmp_path / "artifacts").as_uri())
    cmd = [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "main", "--env-manager",
           "local", "--experiment-name", "cnn-benchmark/cifar10", "-P", "dataset=cifar10",
           "-P", f"space={tmp_path / 'grid.yaml'}", "-P", f"data_dir={shared_data}",
           "-P", "max_train_samples=200"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    trial = _wait_for_running_trial()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running():
        time.sleep(0.3)
    assert _running() == []
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    (parent,) = [r for r in runs if r.data.tags.get(M.TAG_BENCHMARK_ROLE) == "search"]
    assert parent.data.tags.get("mlflow.project.entryPoint") == "main"  # mlflow run's own run
    for run in (parent, mlflow.get_run(trial.info.run_id)):
        assert run.info.status == "KILLED"
        assert run.data.tags[stop.TAG_SIGNAL] == "SIGTERM"


def _running() -> list:
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="attributes.status = 'RUNNING'")  # fmt: skip


@pytest.mark.slow
def test_a_stop_after_the_run_finished_does_not_train_it_twice(tmp_path, shared_data,
                                                               monkeypatch):  # fmt: skip
    """A stop that lands after the trial's run FINISHED but before Optuna recorded its value:
    the rerun takes that run instead of training (and logging) the configuration again."""
    from optuna.trial import TrialState

    from benchmark import search as search_mod
    from benchmark.search import driver
    from benchmark.search.space import load_space

    (tmp_path / "grid.yaml").write_text(GRID.replace("epochs: 30", "epochs: 1"))
    space = load_space(tmp_path / "grid.yaml")
    real, calls = driver.record_wall_time, []

    def stopped_right_after(result, wall):
        calls.append(result.run_id)
        if len(calls) == 1:
            raise stop.Stopped(signal.SIGTERM)
        return real(result, wall)

    monkeypatch.setattr(driver, "record_wall_time", stopped_right_after)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    run = lambda: search_mod.run_search(space, dataset="cifar10", data_dir=str(shared_data),  # noqa: E731
                                        overrides={"max_train_samples": 200}, storage=storage,
                                        printer=lambda s: None)  # fmt: skip
    with pytest.raises(stop.Stopped):
        run()
    summary = run()
    assert summary.counts["complete"] == 2 and len(calls) == 2  # one more training, not two
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    (retried,) = [t for t in study.trials if t.system_attrs.get("failed_trial") is not None]
    assert retried.state == TrialState.COMPLETE and retried.user_attrs["run_id_0"] == calls[0]
    trials = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string="tags.cnn_benchmark_role = 'trial'")  # fmt: skip
    assert sorted(r.info.status for r in trials) == ["FINISHED", "FINISHED"]
