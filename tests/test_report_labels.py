"""How the report names configurations that share a run name: by the settings that tell
them apart, leaving out those their family does not read (a search across families logs a
resnet's `depth` and `filters_max` too, which change nothing in it)."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.report import load_runs, summarize, write_reports
from benchmark.report.load import split_by_dataset

# (learning rate, depth, filters_max): the first two differ in what a resnet reads; the last
# two only in depth and filters_max, which it does not read, and are told apart by them
CONFIGS = [(0.001, 3, 128), (0.01, 2, 256), (0.1, 2, 256), (0.1, 4, 128)]
NAME = TrialConfig.from_options(model="resnet").run_name


def _log(client: MlflowClient, learning_rate: float, depth: int, filters_max: int,
         model: str = "resnet") -> None:  # fmt: skip
    """One completed seed as a trial logs it: every setting a param."""
    cfg = TrialConfig.from_options(model=model, learning_rate=learning_rate, depth=depth,
                                   filters_max=filters_max)  # fmt: skip
    run = client.create_run("0", run_name=cfg.run_name)
    params = cfg.to_params() | {"dataset": "cifar10"}
    client.log_batch(run.info.run_id, metrics=[Metric(M.TEST_ACCURACY, 0.5, 0, 1),
                                               Metric(M.VAL_ACCURACY, 0.5, 0, 1)],
                     params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag(M.TAG_TRIAL_STATE, "complete")])  # fmt: skip
    client.set_terminated(run.info.run_id)


def _store(with_cnn: bool = False) -> None:
    client = MlflowClient()
    for config in CONFIGS:
        _log(client, *config)
    if with_cnn:
        _log(client, 0.001, 3, 128, model="cnn")


def test_same_named_resnets_are_told_apart_by_what_a_resnet_reads():
    _store()
    labels = set(summarize(split_by_dataset(load_runs())["cifar10"].main)["label"])
    assert f"{NAME} (learning_rate=0.001)" in labels and f"{NAME} (learning_rate=0.01)" in labels
    # told apart only by settings it ignores: then they are named, rather than two alike
    assert {f"{NAME} (depth=2, filters_max=256, learning_rate=0.1)",
            f"{NAME} (depth=4, filters_max=128, learning_rate=0.1)"} <= labels  # fmt: skip


def test_the_report_names_each_architecture_and_marks_settings_its_family_ignores(tmp_path):
    """The leaderboard's architecture column is the run name's (a resnet has no depth to
    show); the Configurations table shows · for a setting the row's family does not read.
    Every run here scores 0.5: "What matters" has no importances then, and no traceback."""
    _store(with_cnn=True)
    write_reports("cifar10", out=tmp_path)
    md = (tmp_path / "cifar10.md").read_text()
    board = md.split("## Leaderboard", 1)[1].split("\n## ", 1)[0]
    arch = NAME.removesuffix("-aug=none")
    assert board.count(f"| `{arch}` | none |") == len(CONFIGS) and "| `d3-k3-w64` | none |" in board
    legend = md.split("## Configurations", 1)[1].split("\n## ", 1)[0]
    heads = next(line for line in legend.splitlines() if line.startswith("| id |")).split(" | ")
    rows = [line.split(" | ") for line in legend.splitlines() if line.startswith("| C")]
    column = heads.index("filters_max")
    cells = {r[1].strip("`"): r[column] for r in rows}
    assert cells["d3-k3-w64-aug=none"] == "128" and cells[NAME] == "·", cells
    assert "stage_widths" not in heads  # only the resnets read it, and they share it
