"""Faults and hostile input that the other test modules do not already cover."""

from __future__ import annotations

import math
import re

import mlflow
import pytest

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.data import load_dataset
from benchmark.errors import UserError
from benchmark.search.space import load_space
from benchmark.train.tracking import prepare_tracking
from benchmark.train.trial import TrialFailed, run_trial


def test_unreachable_tracking_store_fails_fast_before_training(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    mlflow.set_tracking_uri("http://127.0.0.1:9")
    with pytest.raises(UserError, match="tracking store 'http://127.0.0.1:9' is unreachable"):
        prepare_tracking()


def test_unknown_augmentation_fails_before_any_run():
    with pytest.raises(UserError, match="unknown augmentation 'sheer'"):
        TrialConfig.from_options(augmentation="sheer")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize(
    "fixed,message",
    [
        ("{depth: three}", "Received: depth='three'"),
        ("{batch_size: -4}", "Received: batch_size=-4"),
        ("{image_size: 0}", "Received: image_size=0"),
        ("{learning_rate: fast}", "learning_rate"),
    ],
)
def test_wrong_types_in_yaml_are_named(tmp_path, fixed, message):
    path = tmp_path / "s.yaml"
    path.write_text(f"fixed: {fixed}\nspace: {{kernel_size: {{values: [3]}}}}\n")
    with pytest.raises(UserError, match=message):
        load_space(path)


def test_a_trial_whose_loss_explodes_fails_with_nan_loss(shared_data, session_cache):
    data = load_dataset("cifar10", data_dir=shared_data, max_train_samples=200,
                        cache_dir=session_cache)  # fmt: skip
    cfg = TrialConfig.from_options(model="seed", optimizer="sgd", learning_rate=1e12, epochs=3,
                                   steps_per_execution=1)  # fmt: skip
    with pytest.raises(TrialFailed, match=r"nan loss at epoch \d"):
        run_trial(cfg, data, verbose=0)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "FAILED"
    reason = run.data.tags[M.TAG_STATUS_REASON]
    found = re.match(r"nan loss at epoch (\d+)", reason)
    assert found, reason
    nan_epoch = int(found[1])
    epochs_logged = mlflow.MlflowClient().get_metric_history(run.info.run_id, M.LOSS)
    # every epoch before the NaN one is a point (step = epoch, 1-based), the NaN one is not;
    # when the first epoch already blew up there is no point at all
    assert sorted(m.step for m in epochs_logged) == list(range(1, nan_epoch))
    assert [m.value for m in epochs_logged if not math.isfinite(m.value)] == []
