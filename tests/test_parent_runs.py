"""One search, one parent run: a search stopped (SIGTERM), killed (kill -9) and run to its end
keeps one MLflow parent, reopened each time, FINISHED at the end with every trial under it;
two commands that start a study at the same moment agree on one parent; and a store from
before, with a parent per resume, still reports the study as one row.

Real searches (`python -m benchmark search`, trials in their own processes) on the shared
CIFAR-10 subset, a real journal-file Optuna study and the test's SQLite MLflow store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.entities import Metric
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark.report import write_reports
from benchmark.search import make_storage

REPO = Path(__file__).resolve().parents[1]
GRID = """
    strategy: grid
    fixed: {epochs: 4, padding: valid, filters_max: 32, steps_per_execution: 4}
    space:
      depth: {values: [2, 3]}
      augmentation: {values: [none, shift]}
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BENCHMARK_IN_PROCESS", None)  # the default: each trial in its own process
    return env


def _search(tmp_path: Path, data: Path, *extra: str) -> subprocess.Popen:
    """The command a user runs, in its own session (kill -9 of its group takes its trials)."""
    space = tmp_path / "grid.yaml"
    space.write_text(textwrap.dedent(GRID))
    cmd = [sys.executable, "-m", "benchmark", "search", "--dataset", "cifar10", "--space",
           str(space), "--data-dir", str(data), "--max-train-samples", "200", *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


def _runs(where: str = "") -> list:
    return mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string=where)  # fmt: skip


def _wait_for_training(proc: subprocess.Popen, deadline_s: float = 300) -> None:
    """Until a trial of this command has logged an epoch (or the command ended)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        running = _runs("tags.cnn_benchmark_role = 'trial' and attributes.status = 'RUNNING'")
        client = mlflow.MlflowClient()
        if any(client.get_metric_history(r.info.run_id, M.LOSS) for r in running):
            return
        time.sleep(0.3)
    assert proc.poll() is None, "the search ended before it could be stopped"
    raise AssertionError("no trial started training")


def _parents() -> list:
    return _runs("tags.cnn_benchmark_role = 'search'")


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_then_kill_9_then_the_end_leave_one_finished_parent(tmp_path, shared_data,
                                                                    workers):  # fmt: skip
    first = _search(tmp_path, shared_data, "--workers", workers)
    _wait_for_training(first)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM, err[-2000:]
    (parent,) = _parents()
    assert parent.info.status == "KILLED" and parent.data.tags[M.TAG_RESUMES] == "0"

    second = _search(tmp_path, shared_data, "--workers", workers)
    _wait_for_training(second)
    assert [p.info.status for p in _parents()] == ["RUNNING"]  # reopened, not a new one
    os.killpg(second.pid, signal.SIGKILL)  # the search and its trial processes, at once
    second.communicate(timeout=60)

    third = _search(tmp_path, shared_data, "--workers", workers)
    out, err = third.communicate(timeout=900)
    assert third.returncode == 0, err[-3000:]
    assert "grid covered; 4 complete" in out, out

    (parent,) = _parents()
    tags = parent.data.tags
    assert parent.info.status == "FINISHED" and tags[M.TAG_RESUMES] == "2"
    assert M.TAG_STATUS_REASON not in tags and "stop_signal" not in tags  # history, not now
    assert tags[M.TAG_STUDY_PARENTS] == "1" and parent.data.metrics["n_complete"] == 4
    assert parent.data.params["workers"] == workers
    assert 0 < parent.data.metrics[M.SEARCH_WALL_TIME]
    trials = _runs("tags.cnn_benchmark_role = 'trial'")
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    assert sorted({t.info.status for t in trials}) in (["FINISHED"], ["FINISHED", "KILLED"])
    assert sum(t.info.status == "FINISHED" for t in trials) == 4
    assert _runs("attributes.status = 'RUNNING'") == []
    store = make_storage(str(tmp_path / "optuna.journal"))
    (summary,) = optuna.get_all_study_summaries(store)
    study = optuna.load_study(study_name=summary.study_name, storage=store)
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4


RACE = """
import sys, time
import optuna
from benchmark.search.parent import StudyParent
from benchmark.search.storage import make_storage
from benchmark.train.tracking import Tracking
study = optuna.create_study(study_name="race", storage=make_storage(sys.argv[1]),
                            load_if_exists=True)
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # both go at the same instant
tags = {"cnn_benchmark_role": "search", "benchmark.role": "search", "study_name": "race"}
with Tracking.from_env().search_parent("cifar10", "search-race", tags,
                                       StudyParent(study, "search")) as run:
    print(run.info.run_id)
