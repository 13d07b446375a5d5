"""The lab command: every lab task as stages into one store, then reports that open with the
lab's answers. Run as a user runs it (`python -m benchmark lab` in a subprocess) on the
shared 17 Flowers archive and a synthetic CIFAR-100 archive, with a tiny task-1 grid (the
shipped grids are dry-run by tests/test_spaces.py; here what is tested is the composition)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mlflow
import pytest
from archives import cifar100_archive

from benchmark.errors import UserError
from benchmark.search.lab import LabSettings, estimate_stages, plan_lines, plan_stages

REPO = Path(__file__).resolve().parents[1]
# Two architectures (dense width 16 or 32) x the two policies of
# task 1: 4 configurations, 8 trainings on 2 seeds, then 2 for task 2.
TINY = """\
description: a tiny task-1 grid for the lab's tests
dataset: {dataset}
strategy: grid
budget: seconds (tests only)
fixed: {{image_size: 32, filters_base: 8, filters_max: 16, padding: same, tta: flip}}
space:
  depth: {{values: [2]}}
  kernel_size: {{values: [3]}}
  dense_units: {{values: [16, 32]}}
  augmentation: {{values: [none, seed]}}
"""


@pytest.fixture
def lab_dirs(tmp_path: Path, shared_data: Path) -> tuple[Path, Path]:
    """A data folder with the real 17 Flowers archive and a synthetic CIFAR-100 one (no
    CIFAR-10: it is the dataset that cannot be had), and a folder of tiny spaces."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "17flowers.tgz").symlink_to(shared_data / "17flowers.tgz")
    cifar100_archive(data, per_class=4)
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    for dataset in ("flowers17", "cifar100"):
        (spaces / f"{dataset}.yaml").write_text(TINY.format(dataset=dataset))
    return data, spaces


def _lab(data: Path, spaces: Path, *extra: str, wait: bool = True) -> subprocess.Popen | str:
    cmd = [sys.executable, "-m", "benchmark", "lab", "--data-dir", str(data), "--spaces",
           str(spaces), "--epochs", "1", "--max-train-samples", "170", "--seeds", "2", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    return out


def _finished_trials() -> list:
    return [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list",
                                          filter_string="tags.cnn_benchmark_role = 'trial'")
            if r.info.status == "FINISHED"]  # fmt: skip


@pytest.mark.slow
def test_a_tiny_lab_answers_every_task_first_and_a_rerun_trains_nothing(tmp_path, lab_dirs):
    data, spaces = lab_dirs
    out = _lab(data, spaces, "--datasets", "flowers17,cifar100,cifar10", "--out", "reports",
               "--parts", "batch_size")  # fmt: skip
    skipped = [line for line in out.splitlines() if ": skipped: " in line]
    assert len(skipped) == 1 and skipped[0].startswith("cifar10: skipped: "), out
    assert re.search(r"\[lab 6/6\] cifar100 parts batch_size: done in .* lab ETA", out), out
    # task 1's best (no auto search here): its 4x batch at the rate it won with per 256; its
    # own batch is task 1's runs of it
    assert re.search(r"^flowers17 parts batch_size: varying batch_size at (\d+) on the "
                     r"winner \(run \w+\), 2 seed\(s\) each; its own (\d+) is its 2 run\(s\), "
                     r"not retrained$", out, re.M), out  # fmt: skip

    for dataset in ("flowers17", "cifar100"):
        md = (tmp_path / "reports" / f"{dataset}.md").read_text()
        first = md.split("\n## ")[1]  # the first section after the title
        assert first.startswith("The lab's answers"), md[:500]
        assert "**Task 1" in first and "**Task 2" in first and "95% CI" in first
        lab = json.loads((tmp_path / "reports" / f"{dataset}.json").read_text())["lab"]
        rows = lab["task1"]["rows"]
        assert len(rows) == 4 and {r["augmentation"] for r in rows} == {"none", "lab"}
        assert all(len(r["test_accuracy"]["seeds"]) == 2 and r["params"] > 0 for r in rows)
        assert [e["augmentation"] for e in lab["task1"]["effects"]] == ["lab", "lab"]
        assert all(len(e["ci95"]) == 2 for e in lab["task1"]["effects"])
        t2 = lab["task2"]
        assert t2["shift_grayscale"]["augmentation"] in ("shift_grayscale", "lab+shift_grayscale")
        assert len(t2["baseline"]["test_accuracy"]["seeds"]) == 2 and t2["ci95"][0] is not None
        assert "## Ablations: one setting varied on the best configuration" in md
        part = md.split("`batch_size` varied:")[1].split("\n\n")[1]  # its table
        rows = [line for line in part.splitlines() if line.startswith("| ")]
        assert len(rows) == 2 + 2, part  # header, rule, the winner's batch and 4x
        assert "(its search's runs)" in rows[2], part  # task 1's runs of the winner
        figures = sorted((tmp_path / "reports" / dataset).glob("*.png"))
        assert figures and all(f"{dataset}/{f.name}" in md for f in figures)
    readme = (tmp_path / "reports" / "README.md").read_text()
    assert readme.split("\n## ")[1].startswith("The lab's answers")
    assert "**cifar10**: not run: " in readme
    prose = " ".join(readme.split())  # a long command is wrapped like any prose
    assert "Generated by `python -m benchmark lab --data-dir " in prose  # the one that wrote it
    assert "| cifar100 | flowers17 | 4 |" in readme  # task 1's ranks compared on 4 pairs

    before = len(_finished_trials())
    assert before == 2 * (8 + 2 + 2)  # the part trains the 4x batch only
    again = _lab(data, spaces, "--datasets", "flowers17,cifar100", "--out", "reports",
                 "--parts", "batch_size")  # fmt: skip
    assert "every stage already complete, nothing trained" in again, again
    assert len(_finished_trials()) == before


