"""The search: grid coverage, pruning, failures, resume, YAML validation, dry run, ablation.

Real parts throughout: the shared CIFAR-10 subset, a real Optuna study in SQLite and a real
MLflow SQLite store (tests/conftest.py points MLFLOW_TRACKING_URI at a temp file).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from benchmark import search as search_mod
from benchmark.errors import UserError
from benchmark.search.space import load_space
from benchmark.search.storage import make_storage
from benchmark.train.trial import EpochLogger, TrialFailed

REPO = Path(__file__).resolve().parents[1]
TINY = dict(max_train_samples=200)  # 20 images a class: a trial is a few seconds


def write_space(tmp_path: Path, body: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


GRID = """
    strategy: grid
    fixed: {epochs: 1, padding: valid, filters_max: 64, steps_per_execution: 4}
    space:
      depth: {values: [2, 3]}
      augmentation: {values: [none, shift]}
"""


def children_of(parent_id: str) -> list:
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        output_format="list",
    )


@pytest.mark.slow
def test_grid_runs_every_point_once_as_nested_runs(tmp_path, shared_data):
    space = load_space(write_space(tmp_path, GRID))
    lines: list[str] = []
    summary = search_mod.run_search(
        space, dataset="cifar10", data_dir=str(shared_data), overrides=TINY,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}", printer=lines.append,
    )  # fmt: skip
    study = optuna.load_study(study_name=summary.study_name,
                              storage=f"sqlite:///{tmp_path / 'optuna.db'}")  # fmt: skip
    points = sorted((t.params["depth"], t.params["augmentation"]) for t in study.trials)
    assert points == [(2, "none"), (2, "shift"), (3, "none"), (3, "shift")]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert summary.counts["complete"] == 4 and summary.stopped_reason == "grid covered"

    # progress: one line per trial with n/N, the configuration, val accuracy, time and ETA
    assert len(lines) == 4 and lines[-1].startswith("[4/4] ")
    assert "val_accuracy" in lines[0] and "ETA" in lines[0]

    parent = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.cnn_benchmark_role = 'search'",
        output_format="list",
    )[0]  # fmt: skip
    kids = children_of(parent.info.run_id)
    assert sorted(k.info.run_name for k in kids) == [
        "d2-k3-w64-aug=none", "d2-k3-w64-aug=shift", "lab-net-d3-k3-w64-aug=none",
        "lab-net-d3-k3-w64-aug=shift",
    ]  # fmt: skip
    assert all(k.info.status == "FINISHED" for k in kids)
    assert parent.data.metrics["n_complete"] == 4 and parent.data.metrics["n_failed"] == 0
    best = max(kids, key=lambda r: r.data.metrics["val_accuracy"])
    assert parent.data.tags["best_run"] == best.info.run_id
    assert parent.data.params["strategy"] == "grid"
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id,
                                                                      "search_space")]  # fmt: skip
    assert artifacts == ["search_space/space.yaml"]


def test_pruner_really_prunes_and_runs_say_so(tmp_path, shared_data):
    """A threshold no model reaches: every trial stops after its first epoch."""
    space = load_space(write_space(tmp_path, """
        strategy: optuna
        fixed: {epochs: 3, model: seed, steps_per_execution: 4}
        space:
          learning_rate: {low: 0.0001, high: 0.01, log: true}
        optuna:
          n_trials: 2
          sampler: random
          pruner: {type: threshold, lower: 0.99}
    """))  # fmt: skip
    summary = search_mod.run_search(
        space, dataset="cifar10", data_dir=str(shared_data), overrides=TINY,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}", printer=lambda s: None,
    )  # fmt: skip
    assert summary.counts["pruned"] == 2 and summary.counts["complete"] == 0
    client = mlflow.MlflowClient()
    for run in mlflow.search_runs(search_all_experiments=True,
                                  filter_string="tags.trial_state = 'pruned'",
                                  output_format="list"):  # fmt: skip
        assert run.info.status == "KILLED"
        assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 1  # not 3


@pytest.mark.slow
def test_failed_trial_is_recorded_and_the_search_goes_on(tmp_path, shared_data, monkeypatch):
    import benchmark.train.trial as trial_mod

    real_build = trial_mod.build_model

    def build_or_oom(cfg, *args, **kwargs):
        if cfg.depth == 3:
            raise RuntimeError("OOM when allocating tensor (simulated)")
        return real_build(cfg, *args, **kwargs)

    monkeypatch.setattr(trial_mod, "build_model", build_or_oom)
    space = load_space(write_space(tmp_path, GRID))
    lines: list[str] = []
    summary = search_mod.run_search(
        space, dataset="cifar10", data_dir=str(shared_data), overrides=TINY,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}", printer=lines.append,
    )  # fmt: skip
    assert summary.counts["failed"] == 2 and summary.counts["complete"] == 2
    assert sum("failed: OOM when allocating tensor" in line for line in lines) == 2
    failed = mlflow.search_runs(search_all_experiments=True,
                                filter_string="attributes.status = 'FAILED'",
                                output_format="list")  # fmt: skip
    assert len(failed) == 2
    assert all("OOM when allocating" in r.data.tags["failure_reason"] for r in failed)
    study = optuna.load_study(study_name=summary.study_name,
                              storage=f"sqlite:///{tmp_path / 'optuna.db'}")  # fmt: skip
    fails = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(fails) == 2 and all("OOM" in t.user_attrs["fail_reason"] for t in fails)


@pytest.mark.slow
def test_max_failures_stops_with_a_summary(tmp_path, shared_data, monkeypatch):
    import benchmark.train.trial as trial_mod

    def always_fail(cfg, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(trial_mod, "build_model", always_fail)
    space = load_space(write_space(tmp_path, GRID))
    lines: list[str] = []
    summary = search_mod.run_search(
        space, dataset="cifar10", data_dir=str(shared_data), overrides=TINY, max_failures=2,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}", printer=lines.append,
    )  # fmt: skip
    assert summary.counts["failed"] == 2
    assert summary.stopped_reason == "stopped after 2 failures in a row"
    assert "last reason: boom" in lines[-1]


def test_nan_loss_fails_the_trial_at_its_epoch():
    logger = EpochLogger()
    logger.on_epoch_begin(2)
    with pytest.raises(TrialFailed, match="nan loss at epoch 3"):
        logger.on_epoch_end(2, {"loss": float("nan"), "accuracy": 0.1})


def _search_cmd(space: Path, data: Path) -> list[str]:
    return [sys.executable, "-m", "benchmark", "search", "--dataset", "cifar10", "--space",
            str(space), "--data-dir", str(data), "--max-train-samples", "200"]  # fmt: skip


@pytest.mark.slow
def test_resume_after_kill_9_reruns_only_the_interrupted_trial(tmp_path, shared_data):
    space = write_space(tmp_path, GRID.replace("epochs: 1", "epochs: 3"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BENCHMARK_IN_PROCESS")  # the default: each trial in a child process
    proc = subprocess.Popen(_search_cmd(space, shared_data), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    done_lines = []
    for line in proc.stdout:  # the first trial finished...
        if line.startswith("[1/4]"):
            done_lines.append(line)
            break
    deadline, running = time.monotonic() + 300, []
    while time.monotonic() < deadline:  # ...and the second one is training: kill it there
        running = mlflow.search_runs(
            search_all_experiments=True, output_format="list",
            filter_string="tags.cnn_benchmark_role = 'trial' and attributes.status = 'RUNNING'",
        )  # fmt: skip
        if running:
            time.sleep(1)
            break
        time.sleep(0.5)
    assert running, "the second trial never started: nothing to kill mid-trial"
    import psutil

    trial_procs = psutil.Process(proc.pid).children(recursive=True)
    assert trial_procs, "the trial should run in a child process"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(trial_procs, timeout=10)
    assert not alive  # the killed search's trial process died with it
    assert done_lines, "the first trial never finished"

    out = subprocess.run(_search_cmd(space, shared_data), cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "grid covered; 4 complete" in out.stdout

    store = make_storage(str(tmp_path / "optuna.journal"))  # the default, beside mlflow.db
    (summary,) = optuna.get_all_study_summaries(store)
    study = optuna.load_study(study_name=summary.study_name, storage=store)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    keys = sorted((t.params["depth"], t.params["augmentation"]) for t in complete)
    assert keys == [(2, "none"), (2, "shift"), (3, "none"), (3, "shift")]  # each exactly once
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 1
    rerun = [t for t in complete if t.system_attrs.get("failed_trial") == interrupted[0].number]
    assert rerun and rerun[0].params == interrupted[0].params  # same parameters

    statuses = [r.info.status for r in mlflow.search_runs(search_all_experiments=True,
                                                          output_format="list")]  # fmt: skip
    assert "RUNNING" not in statuses
    assert statuses.count("KILLED") == 1  # the killed trial's run, an orphan; its parent:
    (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                   filter_string="tags.cnn_benchmark_role = 'search'")  # fmt: skip
    assert parent.info.status == "FINISHED"  # reopened by the rerun (issue 31), not an orphan


@pytest.mark.slow
def test_trials_in_their_own_processes_keep_memory_flat(tmp_path, shared_data):
    """The default: each trial in a fresh process; the search's own RSS stays flat."""
    space = load_space(write_space(tmp_path, GRID))
    summary = search_mod.run_search(
        space, dataset="cifar10", data_dir=str(shared_data), overrides=TINY, isolate=True,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}", printer=lambda s: None,
    )  # fmt: skip
    assert summary.counts["complete"] == 4
    parent = mlflow.search_runs(search_all_experiments=True,
                                filter_string="tags.cnn_benchmark_role = 'search'",
                                output_format="list")[0]  # fmt: skip
    rss = [m.value for m in mlflow.MlflowClient().get_metric_history(parent.info.run_id,
                                                                     "rss_mb")]  # fmt: skip
    assert len(rss) == 4 and rss[-1] <= rss[1] * 1.05
    assert parent.data.metrics["peak_rss_mb"] >= rss[-1] > 0
    assert parent.data.metrics["peak_trial_rss_mb"] > 100  # a TF trial process, not a stub
    kids = children_of(parent.info.run_id)
    assert len(kids) == 4 and all(k.info.status == "FINISHED" for k in kids)
    assert all("test_accuracy" in k.data.metrics for k in kids)


