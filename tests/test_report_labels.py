"""How the report names configurations that share a run name: by the settings that tell
them apart, leaving out those their family does not read (a search across families logs a
resnet's `depth` and `filters_max` too, which change nothing in it)."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.report import load_runs, summarize
from benchmark.report.load import split_by_dataset

# (learning rate, depth, filters_max): the first two differ in what a resnet reads; the last
# two only in depth and filters_max, which it does not read, and are told apart by them
CONFIGS = [(0.001, 3, 128), (0.01, 2, 256), (0.1, 2, 256), (0.1, 4, 128)]
NAME = TrialConfig.from_options(model="resnet").run_name


def _log(client: MlflowClient, learning_rate: float, depth: int, filters_max: int) -> None:
    """One completed seed as a trial logs it: every setting a param."""
    cfg = TrialConfig.from_options(model="resnet", learning_rate=learning_rate, depth=depth,
                                   filters_max=filters_max)  # fmt: skip
    run = client.create_run("0", run_name=cfg.run_name)
    params = cfg.to_params() | {"dataset": "cifar10"}
    client.log_batch(run.info.run_id, metrics=[Metric(M.TEST_ACCURACY, 0.5, 0, 1),
                                               Metric(M.VAL_ACCURACY, 0.5, 0, 1)],
                     params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag(M.TAG_TRIAL_STATE, "complete")])  # fmt: skip
    client.set_terminated(run.info.run_id)


def test_same_named_resnets_are_told_apart_by_what_a_resnet_reads():
    client = MlflowClient()
    for config in CONFIGS:
        _log(client, *config)
    labels = set(summarize(split_by_dataset(load_runs())["cifar10"].main)["label"])
    assert f"{NAME} (learning_rate=0.001)" in labels and f"{NAME} (learning_rate=0.01)" in labels
    # told apart only by settings it ignores: then they are named, rather than two alike
    assert {f"{NAME} (depth=2, filters_max=256, learning_rate=0.1)",
            f"{NAME} (depth=4, filters_max=128, learning_rate=0.1)"} <= labels  # fmt: skip
