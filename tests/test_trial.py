"""One tracked trial, read back from a real MLflow SQLite store."""

from __future__ import annotations

import mlflow
import pytest

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.data import load_dataset
from benchmark.train.trial import run_trial


@pytest.fixture(scope="module")
def cifar_small(shared_data, session_cache):
    return load_dataset("cifar10", data_dir=shared_data, max_train_samples=300,
                        cache_dir=session_cache)  # fmt: skip


def test_trial_logs_params_curves_metrics_tags_and_artifacts(cifar_small):
    cfg = TrialConfig.from_options(model="seed", augmentation="seed", epochs=2,
                                   max_train_samples=300, steps_per_execution=4)  # fmt: skip
    result = run_trial(cfg, cifar_small, verbose=0)
    run = mlflow.get_run(result.run_id)
    client = mlflow.MlflowClient()

    assert run.info.run_name == "lab-net-d3-k3-w64-aug=lab"
    assert run.info.status == "FINISHED"
    p = run.data.params
    for key in ("depth", "kernel_size", "dense_units", "filters_base", "filters_max", "dataset",
                "augmentation", "image_size", "batch_size", "optimizer", "learning_rate",
                "epochs", "seed", "max_train_samples"):  # fmt: skip
        assert key in p, key
    arch = (p["depth"], p["kernel_size"], p["dense_units"], p["filters"])
    assert arch == ("3", "3", "64", "32-64-64")
    assert (p["dataset"], p["image_size"], p["max_train_samples"]) == ("cifar10", "32", "300")

    for key in M.EPOCH_METRICS:  # one point per epoch, step = epoch (1-based)
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    m = run.data.metrics
    assert m[M.PARAM_COUNT] == 122_570 and m[M.FLOPS] == 9_097_216
    for key in (M.TRAIN_TIME, M.IMAGES_PER_S, M.TEST_ACCURACY, M.TEST_LOSS,
                M.TRAIN_EVAL_ACCURACY, M.OVERFIT_GAP, M.BEST_EPOCH, M.VAL_LOSS_RISE):  # fmt: skip
        assert key in m, key
    assert 0.0 <= m[M.TEST_ACCURACY] <= 1.0 and m[M.TRAIN_TIME] > 0
    assert m[M.OVERFIT_GAP] == pytest.approx(m[M.TRAIN_EVAL_ACCURACY] - m[M.VAL_ACCURACY])
    assert m[M.BEST_EPOCH] in (1, 2)

    t = run.data.tags
    assert t[M.TAG_OVERFIT] in ("yes", "no")
    assert t[M.TAG_OVERFIT] == ("yes" if result.overfit else "no")
    assert t[M.TAG_DEVICE].startswith(("CPU: ", "GPU: "))
    assert t[M.TAG_TF] and t[M.TAG_KERAS].startswith("3.")
    assert t[M.TAG_DIGEST] == cifar_small.digest

    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"learning_curves.png", "model_summary.txt", "augmentation_preview.png",
            "config.json"} <= names  # fmt: skip
    summary = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/model_summary.txt")
    assert "122,570" in summary


@pytest.mark.slow
def test_same_seed_same_run(cifar_small):
    cfg = TrialConfig.from_options(model="seed", augmentation="seed", epochs=1,
                                   steps_per_execution=4)  # fmt: skip
    a = run_trial(cfg, cifar_small, verbose=0).metrics
    b = run_trial(cfg, cifar_small, verbose=0).metrics
    c = run_trial(cfg.replace(seed=1), cifar_small, verbose=0).metrics
    assert a[M.TEST_LOSS] == b[M.TEST_LOSS] and a[M.TEST_ACCURACY] == b[M.TEST_ACCURACY]
    assert a[M.TEST_LOSS] != c[M.TEST_LOSS]


def test_a_failing_trial_marks_its_run_failed_with_the_reason(cifar_small, monkeypatch):
    import benchmark.train.trial as trial_mod

    def explode(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(trial_mod, "build_model", explode)
    with pytest.raises(RuntimeError):
        run_trial(TrialConfig.from_options(epochs=1), cifar_small, verbose=0)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    assert run.data.tags[M.TAG_STATUS_REASON] == "out of memory (simulated)"
    assert run.data.tags[M.TAG_TRIAL_STATE] == "failed"


def test_a_dataset_input_another_process_inserted_first_is_logged_on_the_second_try(
    monkeypatch,
):
    """Two workers' trials log the same new dataset at once: MLflow's look-then-insert lets
    one insert fail on the unique key (a trial failed so on PostgreSQL); it is tried again."""
    import numpy as np

    from benchmark.train import export

    real, calls = mlflow.log_input, []

    def racing(ds, context=None):
        calls.append(context)
        if len(calls) == 1:
            raise mlflow.exceptions.MlflowException("(UniqueViolation) duplicate key value")
        return real(ds, context=context)

    monkeypatch.setattr(mlflow, "log_input", racing)
    ds = mlflow.data.from_numpy(np.zeros((2, 4, 4, 3), np.uint8), targets=np.zeros(2), name="d")
    with mlflow.start_run() as run:
        export.log_input_once(ds, "training")
    logged = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert calls == ["training", "training"] and [d.dataset.name for d in logged] == ["d"]
