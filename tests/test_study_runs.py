"""One study, one place: where a search's runs go, what its parent says, resume and rerun.

A real Optuna study in SQLite and a real MLflow SQLite store (tests/conftest.py), tiny real
trainings on the shared CIFAR-10 subset.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import mlflow
import pytest

from benchmark import metrics as M
from benchmark import search as search_mod
from benchmark.errors import UserError
from benchmark.report.parent import ParentDescription
from benchmark.search.space import load_space
from benchmark.train import tracking

TINY = dict(max_train_samples=200)
OPTUNA = """
    strategy: optuna
    fixed: {epochs: 1, model: seed, steps_per_execution: 4}
    space:
      augmentation: {values: [none, shift]}
    optuna: {sampler: grid, pruner: {type: none}}
"""


def _space(tmp_path: Path, body: str = OPTUNA):
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(body))
    return load_space(path)


def _runs(**filters) -> list:
    where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in filters.items())
    return mlflow.search_runs(
        search_all_experiments=True, filter_string=where, output_format="list"
    )


@pytest.mark.slow
def test_a_resumed_study_reopens_its_one_parent_which_shows_the_study(tmp_path, shared_data):
    space = _space(tmp_path)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    common = dict(dataset="cifar10", data_dir=str(shared_data), overrides=TINY,
                  storage=storage, printer=lambda s: None,
                  describe=ParentDescription())  # the CLI's: leaderboard + report  # fmt: skip
    first = search_mod.run_search(space, n_trials=1, **common)
    second = search_mod.run_search(space, n_trials=2, **common)  # the same study, resumed
    assert first.study_name == second.study_name

    (parent,) = search_mod.study_parents(second.study_name)  # reopened, not a second one
    assert parent.info.run_name == f"search-{second.study_name}"  # the name says "optuna"
    assert parent.info.status == "FINISHED" and parent.data.tags[M.TAG_RESUMES] == "1"
    assert parent.data.tags["n_trials"] == "2"  # the tags hold the latest command's settings
    assert parent.data.params["n_trials"] == "1"  # a param cannot change: the first's stays
    assert parent.data.tags[M.TAG_BEST_RUN] == second.best_run_id
    assert parent.data.metrics["n_complete"] == 2
    assert parent.data.metrics[M.SEARCH_WALL_TIME] > 0
    assert parent.data.tags[M.TAG_STUDY_PARENTS] == "1"
    assert parent.data.tags[M.TAG_BENCHMARK_ROLE] == "search"
    note = parent.data.tags[M.TAG_NOTE]
    assert f"**Study `{second.study_name}`**: 2 complete" in note
    assert "| # | configuration | augmentation | val acc | test acc | params |" in note

    trials = _runs(**{M.TAG_BENCHMARK_ROLE: "trial"})
    assert len(trials) == 2 and {t.data.tags[M.TAG_ROLE] for t in trials} == {"trial"}
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    # each configuration a row of the leaderboard, linked to its run in the UI
    for t in trials:
        link = (f"[{t.info.run_name}](#/experiments/{t.info.experiment_id}/runs/"
                f"{t.info.run_id}?workflowType=machine_learning)")  # fmt: skip
        assert link in note

    # one experiment per dataset, described for a user of the UI
    exp = mlflow.get_experiment(parent.info.experiment_id)
    assert exp.name == "cnn-benchmark/cifar10"
    assert {t.info.experiment_id for t in trials} == {exp.experiment_id}
    assert "add these columns" in exp.tags[M.TAG_NOTE]
    assert "`val_accuracy`, `test_accuracy`, `overfit_gap`" in exp.tags[M.TAG_NOTE]

    # the report of the dataset and its figures ride along on the parent
    client = mlflow.MlflowClient()
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/cifar10.md", "report/README.md", "report/cifar10"} <= files
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "report/cifar10")}
    assert "report/cifar10/learning_curves.png" in figures

    # run again: complete, nothing trained, and how to start a fresh one
    n_runs = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    again = search_mod.run_search(space, n_trials=2, **common)
    assert again.stopped_reason.startswith("already complete (2 trials done)")
    assert "--study-name NEW" in again.stopped_reason and "--n-trials 4" in again.stopped_reason
    assert again.counts["complete"] == 2 and again.best_run_id == second.best_run_id
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == n_runs


def test_experiment_choice_is_respected_and_a_users_description_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    plain = tracking.Tracking(uri="sqlite:///x.db")
    assert plain.wanted_experiment("flowers17") == "cnn-benchmark/flowers17"
    # under `mlflow run`: kept where `mlflow run --experiment-name` put it; Default is moved
    assert plain.wanted_experiment("flowers17", project_experiment="7") is None
    assert plain.wanted_experiment("flowers17", "0") == "cnn-benchmark/flowers17"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "3")
    assert plain.wanted_experiment("flowers17") is None
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    assert plain.wanted_experiment("flowers17", "0") == "mine"
    typed = tracking.Tracking(uri="sqlite:///x.db", experiment="typed")
    assert typed.wanted_experiment("flowers17") == "typed"

    exp = mlflow.create_experiment("described")
    mlflow.MlflowClient().set_experiment_tag(exp, M.TAG_NOTE, "my own notes")
    tracking.describe_experiment(exp, "flowers17")
    assert mlflow.get_experiment(exp).tags[M.TAG_NOTE] == "my own notes"
    ours = tracking.experiment_id_for("cnn-benchmark/flowers17")
    tracking.describe_experiment(ours, "flowers17")
    assert (
        mlflow.get_experiment(ours)
        .tags[M.TAG_NOTE]
        .startswith("cnn-benchmark runs on **flowers17**.")
    )
    mlflow.delete_experiment(ours)
    with pytest.raises(UserError, match="'cnn-benchmark/flowers17' is deleted; restore it"):
        tracking.experiment_id_for("cnn-benchmark/flowers17")


@pytest.mark.parametrize(
    "study,strategy,name",
    [
        ("cifar10-cifar10-grid-1a2b3c4d", "grid", "search-cifar10-cifar10-grid-1a2b3c4d"),
        ("mine", "grid", "search-mine-grid"),
    ],
)
def test_parent_run_names_say_study_and_strategy(study, strategy, name):
    assert search_mod.parent_run_name("search", study, strategy) == name


@pytest.mark.parametrize(
    "entry,given,role", [("main", {}, "wrapper"), ("report", {}, "report"),
                         ("main", {M.TAG_BENCHMARK_ROLE: "search"}, "search")],
)  # fmt: skip
def test_a_one_line_error_under_mlflow_run_ends_its_run_failed_with_the_reason(
    monkeypatch, entry, given, role
):
    client = mlflow.MlflowClient()
    run = client.create_run("0", tags={"mlflow.project.entryPoint": entry, **given})
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
    tracking.end_project_run(run.info.run_id, "search space 'x.yaml' not found")
    after = client.get_run(run.info.run_id)
    assert after.info.status == "FAILED"
    assert after.data.tags[M.TAG_STATUS_REASON] == "search space 'x.yaml' not found"
    assert after.data.tags[M.TAG_BENCHMARK_ROLE] == role


def test_ctrl_c_under_mlflow_run_ends_its_run_killed_and_outside_it_nothing_happens(
    monkeypatch,
):
    client = mlflow.MlflowClient()
    run = client.create_run("0")
    tracking.end_project_run(None, "interrupted", "KILLED")  # outside `mlflow run`: not ours
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    tracking.end_project_run(run.info.run_id, "interrupted", "KILLED")
    assert client.get_run(run.info.run_id).info.status == "KILLED"


@pytest.mark.parametrize(
    "error,status,reason",
    [(RuntimeError("storage went away"), "FAILED", "storage went away"),
     (KeyboardInterrupt(), "KILLED", "stopped by SIGINT")],
)  # fmt: skip
def test_a_search_that_dies_ends_its_parent_with_the_reason(
    tmp_path, shared_data, monkeypatch, error, status, reason
):
    def drive(*args, **kwargs):
        raise error

    from benchmark.search import driver

    monkeypatch.setattr(driver, "drive", drive)
    with pytest.raises(type(error)):
        search_mod.run_search(_space(tmp_path), dataset="cifar10", data_dir=str(shared_data),
                              overrides=TINY, n_trials=1, printer=lambda s: None,
                              storage=f"sqlite:///{tmp_path / 'optuna.db'}")  # fmt: skip
    (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert parent.info.status == status
    assert parent.data.tags[M.TAG_STATUS_REASON] == reason
    assert mlflow.active_run() is None


def test_a_study_without_runs_has_an_empty_leaderboard():
    from benchmark.report import load_study_runs, summarize

    runs = load_study_runs("no-such-study")
    assert runs.trials.empty and summarize(runs.main).empty


def test_an_orphan_run_ends_when_it_last_logged_an_epoch():
    """A trial run left RUNNING by a command that died (kill -9, the machine's end) is
    marked KILLED by the next search of its study, ended at its last epoch's metrics: ended
    when found, its duration would span the hours its command lay dead."""
    import socket
    import subprocess
    import sys

    from benchmark.search.study import mark_orphans

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    client = mlflow.MlflowClient()
    worker = f"{socket.gethostname()}:{gone}"  # this host, a process that has ended
    run = client.create_run("0", tags={"study_name": "s", "worker": worker})
    last = run.info.start_time + 90_000  # its last epoch, 90 s in
    client.log_metric(run.info.run_id, M.EPOCH_TIME, 45.0, timestamp=last, step=2)
    mark_orphans("s", None)
    ended = client.get_run(run.info.run_id)
    assert (ended.info.status, ended.info.end_time) == ("KILLED", last)
    assert ended.data.tags[M.TAG_STATUS_REASON] == M.ORPHAN_REASON