@pytest.mark.parametrize(
    "body,message",
    [
        ("strategy: grid\nspace: {depth: {values: [2]}}\nfixd: {}\n", "unknown key fixd; allowed"),
        ("strategy: grdi\nspace: {depth: {values: [2]}}\n", "strategy 'grdi' is not allowed"),
        ("space: {depht: {values: [2]}}\n", "space.depht is not a searchable setting"),
        ("space: {depth: {values: []}}\n", "space.depth.values should be a non-empty list"),
        ("space: {depth: {values: [2]}}\nfixed: {epochs: 0}\n", "Received: epochs=0"),
        ("space: {depth: {values: [2]}}\nfixed: {epoch: 3}\n", "unknown key fixed.epoch"),
        (
            "space: {augmentation: {values: [none, sheer]}}\n",
            "unknown augmentation .sheer.; known: none, seed",
        ),
        ("space: {depth: {low: 1, high: 3}}\n", "space.depth has no `values`"),
        ("space: {depth: {values: [2, 9]}}\nfixed: {padding: valid}\n", "cannot fit 32px"),
        ("space: {depth: {values: [2]}}\nseeds: 0\n", "`seeds` should be a positive integer"),
        ("space: !!python/object/apply:os.system [echo hi]\n", "not valid YAML"),
        ("space: {depth: {values: [2]}}\noptuna: {pruner: {type: medain}}\n", "pruner.type"),
        ("space: {depth: {values: [2]}}\noptuna: {max_epochs: 0}\n", "optuna.max_epochs should"),
        (
            "space: {depth: {values: [2]}}\noptuna: {sampler: random, startup_trials: 3}\n",
            "startup_trials is a TPE setting",
        ),
    ],
)
def test_space_validation_names_the_bad_key(tmp_path, body, message):
    with pytest.raises(UserError, match=message):
        load_space(write_space(tmp_path, body))