@pytest.mark.slow
def test_kill_9_mid_lab_then_a_rerun_trains_every_point_once(tmp_path, lab_dirs):
    data, spaces = lab_dirs
    proc = _lab(data, spaces, "--datasets", "flowers17", "--out", "reports", wait=False)
    deadline = time.time() + 600
    while len(_finished_trials()) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= len(_finished_trials()) < 10  # killed mid task 1 (10 trainings in all)

    out = _lab(data, spaces, "--datasets", "flowers17", "--out", "reports")
    assert "[lab 2/2] flowers17 task2: done" in out
    names = Counter((r.data.tags.get("study_name"), r.info.run_name) for r in _finished_trials())
    assert len(names) == 10 and set(names.values()) == {1}, names


def test_dry_run_prints_each_stage_its_trainings_and_minutes_then_a_total(tmp_path, lab_dirs):
    data, spaces = lab_dirs
    out = _lab(data, spaces, "--datasets", "flowers17", "--dry-run", "--auto")
    lines = out.splitlines()
    assert re.search(r"^flowers17 task1\s+8\s+\d+\.\d\s+to run$", out, re.M), out
    assert re.search(r"^flowers17 task2\s+2\s+\d+\.\d\s+to run$", out, re.M), out
    assert lines[-1].startswith("total: 2 of 2 stage(s) to run, 10 trainings planned, estimated")
    said = [line for line in lines if line.startswith("dataset 'flowers17' from ")]
    assert said and len(said) == len(set(said)), out  # each load said once, not per stage
    assert not _finished_trials()  # nothing trained


def test_stages_follow_the_lab_and_task_2_waits_for_task_1(tmp_path, lab_dirs):
    _, spaces = lab_dirs
    settings = LabSettings(datasets=("flowers17",), seeds=2, spaces=spaces, auto=True)
    stages = plan_stages(settings, ["flowers17"])
    assert [s.name for s in stages] == ["flowers17 task1", "flowers17 task2"]  # no auto space
    assert stages[0].study_name.startswith("lab-task1-flowers17-")
    assert stages[1].space is None  # its configuration is task 1's best, not chosen yet
    assert plan_lines(stages, {"cifar100": "no archive"})[-2].startswith("cifar100 (all)")


def test_a_part_waits_for_the_winner_it_varies_and_is_counted_unpriced(lab_dirs):
    """`--parts`: a stage a part after the dataset's other stages; before task 1 (here the
    winner: no auto space) is complete, its space is unknown and its default values on every
    seed are counted, the minutes left for when the winner's training time is known."""
    _, spaces = lab_dirs
    settings = LabSettings(datasets=("flowers17",), seeds=2, spaces=spaces, auto=True,
                           parts=("ema", "batch_size"))  # fmt: skip
    stages = plan_stages(settings, ["flowers17"])
    assert [s.name for s in stages] == ["flowers17 task1", "flowers17 task2",
                                        "flowers17 parts ema", "flowers17 parts batch_size"]
    from benchmark.search.lab import estimate_stages

    estimate_stages(stages[2:], settings, print)
    # each: one value on 2 seeds; the winner's own value is its search's runs, not retrained
    assert [(s.space, s.study_name, s.trainings) for s in stages[2:]] == [(None, None, 2)] * 2
    line = plan_lines(stages, {})[3]
    assert re.match(r"^flowers17 parts ema\s+2\s+0\.0\s+to run; priced once its winner is "
                    r"known$", line), line  # fmt: skip


