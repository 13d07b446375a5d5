"""Speed of `write_reports` over 1,000 runs (the issue's bar: at most 10 s).

Run with `python -m pytest tests/bench/bench_report.py --benchmark-only`. The runs are
synthetic but shaped like the real ones: two datasets, a search parent run each, and
nested trial runs with every TrialConfig param, the per-epoch curves, the final metrics
and the tags a trial sets; about 2% failed, about 10% timed beside other load.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.report import write_reports

N_RUNS = 1000
EPOCHS = 10
DATASETS = ("cifar10", "flowers17")
GRID = list(
    itertools.product((2, 3, 4), (3, 5), (64, 128, 256), ("none", "seed", "shift", "grayscale"))
)  # 72 configurations; seeds repeat them


def _log_store(uri: str) -> None:
    client = MlflowClient(uri)
    exp = client.create_experiment("bench")
    rng = np.random.default_rng(0)
    now = int(time.time() * 1000)
    per_dataset = N_RUNS // len(DATASETS)
    for dataset in DATASETS:
        parent = client.create_run(exp, run_name=f"search-{dataset}-grid")
        pid = parent.info.run_id
        client.log_batch(
            pid,
            params=[Param(k, str(v)) for k, v in {"strategy": "grid", "dataset": dataset,
                    "space_file": f"search_spaces/{dataset}.yaml", "seeds": 7,
                    "n_trials": len(GRID), "fixed.epochs": EPOCHS}.items()],
            tags=[RunTag("cnn_benchmark_role", "search"), RunTag("dataset", dataset)],
        )  # fmt: skip
        for i in range(per_dataset):
            depth, kernel, dense, aug = GRID[i % len(GRID)]
            cfg = TrialConfig(dataset=dataset, image_size=32, depth=depth, kernel_size=kernel,
                              dense_units=dense, augmentation=aug, epochs=EPOCHS,
                              seed=i // len(GRID))  # fmt: skip
            run = client.create_run(exp, start_time=now + i, run_name=f"{cfg.run_name}-s{cfg.seed}")
            failed = rng.random() < 0.02
            contended = rng.random() < 0.1  # trained beside other load
            skill = 0.4 + 0.05 * depth + 0.0003 * dense - 0.02 * (kernel == 5)
            val = skill * (1 - np.exp(-np.arange(1, EPOCHS + 1) / 3)) + rng.normal(0, 0.01, EPOCHS)
            curves = {M.ACCURACY: val + 0.1, M.VAL_ACCURACY: val, M.LOSS: 2 - 1.5 * val,
                      M.VAL_LOSS: 2.1 - 1.4 * val, M.EPOCH_TIME: 3 + val}  # fmt: skip
            metrics = [Metric(k, float(v[e]), now + e, e + 1) for k, v in curves.items()
                       for e in range(2 if failed else EPOCHS)]  # fmt: skip
            final = {M.PARAM_COUNT: 10_000 * depth * dense, M.FLOPS: 1e6 * depth * kernel**2,
                     M.TRAIN_TIME: 30 + 5 * depth, M.IMAGES_PER_S: 1500 / depth,
                     M.TEST_ACCURACY: val[-1] - 0.01, M.TEST_LOSS: 1.0,
                     M.TRAIN_EVAL_ACCURACY: val[-1] + 0.1, M.OVERFIT_GAP: 0.1 + 0.01 * depth,
                     M.BEST_EPOCH: int(np.argmax(val)) + 1, M.BEST_VAL_ACCURACY: val.max(),
                     M.VAL_LOSS_RISE: 0.05, M.CPU_MS_PER_IMAGE: 0.4 * depth,
                     M.CPU_TIME: 20.0 * depth, M.HOST_BUSY_OTHER: 0.5 * contended}  # fmt: skip
            if not failed:
                metrics += [Metric(k, float(v), now, 0) for k, v in final.items()]
            tags = {"mlflow.parentRunId": pid, "cnn_benchmark_role": "trial",
                    M.TAG_TRIAL_STATE: "failed" if failed else "complete",
                    M.TAG_OVERFIT: "yes" if depth > 2 else "no", M.TAG_DEVICE: "CPU: bench x2",
                    M.TAG_TF: "2.21.0", M.TAG_KERAS: "3.15.0", M.TAG_GIT: "abc1234",
                    M.TAG_DIGEST: "d" * 16,
                    M.TAG_TIMING: "contended" if contended else "clean"}  # fmt: skip
            if failed:
                tags[M.TAG_STATUS_REASON] = "nan loss at epoch 2"
            params = cfg.to_params() | {"filters": "-".join(["32"] * depth)}
            client.log_batch(
                run.info.run_id,
                metrics=metrics,
                params=[Param(k, str(v)) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            client.set_terminated(run.info.run_id, "FAILED" if failed else "FINISHED")
        client.set_terminated(pid)


def test_report_1000_runs(benchmark, tmp_path):
    uri = f"sqlite:///{tmp_path / 'bench.db'}"
    _log_store(uri)
    out = tmp_path / "reports"
    paths = benchmark.pedantic(write_reports, args=("all", out, uri), rounds=3, iterations=1)
    assert {p.name for p in paths} >= {"cifar10.md", "flowers17.md", "README.md"}
