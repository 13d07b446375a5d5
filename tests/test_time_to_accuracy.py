"""Time to accuracy from a real MLflow store of known runs: per-epoch `val_accuracy` and
`epoch_time_s` logged by hand, as a trial logs them (step = epoch), then read back by
`time_to_accuracy`, the report's section and its JSON."""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from benchmark import metrics as M
from benchmark.report import time_to_accuracy, write_reports
from benchmark.report.speed import seconds_to_reach

# (depth, seed, timing, per-epoch val_accuracy, per-epoch seconds)
RUNS = [
    ("3", 0, "clean", [0.60, 0.75, 0.86], [10.0, 10.0, 10.0]),  # 0.70: 20 s, 0.80: 30, 0.85: 30
    ("3", 1, "clean", [0.72, 0.81, 0.86], [12.0, 12.0, 12.0]),  # 12, 24, 36
    ("3", 2, "contended", [0.72, 0.81, 0.86], [90.0, 90.0, 90.0]),  # loaded: not counted
    ("2", 0, "clean", [0.71, 0.79, 0.80], [5.0, 5.0, 5.0]),  # 5, 15, never
    ("1", 0, "clean", [0.50, 0.60, 0.65], [1.0, 1.0, 1.0]),  # never 0.70: its curve not read
]


@pytest.fixture
def store() -> dict[tuple[str, int], str]:
    """The runs above in the test's own SQLite store; (depth, seed) -> run id."""
    client = MlflowClient()
    ids = {}
    for depth, seed, timing, vals, secs in RUNS:
        run = client.create_run("0", run_name=f"d{depth}-k3-w64-aug=none")
        curve = [Metric(M.VAL_ACCURACY, v, i, i + 1) for i, v in enumerate(vals)]
        curve += [Metric(M.EPOCH_TIME, s, i, i + 1) for i, s in enumerate(secs)]
        final = {M.BEST_VAL_ACCURACY: max(vals), M.TEST_ACCURACY: vals[-1] - 0.01,
                 M.TRAIN_TIME: sum(secs)}  # fmt: skip
        params = {"dataset": "cifar10", "depth": depth, "epochs": "3", "seed": str(seed)}
        tags = {M.TAG_TRIAL_STATE: "complete", M.TAG_TIMING: timing}
        client.log_batch(
            run.info.run_id,
            metrics=curve + [Metric(k, v, 10, 0) for k, v in final.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id)
        ids[depth, seed] = run.info.run_id
    return ids


def test_seconds_to_reach_counts_epochs_up_to_the_first_at_the_target():
    val, secs = {1: 0.5, 2: 0.8, 3: 0.9}, {1: 4.0, 2: 5.0, 3: 6.0}
    assert seconds_to_reach(val, secs, 0.8) == 9.0
    assert seconds_to_reach(val, secs, 0.5) == 4.0
    assert math.isnan(seconds_to_reach(val, secs, 0.95))
    assert math.isnan(seconds_to_reach(val, {1: 4.0}, 0.8))  # an epoch without its time


def test_time_to_accuracy_of_each_run_in_the_store(store):
    runs = mlflow.search_runs(experiment_ids=["0"])
    at80 = time_to_accuracy(runs, 0.80)
    assert isinstance(at80, pd.Series) and set(at80.index) == set(store.values())
    assert at80[store["3", 0]] == 30.0 and at80[store["3", 1]] == 24.0
    assert at80[store["2", 0]] == 15.0
    at85 = time_to_accuracy(list(store.values()), 0.85)  # run ids work too
    assert math.isnan(at85[store["2", 0]]) and at85[store["3", 1]] == 36.0


def test_report_names_the_fastest_configuration_per_threshold(store, tmp_path, monkeypatch):
    """0.70 and 0.80: the 2-block net (5 s, 15 s); 0.85: only the 3-block net's runs all
    reach it, at (30 + 36) / 2 s: its contended run is left out. The curves of a run whose
    best validation accuracy is under 0.70 are not read."""
    import benchmark.report.speed as speed

    read: list[str] = []
    real = speed.curves

    def recording(ids):
        read.extend(ids)
        return real(read)

    monkeypatch.setattr(speed, "curves", recording)
    write_reports("cifar10", out=tmp_path)
    assert store["1", 0] not in read and store["3", 2] not in read and store["3", 0] in read
    md = (tmp_path / "cifar10.md").read_text()
    section = md.split("## Time to accuracy")[1].split("\n## ")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in section.splitlines()
            if line.startswith("| ≥")}  # fmt: skip
    assert set(rows) == {"≥ 0.70", "≥ 0.80", "≥ 0.85"}
    assert "| 5 | 1 |" in rows["≥ 0.70"] and "| 15 | 1 |" in rows["≥ 0.80"]
    assert "| 33 | 2 |" in rows["≥ 0.85"]
    doc = json.loads((tmp_path / "cifar10.json").read_text())["time_to_accuracy"]
    assert doc["0.85"]["configuration"].startswith("d3-k3-w64")
    assert doc["0.85"]["seconds"] == 33.0 and doc["0.85"]["runs"] == 2
    assert doc["0.80"]["configuration"].startswith("d2-k3-w64") and doc["0.80"]["seconds"] == 15