"""


def test_two_commands_starting_a_study_at_once_agree_on_one_parent(tmp_path):
    journal = str(tmp_path / "optuna.journal")
    optuna.create_study(study_name="race", storage=make_storage(journal))  # as a first worker
    mlflow.search_experiments()  # MLflow's tables exist before both race
    go = f"{time.time() + 8:.3f}"  # after both have imported MLflow and Optuna
    procs = [subprocess.Popen([sys.executable, "-c", RACE, journal, go], cwd=tmp_path,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outs]
    ids = {out.strip().splitlines()[-1] for out, _ in outs}
    (parent,) = _parents()  # a run that lost the race is deleted: not listed
    assert ids == {parent.info.run_id}
    assert parent.info.status == "FINISHED" and parent.data.tags[M.TAG_RESUMES] == "1"


def test_a_store_with_two_parents_of_one_study_reports_it_as_one_row(tmp_path):
    """Stores from before one parent per search: a parent per resume, each with the counts of
    its time; the row shows the latest's counts and run, the first's start."""
    client = mlflow.MlflowClient()
    exp = client.create_experiment("cnn-benchmark/cifar10")
    made = []
    for study, complete in (("resumed", 2), ("resumed", 4), ("other", 1)):
        run = client.create_run(exp, run_name=f"search-{study}", tags={
            "study_name": study, M.TAG_ROLE: "search", M.TAG_BENCHMARK_ROLE: "search",
            M.TAG_DATASET: "cifar10", "strategy": "grid", "n_trials": "4", "seeds": "1",
        })  # fmt: skip
        client.log_batch(run.info.run_id, metrics=[
            Metric(f"n_{k}", v, 0, 0) for k, v in (("complete", complete), ("pruned", 0),
                                                   ("failed", 0))])  # fmt: skip
        if study == "other":  # its space's own `budget:` note, folded YAML (ends in "\n")
            client.set_tag(run.info.run_id, "space_file", "search_spaces/other.yaml")
            client.log_text(run.info.run_id, "budget: >\n  sized for\n  two cores\n",
                            "search_space/other.yaml")  # fmt: skip
        client.set_terminated(run.info.run_id)
        made.append(client.get_run(run.info.run_id))
        time.sleep(0.01)  # start times in order
    write_reports("all", tmp_path / "out")
    text = (tmp_path / "out" / "cifar10.md").read_text()
    table = text.split("**Searches** (MLflow parent runs):", 1)[1].split("\n\n")[1]
    rows = [line for line in table.splitlines()[2:] if line.startswith("| search |")]
    assert len(rows) == 2  # one per study
    resumed = next(r for r in rows if made[1].info.run_id in r)
    assert "(and 1 earlier parent run)" in resumed and "| 4/0/0 |" in resumed
    assert made[0].info.run_id not in table
    other = next(r for r in rows if made[2].info.run_id in r)
    assert "4 trials × 1 seed(s) (sized for two cores) |" in other, other


def test_an_interrupted_retry_is_retried_once_however_often_the_study_is_recovered(tmp_path):
    """SIGTERM, then kill -9 of the rerun: the rerun (a retry, `failed_trial` naming the
    first) is enqueued again once; every later recovery leaves it be. Found by the test
    above: each recovery queued it again and the grid point ran twice."""
    from benchmark.search.study import requeue_interrupted

    store = make_storage(str(tmp_path / "optuna.journal"))
    study = optuna.create_study(storage=store)
    first = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(first, state=TrialState.FAIL)  # stopped: no fail_reason of its own
    requeue_interrupted(study, store)
    retry = study.ask()  # the WAITING copy, same parameters
    study.tell(retry, state=TrialState.FAIL)  # interrupted too
    for _ in range(3):  # the next command's start and each of its claims recover the study
        requeue_interrupted(study, store)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].params == first.params
    assert waiting[0].system_attrs["retry_history"] == [0, 1]


def test_the_winner_shown_twice_on_the_one_parent_is_shown_once():
    """A resume (or a second worker) that ends with the same winner shows it on the same
    parent again: MLflow refuses the model output twice, which read as a registry failure."""
    from benchmark.search.champion import show_on_parent

    client = mlflow.MlflowClient()
    model = client.create_logged_model("0", name="winner")
    winner = client.create_run("0", tags={M.TAG_MODEL_URI: f"models:/{model.model_id}"})
    parent = client.create_run("0")
    for _ in range(2):
        show_on_parent(parent.info.run_id, client.get_run(winner.info.run_id))
    (output,) = client.get_run(parent.info.run_id).outputs.model_outputs
    assert output.model_id == model.model_id
