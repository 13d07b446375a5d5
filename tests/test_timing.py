"""Every trial says where its time went, from the search process's point of view, and the
search prints the medians: startup, data, build, fit, eval and log, and the overhead; the
next trial's process starts while the current one trains."""

from __future__ import annotations

import mlflow
import pytest

from benchmark import metrics as M
from benchmark.search import run_search
from benchmark.search.space import load_space

SPACE = """\
strategy: grid
fixed: {epochs: 1, batch_size: 32, depth: 1, filters_base: 4, dense_units: 0,
        max_train_samples: 100}
space:
  kernel_size: {values: [3, 5]}
"""


@pytest.mark.slow  # two real searches; the quick set's search in trial processes: test_isolate
@pytest.mark.parametrize("isolate", [True, False], ids=["own-process", "in-process"])
def test_timing_metrics_exist_and_add_up(tmp_path, shared_data, isolate):
    (tmp_path / "space.yaml").write_text(SPACE)
    summary = run_search(
        load_space(tmp_path / "space.yaml"), dataset="cifar10", data_dir=str(shared_data),
        storage=f"sqlite:///{tmp_path / 'optuna.db'}", printer=lambda line: None,
        isolate=isolate,
    )  # fmt: skip
    assert summary.counts["complete"] == 2
    runs = [
        r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if r.data.tags.get(M.TAG_ROLE) == "trial"
    ]  # fmt: skip
    assert len(runs) == 2
    for run in runs:
        m = run.data.metrics
        for key in M.TIMING_METRICS:
            if key == M.STARTUP_TIME and not isolate:
                continue  # no process to start
            assert key in m and m[key] >= 0, key
        assert m[M.FIT_TIME] == pytest.approx(m[M.TRAIN_TIME])
        assert m[M.FIT_TIME] + m[M.OVERHEAD_TIME] == pytest.approx(m[M.TRIAL_WALL_TIME])
        inside = sum(m[k] for k in (M.DATA_TIME, M.BUILD_TIME, M.FIT_TIME, M.EVAL_TIME,
                                    M.LOG_TIME, M.STARTUP_TIME) if k in m)  # fmt: skip
        # the phases fit inside the wall time the search saw (how much of it they cover,
        # and how much the warm next process saves, are figures: `bench`, not asserts here)
        assert inside <= m[M.TRIAL_WALL_TIME] + 0.05
    medians = summary.median_timings()
    assert set(medians) >= {M.FIT_TIME, M.OVERHEAD_TIME, M.TRIAL_WALL_TIME}
    parent = next(
        r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if r.data.tags.get(M.TAG_ROLE) == "search"
    )  # fmt: skip
    assert parent.data.metrics[f"median_{M.OVERHEAD_TIME}"] == pytest.approx(
        medians[M.OVERHEAD_TIME]
    )