def test_shipped_spaces_load_and_contain_the_seed_net():
    for name in ("flowers17", "cifar10", "cifar100"):
        space = load_space(REPO / "search_spaces" / f"{name}.yaml")
        names = {space.config(p).run_name for p in space.grid_points()}
        assert {"lab-net-d3-k3-w64-aug=none", "lab-net-d3-k3-w64-aug=lab"} <= names, name
        dims = {d.name for d in space.dimensions}
        assert {"depth", "kernel_size", "dense_units", "augmentation"} <= dims


@pytest.mark.slow
def test_dry_run_lists_every_configuration_without_training_runs(tmp_path, shared_data):
    space = load_space(write_space(tmp_path, GRID))
    lines: list[str] = []
    est = search_mod.dry_run(space, dataset="cifar10", data_dir=str(shared_data),
                             overrides=TINY, printer=lines.append)  # fmt: skip
    table = "\n".join(lines)
    assert "lab-net-d3-k3-w64-aug=none" in table and "122,570" in table
    assert "estimated total" in lines[-1] and est > 0
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_dry_run_counts_the_share_of_epochs_early_stopping_leaves(tmp_path, shared_data,
                                                                  monkeypatch):  # fmt: skip
    """Under early stopping a fresh store's estimate assumes the measured share of epochs;
    finished trials of the same dataset/epochs/patience in the store replace it."""
    from benchmark.search import dryrun

    monkeypatch.setattr(dryrun, "_probe", lambda cfg, data, flops: dryrun.Probe(flops, 1.0, 0.0))
    monkeypatch.setattr(dryrun, "_augmentation_s", lambda policy, data, cfg: 0.0)
    body = GRID.replace("epochs: 1,", "epochs: 40, early_stopping_patience: 10,")
    space = load_space(write_space(tmp_path, body.replace("[2, 3]", "[2]")))

    def estimate() -> tuple[float, str]:
        lines: list[str] = []
        est = dryrun.dry_run(space, dataset="cifar10", data_dir=str(shared_data),
                             overrides=TINY, printer=lines.append)  # fmt: skip
        return est, lines[-1]

    est, line = estimate()  # 2 trials x (overhead + 40 epochs x share x 1 s)
    assert est == pytest.approx(2 * (dryrun.TRIAL_OVERHEAD_S + 40 * dryrun.EARLY_STOP_SHARE))
    assert f"{dryrun.EARLY_STOP_SHARE:.0%} of the epochs assumed" in line

    mlflow.set_experiment("history")
    from benchmark import metrics as M

    with mlflow.start_run(tags={M.TAG_ROLE: "trial"}):
        mlflow.log_params({"dataset": "cifar10", "epochs": 40, "early_stopping_patience": 10})
        mlflow.log_metrics({"stopped_epoch": 20, "overhead_s": 2.0})
    est, line = estimate()
    assert est == pytest.approx(2 * (2.0 + 40 * 0.5))
    assert "50% of the epochs, as trials here ran" in line


