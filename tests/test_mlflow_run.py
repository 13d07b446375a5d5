"""The project through `mlflow run`, as a user drives it: the README's tiny search (MLflow's
run in Default, the search in the dataset's experiment), a failed run, a finished search run
again, the report generated twice; and, in-process, a search that adopts the `mlflow run`
run when that run is already in the dataset's experiment (`--experiment-name`).

Real `mlflow run --env-manager local` subprocesses against a real SQLite store in a temp
folder; the dataset's experiment is made beforehand with its artifacts in that folder too
(MLflow would otherwise put them under the project's own ./mlruns).
"""

from __future__ import annotations

import difflib
import filecmp
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest

from benchmark import metrics as M
from benchmark.cli import main
from benchmark.report import load_runs, split_by_dataset

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "cnn-benchmark/cifar10"
SPACE = """
    strategy: grid
    fixed: {epochs: 1, model: seed, steps_per_execution: 4}
    space:
      augmentation: {values: [none, grayscale]}
"""

pytestmark = pytest.mark.slow


def _mlflow_run(store: dict, *args: str, entry: str = "main") -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(REPO),
            "-e",
            entry,
            "--env-manager",
            "local",
            *args,
        ],  # fmt: skip
        cwd=store["tmp"],
        env=store["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory, session_cache, shared_data):
    """The README's route: a search through `mlflow run` (its run in Default), the same
    search again, then a run that fails early."""
    tmp = tmp_path_factory.mktemp("mlflow_run")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "BENCHMARK_CACHE_DIR": str(session_cache),
           "BENCHMARK_IN_PROCESS": "1"}  # fmt: skip
    for key in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    client = mlflow.MlflowClient(uri)
    client.create_experiment(EXPERIMENT, artifact_location=(tmp / "artifacts").as_uri())
    (tmp / "tiny.yaml").write_text(textwrap.dedent(SPACE))
    s = {"tmp": tmp, "uri": uri, "env": env}
    search = ["-P", "dataset=cifar10", "-P", f"space={tmp / 'tiny.yaml'}",
              "-P", f"data_dir={shared_data}", "-P", "max_train_samples=200"]  # fmt: skip
    s["search"] = _mlflow_run(s, *search)
    s["again"] = _mlflow_run(s, *search)
    missing = tmp / "no-such-dir"
    s["failed"] = _mlflow_run(s, "-P", "dataset=cifar10", "-P", f"data_dir={missing}")
    s["missing"] = missing
    return s


def _all_runs(uri: str) -> list:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_the_search_goes_to_the_dataset_experiment_and_the_mlflow_run_run_points_at_it(store):
    out = store["search"]
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[2/2] " in out.stdout and "grid covered; 2 complete" in out.stdout
    assert (store["tmp"] / "optuna.journal").exists()  # the study beside mlflow.db
    runs = _all_runs(store["uri"])
    (parent,) = [r for r in runs if r.data.tags.get(M.TAG_BENCHMARK_ROLE) == "search"]
    assert parent.info.status == "FINISHED" and parent.data.tags["strategy"] == "grid"
    assert parent.info.run_name == f"search-{parent.data.tags['study_name']}"
    assert mlflow.get_experiment(parent.info.experiment_id).name == EXPERIMENT
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(k.info.run_name for k in kids) == [
        "lab-net-d3-k3-w64-aug=grayscale", "lab-net-d3-k3-w64-aug=none",
    ]  # fmt: skip
    assert {k.data.tags[M.TAG_BENCHMARK_ROLE] for k in kids} == {"trial"}
    assert "| # | configuration | augmentation | val acc |" in parent.data.tags[M.TAG_NOTE]
    # `mlflow run` made its run in Default: it stays there and says where the search went
    (wrapper,) = [r for r in runs if r.data.tags.get("search_run") == parent.info.run_id]
    assert wrapper.info.experiment_id == "0" and wrapper.info.status == "FINISHED"
    assert wrapper.data.tags[M.TAG_BENCHMARK_ROLE] == "wrapper"
    assert parent.info.run_id in wrapper.data.tags["mlflow.note.content"]


