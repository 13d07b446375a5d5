"""The project's entry points as a user meets them: MLproject, conda.yaml, README commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
import yaml

from benchmark.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _pins(lines) -> list[str]:
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def test_conda_yaml_carries_the_same_pins_as_requirements():
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert _pins(pip) == _pins((REPO / "requirements.txt").read_text().splitlines())
    assert "python=3.11" in conda["dependencies"]


def test_every_mlproject_parameter_is_a_cli_option():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for entry, spec in project["entry_points"].items():
        command = spec["command"].split()
        sub = subparsers[command[3]]
        flags = {o for a in sub._actions for o in a.option_strings}
        for name in spec["parameters"]:
            flag = "--" + name.replace("_", "-")
            assert flag in flags, f"{entry}: {name}"
            assert f"{flag} {{{name}}}" in spec["command"], f"{entry}: {name} not passed on"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert any("mlflow run ." in b and "dataset=flowers17" in b for b in blocks)
    test_cmd = next(b for b in blocks if "pytest" in b and "pip install" in b)
    assert test_cmd in (REPO / ".ci" / "run").read_text()


@pytest.mark.slow
def test_mlflow_run_main_entry_point_runs_a_search(tmp_path, shared_data):
    space = tmp_path / "tiny.yaml"
    space.write_text(
        textwrap.dedent("""
        strategy: grid
        fixed: {epochs: 1, model: seed, steps_per_execution: 4}
        space:
          augmentation: {values: [none, grayscale]}
    """)
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # made here so that its artifacts stay in tmp_path (MLflow's default: the project's ./mlruns)
    mlflow.MlflowClient(uri).create_experiment(
        "cnn-benchmark/cifar10", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(REPO),
            "--env-manager",
            "local",
            "-P",
            "dataset=cifar10",
            "-P",
            f"space={space}",
            "-P",
            f"data_dir={shared_data}",
            "-P",
            "max_train_samples=200",
        ],  # fmt: skip
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[2/2] " in out.stdout and "grid covered; 2 complete" in out.stdout
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parents = [r for r in runs if r.data.tags.get("cnn_benchmark_role") == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(k.info.run_name for k in kids) == [
        "lab-net-d3-k3-w64-aug=grayscale", "lab-net-d3-k3-w64-aug=none",
    ]  # fmt: skip
    assert parents[0].data.tags["strategy"] == "grid"
    assert (tmp_path / "optuna.journal").exists()  # the study beside mlflow.db, not in the repo
    # `mlflow run` put its run in Default; the search went to the dataset's experiment, as
    # `python -m benchmark search` does, and the run left behind says where
    assert mlflow.get_experiment(parents[0].info.experiment_id).name == "cnn-benchmark/cifar10"
    (wrapper,) = [r for r in runs if r.data.tags.get("mlflow.source.type") == "PROJECT"]
    assert wrapper.info.experiment_id == "0" and wrapper.info.status == "FINISHED"
    assert wrapper.data.tags["benchmark.role"] == "wrapper"
    assert wrapper.data.tags["search_run"] == parents[0].info.run_id
    assert parents[0].info.run_id in wrapper.data.tags["mlflow.note.content"]