@pytest.mark.slow
def test_ablation_trains_the_best_architecture_with_each_policy(tmp_path, shared_data):
    policies = ["none", "shift_flip", "cutmix"]  # cutmix: mixed labels under the winner
    recipe = "head: gap, label_smoothing: 0.1, lr_schedule: cosine, tta: flip, "
    grid = GRID.replace("[none, shift]", "[none]").replace("fixed: {", "fixed: {" + recipe)
    space = load_space(write_space(tmp_path, grid))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search_mod.run_search(space, dataset="cifar10", data_dir=str(shared_data), overrides=TINY,
                          storage=storage, printer=lambda s: None)  # fmt: skip
    best_id, fixed = search_mod.best_of_latest_search("cifar10")
    ablation = search_mod.ablation_space(fixed, 1, policies)
    summary = search_mod.run_search(ablation, dataset="cifar10", data_dir=str(shared_data),
                                    storage=storage, role="ablation",
                                    printer=lambda s: None)  # fmt: skip
    assert summary.counts["complete"] == len(policies)
    parent = mlflow.search_runs(search_all_experiments=True,
                                filter_string="tags.cnn_benchmark_role = 'ablation'",
                                output_format="list")[0]  # fmt: skip
    kids = children_of(parent.info.run_id)
    assert sorted(k.data.params["augmentation"] for k in kids) == sorted(policies)
    best = mlflow.get_run(best_id).data.params
    # every policy trains under the winner's architecture AND recipe, not the defaults
    for key in ("depth", "head", "label_smoothing", "lr_schedule", "tta", "max_train_samples"):
        assert {k.data.params[key] for k in kids} == {best[key]}, key