def test_the_lab_parts_are_the_ones_with_default_values():
    from benchmark.choices import LAB_PARTS
    from benchmark.search.ablation import PART_VALUES

    assert set(LAB_PARTS) == {*PART_VALUES, "batch_size"}


def test_a_budget_factor_scales_each_auto_search_and_names_another_study():
    """On a CPU 2x slower than the one the budgets were sized on, `--budget-factor 2` gives
    each auto search twice its minutes; its plan is stored with the study, so it is another."""
    from benchmark.search.lab import AUTO, estimate_stages

    spaces = REPO / "search_spaces"
    plain, doubled = (
        [s for s in plan_stages(LabSettings(datasets=("flowers17",), spaces=spaces, auto=True,
                                            budget_factor=f), ["flowers17"]) if s.task == AUTO][0]
        for f in (1.0, 2.0)
    )  # fmt: skip
    assert doubled.space.halving.budget_minutes == 2 * plain.space.halving.budget_minutes == 200
    assert doubled.study_name != plain.study_name and "-budget200-" in doubled.study_name
    estimate_stages([doubled], LabSettings(datasets=("flowers17",)), print)
    assert doubled.estimate_s == 200 * 60
    import optuna

    from benchmark.search.names import SPENT
    from benchmark.search.storage import default_storage, make_storage

    store = make_storage(default_storage(doubled.study_name))  # where `search` keeps it
    optuna.create_study(study_name=doubled.study_name, storage=store).set_user_attr(SPENT, 864)
    estimate_stages([doubled], LabSettings(datasets=("flowers17",)), print)
    assert doubled.estimate_s == 200 * 60 - 864  # resumed: what is left of the budget
    with pytest.raises(UserError, match="--budget-factor must be above 0; got 0"):
        LabSettings(budget_factor=0)


def test_an_interrupted_stage_plans_only_what_is_left():
    from benchmark.search.lab import Stage

    stages = [Stage("cifar10", "task1", trainings=48, left=15, estimate_s=1800.0),
              Stage("cifar10", "task2", trainings=3, estimate_s=300.0)]  # fmt: skip
    lines = plan_lines(stages, {})
    assert re.match(r"^cifar10 task1\s+15 of 48\s+30\.0\s+to run$", lines[1]), lines
    assert re.match(r"^cifar10 task2\s+3\s+5\.0\s+to run$", lines[2]), lines
    assert lines[-1] == "total: 2 of 2 stage(s) to run, 18 trainings planned, estimated 35m00s"


@pytest.mark.parametrize("dataset, size", [("cifar10", 32), ("flowers17", 64)])
def test_task_2_is_priced_as_its_own_net_once_task_1_has_chosen_it(dataset, size):
    """Task 1's estimate prices each configuration (built at the data's image size); task 2,
    once known, takes its base configuration's price, not the mean augmented one."""
    from benchmark.search.ablation import ablation_space
    from benchmark.search.lab import Stage, task2_price
    from benchmark.search.space import load_space

    space = load_space(REPO / "search_spaces" / f"{dataset}.yaml")
    point = next(p for p in space.grid_points() if p["augmentation"] == "seed")
    cfg = space.config(point, dataset=dataset).replace(image_size=size)  # as estimate() does
    task1 = Stage(dataset, "task1", space=space, prices={cfg.run_name: 517.0, "other": 1.0})
    fixed = {**space.fixed, **{k: v for k, v in point.items() if k != "augmentation"}}
    task2 = Stage(dataset, "task2", space=ablation_space(fixed, 3, ["seed_shift_grayscale"]))
    assert task2_price(task1, task2, LabSettings(datasets=(dataset,))) == 517.0
    assert task2_price(Stage(dataset, "task1"), task2, LabSettings(datasets=(dataset,))) is None


@pytest.mark.parametrize("given, says", [
    ({"datasets": ("flowers17", "mnist")}, "lab datasets are cifar10, cifar100, flowers17"),
    ({"seeds": 1}, "2 or more seeds"),
    ({"parts": ("ema", "dropout")},
     "lab parts are ema, label_smoothing, batch_size, precision; got dropout"),
])  # fmt: skip
def test_settings_refuse_what_the_lab_cannot_answer(given, says):
    with pytest.raises(UserError, match=says):
        LabSettings(**given)


