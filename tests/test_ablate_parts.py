"""`ablate --vary`: the best configuration with one part of its training recipe varied
(issue 30's EMA, label smoothing, larger batch with a scaled rate), each value against the
part's lowest in the report; the values are checked before anything trains."""

from __future__ import annotations

import re

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from benchmark import metrics as M
from benchmark.cli import main
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.report import load_runs, write_reports
from benchmark.report.ablation import TITLE_PARTS, ablations, varied_setting
from benchmark.report.load import split_by_dataset
from benchmark.search.ablation import ablation_space, part_values, same_step_rate

WINNER = {"model": "cnn", "depth": 3, "ema": 0.0, "label_smoothing": 0.1, "batch_size": 64,
          "learning_rate": 0.02, "augmentation": "shift_flip"}  # fmt: skip


def test_a_part_is_tried_off_and_at_the_literatures_value_beside_the_winners_own():
    assert part_values(WINNER, "ema", None) == [0.0, 0.99]
    assert part_values(WINNER, "label_smoothing", None) == [0.1, 0.0, 0.2]  # its own first
    assert part_values(WINNER, "batch_size", None) == [64, 256]
    assert part_values(WINNER, "label_smoothing", [0.05]) == [0.05]  # as given
    space = ablation_space(WINNER, 3, [0.0, 0.99], vary="ema")
    assert [p["ema"] for p in space.grid_points()] == [0.0, 0.99]
    assert "ema" not in space.fixed and space.fixed["augmentation"] == "shift_flip"
    assert space.seeds == 3


@pytest.mark.parametrize("vary, given, says", [
    ("emma", None, "--vary 'emma' is not a setting; one of: "),
    ("seed", None, "--vary 'seed' is not a setting"),
    ("weight_decay", None, "--vary weight_decay needs --values (e.g. --values "),
    ("ema", [1.5], "ema"),
])  # fmt: skip
def test_a_bad_part_or_value_is_one_line_before_anything_trains(vary, given, says):
    with pytest.raises(UserError, match=r"^[^\n]*$") as err:
        part_values(WINNER, vary, given)
    assert says in str(err.value)


def test_a_larger_batch_keeps_the_winners_step_at_its_own_batch_and_scales_the_rest():
    fixed = same_step_rate(WINNER)
    own = TrialConfig.from_options(**fixed)
    big = TrialConfig.from_options(**{**fixed, "batch_size": 256})
    assert fixed["lr_scaling"] == "linear"
    assert own.peak_learning_rate == pytest.approx(0.02)  # the rate it won with
    assert big.peak_learning_rate == pytest.approx(0.08)  # Goyal et al.: 4x the batch, 4x