@pytest.mark.slow
def test_efficiency_gives_optuna_a_fraction_of_the_grids_epochs(tmp_path, shared_data, capsys):
    from benchmark.search.efficiency import compare

    pruned = "optuna: {pruner: {type: threshold, lower: 0.99}}\n"
    fixed = "epochs: 2, max_train_samples: 200"  # 20 images a class
    space = write_space(tmp_path, textwrap.dedent(GRID).replace("epochs: 1", fixed) + pruned)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    r = compare("cifar10", str(space), str(shared_data), storage, budget=0.4, replays=3)
    assert r["grid_trials"] == 4 and r["grid_epochs"] == 8  # 4 points x 2 epochs, all run
    # budget floor(0.4 x 8) = 3 epochs: two trials pruned after epoch 1 leave 1, too few
    # for a third 2-epoch trial, so the study stops there
    assert r["max_epochs"] == 3
    assert r["optuna_trials"] == 2 and r["optuna_epochs"] == 2
    assert r["epoch_ratio"] == pytest.approx(0.25)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[")]
    assert "epochs 1/3" in lines[-2] and "epochs 2/3" in lines[-1]  # optuna's progress
    # replaying Optuna on the grid's recorded curves predicts the run: same epochs, no hit
    assert r["replay_median_epochs"] == r["optuna_epochs"] and r["replay_hits"] == 0
    assert math.isnan(r["optuna_best"]) and math.isnan(r["gap_pp"])  # none completed


def test_an_epoch_budget_is_an_optuna_setting(tmp_path):
    space = load_space(write_space(tmp_path, GRID))
    with pytest.raises(UserError, match="max_epochs .* is for strategy optuna"):
        search_mod.run_search(space, dataset="cifar10", max_epochs=10, printer=lambda s: None)


@pytest.mark.slow
def test_optuna_does_not_retrain_a_configuration_it_proposes_again(tmp_path, shared_data):
    space = load_space(write_space(tmp_path, """
        strategy: optuna
        fixed: {epochs: 1, model: seed, steps_per_execution: 4}
        space:
          augmentation: {values: [none]}
        optuna: {n_trials: 3, sampler: random}
    """))  # fmt: skip
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    lines: list[str] = []
    summary = search_mod.run_search(space, dataset="cifar10", data_dir=str(shared_data),
                                    overrides=TINY, storage=storage,
                                    printer=lines.append)  # fmt: skip
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert lines[1].startswith("[2/3] lab-net-d3-k3-w64-aug=none  val_accuracy")
    assert "(as trial 0: not trained again)" in lines[1]
    assert [t.user_attrs.get("duplicate_of") for t in study.trials] == [None, 0, 0]
    assert len({t.value for t in study.trials}) == 1
    trial_runs = mlflow.search_runs(search_all_experiments=True,
                                    filter_string="tags.cnn_benchmark_role = 'trial'",
                                    output_format="list")  # fmt: skip
    assert len(trial_runs) == 1  # trained once