def test_a_search_adopts_an_mlflow_run_run_already_in_the_dataset_experiment(
    tmp_path, shared_data, monkeypatch
):
    """`mlflow run --experiment-name cnn-benchmark/cifar10`: MLflow's own run is the
    parent, no extra run (in-process: `mlflow run` only sets MLFLOW_RUN_ID for it)."""
    experiment = mlflow.create_experiment(EXPERIMENT)
    project = mlflow.MlflowClient().create_run(
        experiment, tags={"mlflow.source.type": "PROJECT", "mlflow.project.entryPoint": "main"}
    )
    monkeypatch.setenv("MLFLOW_RUN_ID", project.info.run_id)
    (tmp_path / "tiny.yaml").write_text(textwrap.dedent(SPACE))
    assert main(["search", "--dataset", "cifar10", "--space", str(tmp_path / "tiny.yaml"),
                 "--data-dir", str(shared_data), "--max-train-samples", "200"]) == 0  # fmt: skip
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    (parent,) = [r for r in runs if r.data.tags.get(M.TAG_BENCHMARK_ROLE) == "search"]
    assert parent.info.run_id == project.info.run_id and parent.info.status == "FINISHED"
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(kids) == 2


def test_a_finished_search_run_again_says_so_and_trains_nothing(store):
    out = store["again"]
    assert out.returncode == 0, out.stderr[-3000:]
    assert "already complete (grid covered)" in out.stdout
    assert "-P study_name=NEW" in out.stdout  # the form that `mlflow run` takes
    runs = _all_runs(store["uri"])
    assert sum(r.data.tags.get(M.TAG_BENCHMARK_ROLE) == "trial" for r in runs) == 2
    (rerun,) = [r for r in runs if "already complete" in r.data.tags.get(M.TAG_NOTE, "")]
    assert rerun.data.tags[M.TAG_BENCHMARK_ROLE] == "wrapper"


def test_a_failed_mlflow_run_is_failed_with_its_reason_and_no_trial(store):
    out = store["failed"]
    assert out.returncode != 0
    err = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and str(store["missing"]) in err[0]
    runs = _all_runs(store["uri"])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    (failed,) = [r for r in runs if r.info.status == "FAILED"]
    assert failed.data.tags[M.TAG_STATUS_REASON] == err[0].removeprefix("error: ")
    assert failed.data.tags[M.TAG_BENCHMARK_ROLE] == "wrapper"
    assert failed.data.params["dataset"] == "cifar10"  # what made it look like a trial
    (cifar,) = split_by_dataset(load_runs()).values()
    assert len(cifar.trials) == 2 and failed.info.run_id not in set(cifar.trials["run_id"])


def test_report_through_mlflow_run_twice_gives_the_same_bytes(store):
    out, outs = store["tmp"] / "report", [store["tmp"] / f"report{i}" for i in (1, 2)]
    for kept in outs:  # the same command twice (its header names --out): same bytes
        done = _mlflow_run(store, "-P", "dataset=all", "-P", f"out={out}", entry="report")
        assert done.returncode == 0, done.stderr[-3000:]
        shutil.copytree(out, kept)
    first = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    second = sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert first == second and Path("cifar10.md") in first
    _, mismatch, errors = filecmp.cmpfiles(outs[0], outs[1], [str(p) for p in first],
                                           shallow=False)  # fmt: skip
    diff = [line for name in mismatch for line in difflib.unified_diff(
        (outs[0] / name).read_text().splitlines(), (outs[1] / name).read_text().splitlines(),
        name, name, lineterm="", n=0)]  # fmt: skip
    assert not mismatch and not errors, "\n".join(diff[:40])
    md = (outs[1] / "cifar10.md").read_text()
    assert "- **Trial runs**: 2 (2 complete)" in md  # no report run, no failed wrapper
    reports = [r for r in _all_runs(store["uri"])
               if r.data.tags.get(M.TAG_BENCHMARK_ROLE) == "report"]  # fmt: skip
    assert len(reports) == 2 and {r.info.status for r in reports} == {"FINISHED"}