def test_ablate_refuses_an_unknown_part_with_one_line_and_exit_2(tmp_path, capsys):
    code = main(["ablate", "--dataset", "cifar10", "--vary", "emma"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--vary 'emma' is not a setting" in err[0]


# ema -> per seed test accuracy (TTA beside it)
EMA_RUNS = {"0.99": [0.74, 0.75, 0.76], "0.0": [0.70, 0.71, 0.72]}


def _parent(client: MlflowClient, role: str, **tags: str) -> str:
    parent = client.create_run("0", run_name=role)
    client.log_batch(parent.info.run_id, tags=[
        RunTag(M.TAG_ROLE, role), RunTag(M.TAG_DATASET, "cifar10"),
        *(RunTag(k, v) for k, v in tags.items())])  # fmt: skip
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id


def _seed_runs(client: MlflowClient, parent_id: str, name: str, tests: list[float],
               params: dict[str, str], train_s: float = 10.0) -> list[str]:  # fmt: skip
    """Complete clean runs of one configuration under `parent_id`, as a search logs them, one
    per seed, scoring `tests` (the TTA score 0.01 above)."""
    ids = []
    for seed, test in enumerate(tests):
        run = client.create_run("0", run_name=name, tags={"mlflow.parentRunId": parent_id})
        metrics = {M.VAL_ACCURACY: test, M.BEST_VAL_ACCURACY: test, M.TEST_ACCURACY: test,
                   M.TEST_ACCURACY_TTA: test + 0.01, M.TRAIN_TIME: train_s}  # fmt: skip
        client.log_batch(run.info.run_id,
                         metrics=[Metric(k, v, 0, 3) for k, v in metrics.items()],
                         params=[Param(k, v) for k, v in {**params, "seed": str(seed)}.items()],
                         tags=[RunTag(M.TAG_TRIAL_STATE, "complete"),
                               RunTag(M.TAG_TIMING, "clean")])  # fmt: skip
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def _trials(client: MlflowClient, parent_id: str, ema: str) -> list[str]:
    """EMA_RUNS' runs of one value under `parent_id`."""
    params = {"dataset": "cifar10", "depth": "3", "ema": ema}
    return _seed_runs(client, parent_id, "d3-k3-w64-aug=none", EMA_RUNS[ema], params)


@pytest.fixture
def ema_ablation() -> str:
    """An ablation parent and its runs, as `ablate --vary ema --seeds 3` logs them, in the
    test's own SQLite store (conftest points MLflow at it)."""
    client = MlflowClient()
    parent = _parent(client, "ablation")
    for ema in EMA_RUNS:
        _trials(client, parent, ema)
    return parent


def test_the_report_puts_each_value_against_the_parts_lowest(ema_ablation, tmp_path):
    runs = split_by_dataset(load_runs())["cifar10"]
    assert varied_setting(runs.children_of([ema_ablation])) == "ema"
    text = ablations(runs)
    assert "`ema` varied" in text and "| Δ test vs 0.0 |" in text and "test acc TTA" in text
    rows = [line for line in text.splitlines() if line.startswith("| d3-")]
    assert [r.split("|")[2].strip() for r in rows] == ["0.0", "0.99"]  # off first
    assert "+0.0400 [" in rows[1]  # 0.75 - 0.71, with its interval
    write_reports("cifar10", tmp_path / "r")
    md = (tmp_path / "r" / "cifar10.md").read_text()
    assert TITLE_PARTS in md
    findings = " ".join(md.split("## Findings")[1].split("\n## ")[0].split())  # prose, unwrapped
    assert re.search(r"\*\*Recipe parts on the winner\.\*\* .*`ema` against 0\.0 "
                     r"\(0\.7100 ± 0\.0100\): 0\.99 gives 0\.7500 ± 0\.0100, Δ \+0\.0400 "
                     r"\[\+0\.\d+, \+0\.\d+\]: pays\.", findings), findings  # fmt: skip


def test_a_lab_part_shows_the_winners_own_runs_for_its_own_value(tmp_path):
    """`lab --parts ema`: the winner's search already trained ema 0.99 on the lab's seeds, so
    the part trains 0.0 only; its table and the findings still set 0.99 against 0.0, the
    winner's row named as its search's runs."""
    client = MlflowClient()
    winner = _trials(client, _parent(client, "search"), "0.99")
    part = _parent(client, "ablation", **{M.TAG_VARY: "ema",
                                          M.TAG_BASELINE_RUNS: ",".join(winner)})  # fmt: skip
    _trials(client, part, "0.0")
    runs = split_by_dataset(load_runs())["cifar10"]
    rows = [line for line in ablations(runs).splitlines() if line.startswith("| d3-")]
    assert [r.split("|")[2].strip() for r in rows] == ["0.0", "0.99"], rows
    assert "(its search's runs)" in rows[1] and "+0.0400 [" in rows[1]
    assert rows[1].split("|")[-2].strip() == "3"  # its three seeds
    write_reports("cifar10", tmp_path / "r")
    md = (tmp_path / "r" / "cifar10.md").read_text()
    findings = " ".join(md.split("## Findings")[1].split("\n## ")[0].split())
    assert "`ema` against 0.0 (0.7100 ± 0.0100): 0.99 gives 0.7500 ± 0.0100" in findings
    assert "**Trial runs**: 6 (6 complete)" in md  # the search's runs counted once


@pytest.mark.slow
def test_ablate_vary_batch_size_trains_the_winner_at_its_own_step_and_4x(tmp_path, shared_data,
                                                                          capsys):  # fmt: skip
    """As a user runs it: a one-point search, then `ablate --vary batch_size`: the winner's
    batch and 4x, every other setting the winner's, the rate given per 256 images so the
    winner's own batch steps at the rate it won with."""
    space = tmp_path / "one.yaml"
    space.write_text("strategy: grid\nfixed: {epochs: 1, depth: 2, filters_max: 16, "
                     "batch_size: 16, learning_rate: 0.002, augmentation: shift}\n"
                     "space: {dense_units: {values: [16]}}\n")  # fmt: skip
    data = ["--dataset", "cifar10", "--data-dir", str(shared_data), "--max-train-samples", "200"]
    assert main(["search", "--space", str(space), *data]) == 0
    assert main(["ablate", "--vary", "batch_size", *data]) == 0
    assert "batch_size at 16, 64:" in capsys.readouterr().out
    parent = MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()],
        filter_string=f"tags.{M.TAG_ROLE} = 'ablation'")[0]  # fmt: skip
    assert parent.data.tags[M.TAG_VARY] == "batch_size"  # the report reads it there
    under = f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    kids = MlflowClient().search_runs([parent.info.experiment_id], filter_string=under)
    params = sorted((k.data.params for k in kids), key=lambda p: int(p["batch_size"]))
    assert [p["batch_size"] for p in params] == ["16", "64"]
    assert {p["lr_scaling"] for p in params} == {"linear"}
    assert {p["augmentation"] for p in params} == {"shift"}  # the winner's, not varied
    assert float(params[0]["learning_rate"]) == pytest.approx(0.002 * 256 / 16)