@pytest.mark.parametrize("option, given, nearest", [
    ("--datasets", "flowers", "flowers17"), ("--parts", "ema,label_smooth", "label_smoothing"),
])  # fmt: skip
def test_an_unknown_lab_dataset_or_part_is_one_line_with_exit_2(option, given, nearest):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "benchmark", "lab", option, given],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and f"did you mean '{nearest}'" in proc.stderr


def test_the_lab_section_is_left_out_where_the_lab_does_not_apply():
    import pandas as pd

    from benchmark.report.lab import lab_section
    from benchmark.report.load import DatasetRuns

    empty = pd.DataFrame(columns=["run_id", "state", "start_time", "config", "seed", "ablation"])
    assert lab_section(DatasetRuns("folder:/photos", empty, empty)) == ""
    said = lab_section(DatasetRuns("cifar10", empty, empty))
    assert said.startswith("## The lab's answers") and "--datasets cifar10" in said


def test_a_part_varies_the_auto_searchs_confirmed_winner_once_it_has_nothing_left():
    """`lab --auto --parts ema`: while the halving study has confirmation left to train, the
    part waits and the auto stage is to run; then the stage is complete (the lab skips it)
    and the part varies the confirmed winner's settings as its runs logged them."""
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import Param

    from benchmark import metrics as M
    from benchmark.search import halving as H
    from benchmark.search import lab_parts, names
    from benchmark.search.lab import AUTO, Stage, is_complete
    from benchmark.search.space import load_space
    from benchmark.search.storage import default_storage, make_storage

    auto = Stage("flowers17", AUTO, load_space(REPO / "search_spaces" / "flowers17-auto.yaml"),
                 study_name="flowers17-auto-test")  # fmt: skip
    store = make_storage(default_storage(auto.study_name))  # where `search` keeps it
    client = MlflowClient()
    study = optuna.create_study(study_name=auto.study_name, storage=store, direction="maximize")
    plan = H.HalvingPlan((1, 2), (2, 1), 2, 1, 2, 1e9, 1.0, 1.0)
    study.set_user_attr(names.PLAN, plan.to_json())

    def trained(depth: int, job: H.Job, value: float) -> str:
        run = client.create_run("0").info.run_id  # the trial's run, as the search logs it
        params = {"dataset": "flowers17", "depth": depth, "ema": 0.0, "seed": job.seed,
                  "epochs": plan.epochs[job.rung]}  # fmt: skip
        client.log_batch(run, params=[Param(k, str(v)) for k, v in params.items()])
        study.enqueue_trial({"depth": depth})
        trial = study.ask()
        trial.suggest_categorical("depth", [2, 3])
        for key, v in {**job.attrs(), names.run_id_attr(0): run}.items():
            trial.set_user_attr(key, v)
        study.tell(trial, value)
        return run

    trained(2, H.Job(rung=0), 0.5), trained(3, H.Job(rung=0), 0.6)
    full = trained(3, H.Job(rung=1), 0.7)
    assert lab_parts.winner(study, halving=True) is None  # seed 1 of the finalist not trained
    assert not is_complete(auto)
    seed1 = trained(3, H.Job(rung=1, stage=H.CONFIRM, seed=1), 0.72)
    assert lab_parts.winner(study, halving=True) == [full, seed1]
    auto.done = is_complete(auto)
    estimate_stages([auto], None, print)  # a halving stage's estimate: its budget left
    assert re.search(r" 0\.0  complete: skipped$", plan_lines([auto], {})[1])  # none: it is done
    assert lab_parts.baseline_runs([full, seed1], 3) == []  # no seed 2: ema 0.0 is trained
    space = lab_parts.part_space([full, seed1], "ema", 3, "flowers17", reuse=False)
    assert space.fixed == {"depth": 3, "epochs": 2} and space.seeds == 3
    assert [(d.name, d.values) for d in space.dimensions] == [("ema", (0.0, 0.99))]
    # on two seeds the winner's runs stand for its own ema 0.0: only 0.99 is trained
    assert lab_parts.baseline_runs([seed1, full], 2) == [full, seed1]  # by seed
    space = lab_parts.part_space([full, seed1], "ema", 2, "flowers17")
    assert [(d.name, d.values) for d in space.dimensions] == [("ema", (0.99,))]
    assert lab_parts.stage_tags("ema", [full, seed1]) == {
        M.TAG_VARY: "ema", M.TAG_BASELINE_RUNS: f"{full},{seed1}"}  # fmt: skip