def test_precision_is_tried_at_float32_and_bf16_with_auto_as_what_it_trains_as_here():
    """`ablate --vary precision` on a winner trained at `auto`: float32 against bf16, `auto`
    not a third value (on a CPU it is one of the two)."""
    assert part_values({**WINNER, "precision": "auto"}, "precision", None) == [
        "float32", "mixed_bfloat16"]  # fmt: skip


def _precision_runs(client: MlflowClient, parent: str, precision: str, resolved: str,
                    tests: list[float], train_s: float) -> list[str]:  # fmt: skip
    params = {"dataset": "cifar10", "model": "resnet", "augmentation": "crop",
              "precision": precision, M.PRECISION_RESOLVED: resolved}  # fmt: skip
    return _seed_runs(client, parent, "resnet-w16-aug=crop", tests, params, train_s)


def test_a_precision_part_sets_bf16_against_float32_by_the_policy_each_run_trained_under(
        tmp_path):  # fmt: skip
    """The winner trained at `auto` on a bf16 CPU (its runs: mixed_bfloat16); the part trained
    float32. The table and the findings read each run's policy, not the word `auto`, and say
    what bf16 saved in training time."""
    from benchmark.search import lab_parts

    client = MlflowClient()
    winner = _precision_runs(client, _parent(client, "search"), "auto", "mixed_bfloat16",
                             [0.80, 0.81, 0.82], 600.0)  # fmt: skip
    space = lab_parts.part_space(winner, "precision", 3, "cifar10")
    assert [(d.name, d.values) for d in space.dimensions] == [("precision", ("float32",))]
    assert "its own mixed_bfloat16 is its 3 run(s)" in lab_parts.describe(winner, space, winner)
    part = _parent(client, "ablation", **{M.TAG_VARY: "precision",
                                          M.TAG_BASELINE_RUNS: ",".join(winner)})  # fmt: skip
    _precision_runs(client, part, "float32", "float32", [0.80, 0.82, 0.81], 900.0)
    runs = split_by_dataset(load_runs())["cifar10"]
    rows = [line for line in ablations(runs).splitlines() if line.startswith("| resnet-")]
    assert [r.split("|")[2].strip() for r in rows] == ["float32", "mixed_bfloat16"], rows
    assert "(its search's runs)" in rows[1]
    write_reports("cifar10", tmp_path / "r")
    md = (tmp_path / "r" / "cifar10.md").read_text()
    findings = " ".join(md.split("## Findings")[1].split("\n## ")[0].split())
    assert re.search(r"`precision` against float32 \(0\.8100 ± 0\.0100\): mixed_bfloat16 gives "
                     r"0\.8100 ± 0\.0100, Δ \+0\.0000 \[[−-]0\.\d+, \+0\.\d+\]: within the seeds' "
                     r"noise, 600 s of training against 900 s", findings), findings  # fmt: skip
