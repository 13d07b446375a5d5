"""Strategy halving: the plan for a budget, the next job from what the study holds, a short
rung as a complete scaled training, and a tiny real search (rungs, confirmation, resume)."""

from __future__ import annotations

import json
import os
import re
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

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.search import halving as H
from benchmark.search import timeleft as TL
from benchmark.search.space import load_space
from benchmark.search.storage import make_storage

REPO = Path(__file__).resolve().parents[1]


def plan(budget_min: float, **kw) -> H.HalvingPlan:
    opts = dict(epochs=81, epoch_s=1.0, overhead_s=9.0, eta=3, min_epochs=9, seeds=3)
    return H.plan_halving(budget_min * 60, **(opts | kw))


def test_rungs_are_a_ladder_of_eta_down_to_min_epochs():
    assert H.rung_epochs(81, 3, 9) == (9, 27, 81)
    assert H.rung_epochs(100, 3, 11) == (11, 33, 100)
    assert H.rung_epochs(40, 3, 40) == (40,)


def test_plan_fits_its_budget_and_keeps_a_third_each_rung():
    p = plan(60)
    assert p.epochs == (9, 27, 81)
    assert p.quotas[0] >= 9 and p.total_s() <= 3600
    assert p.quotas[1] == -(-p.quotas[0] // 3) and p.quotas[2] == max(-(-p.quotas[0] // 9), 2)
    bigger = plan(120)  # twice the time: more candidates, never fewer
    assert bigger.quotas[0] > p.quotas[0] and bigger.total_s() <= 7200
    # the confirmation is planned in: 2 finalists x 2 more seeds at full length
    explore = sum(q * p.cost(e) for e, q in zip(p.epochs, p.quotas, strict=True))
    assert p.total_s() == pytest.approx(explore + 4 * p.cost(81))


def test_a_tiny_budget_drops_short_rungs_and_says_it_overruns():
    p = plan(8)  # 2 x 3 full-length trainings alone take 9 min
    assert p.epochs == (81,) and p.quotas == (2,) and p.total_s() > 8 * 60
    assert "planned" in p.lines()[-2] and p.lines()[-1].startswith("no halving: ")


def test_a_grid_space_caps_candidates_at_its_points():
    assert plan(600, max_candidates=5).quotas[0] == 5


def rec(params, rung, state="complete", value=None, stage=H.EXPLORE, seed=0, n=0) -> H.Record:
    return H.Record(params={"x": params}, rung=rung, stage=stage, seed=seed, state=state,
                    value=value, number=n)  # fmt: skip


def test_next_job_samples_promotes_the_best_third_then_confirms_on_seeds():
    p = H.HalvingPlan((3, 9), (6, 2), 3, 2, 3, 1e9, 1.0, 1.0)
    recs = [rec(i, 0, value=i / 10, n=i) for i in range(5)]
    assert H.next_job(p, recs, p.quotas) == H.Job(rung=0)  # rung 0 not full: sample
    recs.append(rec(5, 0, state="running", n=5))
    assert H.next_job(p, recs, p.quotas) == H.WAIT  # survivors wait for the whole rung
    recs[-1] = rec(5, 0, value=0.05, n=5)
    job = H.next_job(p, recs, p.quotas)
    assert job == H.Job(rung=1, params={"x": 4})  # the best of rung 0 first
    recs += [rec(4, 1, value=0.7, n=6), rec(3, 1, value=0.8, n=7)]
    job = H.next_job(p, recs, p.quotas)  # rung 1 is the last: its top 2 on seeds 1, 2
    assert job == H.Job(rung=1, stage=H.CONFIRM, seed=1, params={"x": 3})
    recs += [rec(3, 1, value=0.6, stage=H.CONFIRM, seed=1, n=8),
             rec(3, 1, value=0.6, stage=H.CONFIRM, seed=2, n=9),
             rec(4, 1, value=0.7, stage=H.CONFIRM, seed=1, n=10),
             rec(4, 1, value=0.7, stage=H.CONFIRM, seed=2, n=11)]  # fmt: skip
    assert H.next_job(p, recs, p.quotas) == H.Done("rungs and confirmation done")
    found = H.winner(p, recs)
    # the best mean, not the best seed
    assert found.first.params == {"x": 4} and found.values == [0.7, 0.7, 0.7]


def test_a_queued_trial_with_nothing_running_is_taken_not_waited_for():
    p = H.HalvingPlan((3, 9), (4, 2), 3, 2, 3, 1e9, 1.0, 1.0)
    recs = [rec(i, 0, value=i / 10, n=i) for i in range(4)]
    recs += [rec(3, 1, value=0.7, n=4), rec(2, 1, state="waiting", n=6)]
    assert H.next_job(p, recs, p.quotas) == H.Job(rung=0)  # optimize takes the queued one
    recs.append(rec(1, 0, state="running", n=7))  # another worker's: it may take it after
    assert H.next_job(p, recs, p.quotas) == H.WAIT


def test_a_trial_interrupted_in_rung_1_is_trained_again_at_rung_1_on_resume():
    """Ctrl-C during rung 1 of cifar10-auto, then the same command: the interrupted trial
    was queued again, and the resumed search waited for it, with nothing running, for 33
    minutes of its budget. A real Optuna study, as the driver uses it."""
    from benchmark.search import rungs
    from benchmark.search.study import requeue_interrupted

    study = optuna.create_study(direction="maximize")
    for depth, rung, value in ((2, 0, 0.5), (3, 0, 0.6), (3, 1, 0.7), (2, 1, None)):
        study.enqueue_trial({"depth": depth})
        trial = study.ask()
        trial.suggest_categorical("depth", [2, 3])
        for key, v in H.Job(rung=rung).attrs().items():
            trial.set_user_attr(key, v)
        study.tell(trial, value, state=TrialState.COMPLETE if value else TrialState.FAIL)
    requeue_interrupted(study, study._storage)  # as a resumed search starts
    p = H.HalvingPlan((3, 9), (2, 2), 3, 2, 3, 1e9, 1.0, 1.0)
    job = H.next_job(p, rungs.records(study), p.quotas)
    assert job != H.WAIT
    rungs.prepare(study, job)
    trial = study.ask()
    assert trial.params == {"depth": 2} and rungs.job_of(trial, job) == H.Job(rung=1)


def test_short_time_shrinks_rung_zero_first_and_never_the_confirmation():
    p = H.HalvingPlan((3, 9), (9, 3), 3, 2, 3, 1e9, 1.0, 1.0)
    recs = [rec(i, 0, value=0.1, n=i) for i in range(4)]
    cost = p.cost
    roomy = TL.fit(p, recs, 1e9, cost)
    assert roomy.quotas == [9, 3] and not roomy.notes
    # the progress ETA: 5 more 3-epoch candidates, 3 of 9 epochs, 4 confirmation trainings
    assert roomy.need_s == 5 * p.cost(3) + 3 * p.cost(9) + 4 * p.cost(9)
    # 70 s: a smaller ladder of the same shape fits (6 candidates, the best 2 go on)
    short = TL.fit(p, recs, 70, cost)
    assert short.quotas == [6, 2] and short.notes and short.need_s <= 70
    broke = TL.fit(p, recs, 0, cost)
    assert broke.quotas == [4, 2]  # the last rung down to the finalists, confirmation kept
    assert H.next_job(p, recs, broke.quotas).rung == 1


def test_a_candidate_that_learned_nothing_is_replaced_in_rung_0_while_time_allows():
    """flowers17-auto: of 8 rung-0 candidates, a diverged CNN and a MobileNetV3Small scored
    1/17 on validation; each place is given to a new candidate while the time left allows it
    and rung 1 is not full, so 2 survivors come from 8 that learned, not from 6."""
    p = H.HalvingPlan((25, 100), (8, 2), 4, 2, 3, 1e9, 1.0, 0.0, chance=1 / 17)
    recs = [rec(i, 0, value=1 / 17 if i in (1, 2) else 0.5 + i / 100, n=i) for i in range(8)]
    roomy = TL.fit(p, recs, 1e9, p.cost)
    assert roomy.quotas == [10, 2] and roomy.notes == [
        "2 candidate(s) learned nothing (validation at chance): rung 0 grows to 10 to replace them"]
    assert H.next_job(p, recs, roomy.quotas) == H.Job(rung=0)  # a new candidate, not rung 1
    exact = 2 * 100 + 4 * 100  # rung 1 and confirmation: room for one 25-epoch candidate
    assert TL.fit(p, recs, exact + 25, p.cost).quotas == [9, 2]
    assert TL.fit(p, recs, exact, p.cost).quotas == [8, 2] and not TL.fit(p, recs, exact,
                                                                          p.cost).notes
    full = recs + [rec(i, 1, value=0.7, n=8 + i) for i in (0, 3)]  # rung 1 full: too late
    assert TL.fit(p, full, 1e9, p.cost).quotas[0] == 8
    dying = recs + [rec(8 + i, 0, value=0.0, n=8 + i) for i in range(8)]  # never past 2x
    assert TL.fit(p, dying, 1e9, p.cost).quotas[0] == 16


def test_a_survivor_whose_own_trainings_outrun_the_time_left_is_passed_over():
    """On the CIFAR-10 subset TPE's best rung-1 candidate (k5, two convolutions a block)
    took about 76 s an epoch where the median candidate took about 20 s: promoted with 104
    minutes left, its full-length run and two confirmations needed about 150. The next in
    rank goes on instead, and the one after it when that one has started."""
    p = H.HalvingPlan((3, 9), (6, 2), 3, 2, 3, 1e9, 1.0, 1.0)
    recs = [rec(i, 0, value=i / 10, n=i) for i in range(6)]
    costs = H.Costs(1.0, 1.0, own={recs[5].key: 10.0})
    # x=5 from rung 1 on: 9 epochs and 2 confirmations of 9, at 10 s an epoch: 273 s
    assert H.next_job(p, recs, p.quotas, 273, costs) == H.Job(rung=1, params={"x": 5})
    assert H.next_job(p, recs, p.quotas, 272, costs) == H.Job(rung=1, params={"x": 4})
    recs.append(rec(4, 1, value=0.5, n=6))
    assert H.next_job(p, recs, p.quotas, 272, costs) == H.Job(rung=1, params={"x": 3})
    recs.append(rec(3, 1, value=0.6, n=7))  # the finalists: what rung 1 trained
    assert H.next_job(p, recs, p.quotas, 272, costs).params == {"x": 3}


def test_when_no_survivor_is_affordable_the_rung_below_s_best_is_confirmed():
    """Nothing goes on to a rung nobody can afford: the leader of the rung below is
    trained at full length on every seed (seed 0 too, its run there was shorter)."""
    p = H.HalvingPlan((3, 9), (4, 2), 3, 1, 3, 1e9, 1.0, 1.0)
    recs = [rec(i, 0, value=i / 10, n=i) for i in range(4)]
    dear = H.Costs(1.0, 1.0, own={r.key: 10.0 for r in recs})
    job = H.next_job(p, recs, p.quotas, 100, dear)  # each needs 3 x 91 s from rung 1 on
    assert job == H.Job(rung=1, stage=H.CONFIRM, seed=0, params={"x": 3})


def test_the_time_left_costs_known_survivors_and_finalists_as_themselves():
    p = H.HalvingPlan((3, 9), (6, 2), 3, 2, 3, 1e9, 1.0, 1.0)
    recs = [rec(i, 0, value=i / 10, n=i) for i in range(6)]
    median = TL.fit(p, recs, 60, p.cost).need_s  # (60 s: no time to spare for growing)
    assert median == 2 * p.cost(9) + 4 * p.cost(9)  # rung 1, then 2 x 2 confirmations
    costs = H.Costs(1.0, 1.0, own={recs[5].key: 10.0})
    # x=5 and x=4 lead rung 0: both go on, and are the finalists as ranked now
    assert TL.fit(p, recs, 303, costs).need_s == (91 + 10) + (2 * 91 + 2 * 10)


def test_measured_costs_read_each_configuration_s_own_epoch_time_from_its_runs():
    """The scheduler's costs come from the trial runs in MLflow (tag optuna_trial): a slow
    configuration is costed at its own steady epoch, the others at the median."""
    from benchmark.search import rungs

    study = optuna.create_study(direction="maximize", study_name="costs")
    for depth, images_per_s in ((2, 100.0), (3, 100.0), (4, 100.0), (5, 100.0), (6, 20.0)):
        study.enqueue_trial({"depth": depth})
        trial = study.ask()
        trial.suggest_int("depth", 2, 6)
        for key, v in H.Job(rung=0).attrs().items():
            trial.set_user_attr(key, v)
        study.tell(trial, 0.5)
        with mlflow.start_run(tags={"study_name": "costs", "optuna_trial": str(trial.number)}):
            mlflow.log_param("train_size", 1000)
            mlflow.log_metrics(
                {
                    M.IMAGES_PER_S: images_per_s,
                    M.STOPPED_EPOCH: 4,
                    M.TRIAL_WALL_TIME: 4 * 1.15 * 1000 / images_per_s + 3.0,
                }
            )
    p = H.HalvingPlan((4, 12), (5, 2), 3, 2, 3, 1e9, 99.0, 99.0)
    costs = rungs.measured_cost(study, p)
    slow = next(r for r in rungs.records(study) if r.params == {"depth": 6}).key
    assert costs(10) == pytest.approx(3.0 + 10 * 11.5)  # 5 finished: the median, not the probe
    assert costs(10, slow) == pytest.approx(3.0 + 10 * 57.5)


def test_time_to_spare_grows_the_last_rung_once_the_rung_before_has_finished():
    p = H.HalvingPlan((3, 9), (9, 3), 3, 2, 3, 1e9, 1.0, 1.0)
    rung0 = [rec(i, 0, value=i / 10, n=i) for i in range(9)]
    # the probe was pessimistic: 300 s left where the plan needs 3 x 10 + 4 x 10 = 70 s;
    # the last rung grows to half of rung 0's 9 candidates, no more
    grown = TL.fit(p, rung0, 300, p.cost)
    assert grown.quotas == [9, 4] and grown.notes == [
        "time to spare: the last rung grows to 4 candidates (planned 3)"]  # fmt: skip
    # the progress line's [k/N] counts the grown rung (it printed [30/29] on flowers17-auto)
    from benchmark.search.rungs import planned_trainings

    assert (planned_trainings(p), planned_trainings(p, grown.quotas)) == (9 + 3 + 4, 9 + 4 + 4)
    # one 10-s training more, and one of slack: 70 + 10 + 10 <= left
    assert TL.fit(p, rung0, 90, p.cost).quotas == [9, 4]
    assert TL.fit(p, rung0, 89, p.cost).quotas == [9, 3]
    assert TL.fit(p, rung0[:8], 300, p.cost).quotas == [9, 3]  # rung 0 not finished yet
    confirming = [*rung0, rec(8, 1, value=0.9, n=9), rec(8, 1, stage=H.CONFIRM, seed=1, n=10)]
    assert TL.fit(p, confirming, 300, p.cost).quotas == [9, 3]  # the finalists stay


def test_past_its_budget_the_eta_is_the_confirmation_left_never_negative():
    """The cifar10-auto search, 155 of 150 minutes spent with two confirmations left,
    printed `ETA -1h55m`."""
    from benchmark.search.state import Budget

    p = H.HalvingPlan((13, 40), (3, 2), 3, 2, 3, 150 * 60.0, 20.0, 5.0)
    budget = Budget(plan=p, spent_before=155 * 60.0)
    assert budget.eta() == 0.0  # nothing measured yet
    budget.need_s = 3 * 3000.0
    assert budget.eta() == 9000.0


def test_the_progress_eta_is_the_work_left_not_the_median_trial_times_the_trials_left():
    import optuna

    from benchmark.search.summary import progress_line

    trial = optuna.trial.create_trial(value=0.5, user_attrs={"run_name": "d3"})
    counts = {"finished": 1}
    assert progress_line(trial, counts, 1001, 1648.5, [1648.5]).endswith("ETA 457h55m")
    # a 4500-s timeout with 2700 s left: one more trial may still start, nothing after it
    assert progress_line(trial, counts, 1001, 1648.5, [1648.5],
                         cap=2700 + 1648.5).endswith("ETA 1h12m")  # fmt: skip
    # halving: 30 s rung-0 trials so far, 40 min of full-length trainings left
    line = progress_line(trial, counts, 67, 30.0, [30.0], eta=2400.0)
    assert line.endswith("ETA 40m00s")
    # rungs that ran before the plan shrank: the count never reads [49/48]
    line = progress_line(trial, {"finished": 49}, 48, 500.0, [500.0], eta=0.0)
    assert line.startswith("[49/49] d3 ")


def test_a_short_rung_is_a_whole_training_scaled_to_its_epochs():
    cfg = TrialConfig(epochs=100, warmup_epochs=20, early_stopping_patience=30,
                      lr_schedule="cosine")  # fmt: skip
    short = H.scaled_config(cfg, 10)
    assert (short.epochs, short.warmup_epochs, short.early_stopping_patience) == (10, 2, 3)
    assert H.scaled_config(cfg, 100) == cfg


def test_a_halving_space_checks_its_keys(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("strategy: halving\nfixed: {epochs: 9}\nspace: {depth: {values: [2, 3]}}\n"
                    "halving: {eta: 1}\n")  # fmt: skip
    with pytest.raises(UserError, match=r"halving.eta should be an integer >= 2"):
        load_space(path)
    path.write_text("strategy: halving\nfixed: {epochs: 9}\nspace: {depth: {values: [2, 3]}}\n"
                    "halving: {budget: 3}\n")  # fmt: skip
    with pytest.raises(UserError, match=r"unknown key halving.budget; allowed: budget_minutes"):
        load_space(path)
    path.write_text("strategy: grid\nfixed: {epochs: 9}\nspace: {depth: {values: [2, 3]}}\n")
    space = load_space(path, strategy="halving")  # a grid space under halving enumerates
    assert space.sampler == "grid" and space.seeds == 3


TINY_SPACE = """
    strategy: grid
    fixed: {epochs: 4, max_train_samples: 170, padding: same, filters_base: 8, filters_max: 16,
            dense_units: 0, steps_per_execution: 4, image_size: 32, lr_schedule: cosine,
            optimizer: sgd, learning_rate: 0.05, kernel_size: 3}
    space:  # 4 candidates: 4 x 2 epochs, the best 2 x 4 epochs, then both on seed 1
      depth: {values: [2, 3]}
      augmentation: {values: [none, shift_flip]}
    halving: {eta: 2, min_epochs: 2, confirm_top: 2, warm_start: false}
    seeds: 2
"""


def _search(tmp_path: Path, shared_data: Path, minutes: float = 3.0, **kw):
    from benchmark.search import run_search

    path = tmp_path / "tiny-halving.yaml"
    path.write_text(textwrap.dedent(TINY_SPACE))
    lines: list[str] = []
    space = load_space(path, strategy="halving")
    summary = run_search(space, dataset="flowers17", data_dir=str(shared_data),
                         storage=f"journal://{tmp_path / 'optuna.journal'}",
                         budget_minutes=minutes, printer=lines.append, **kw)  # fmt: skip
    return summary, lines


@pytest.mark.slow
def test_a_tiny_halving_search_runs_rungs_then_confirms_under_one_parent(tmp_path, shared_data):
    started = time.monotonic()
    summary, lines = _search(tmp_path, shared_data)
    wall = time.monotonic() - started
    assert any(line.startswith("rung 1:") for line in lines), lines  # the plan, printed first
    counted = [m for line in lines if (m := re.match(r"\[(\d+)/(\d+)\] ", line))]
    assert counted and all(int(m[1]) <= int(m[2]) for m in counted), lines  # grown rungs too
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    parents = [r for r in runs if r.data.tags.get(M.TAG_ROLE) == "search"]
    trials = [r for r in runs if r.data.tags.get(M.TAG_ROLE) == "trial"]
    assert len(parents) == 1 and not [r for r in runs if r.info.status == "RUNNING"]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    rungs = {r.data.tags[M.TAG_RUNG] for r in trials if r.data.tags[M.TAG_STAGE] == "explore"}
    assert {"0", "1"} <= rungs
    confirm = [r for r in trials if r.data.tags[M.TAG_STAGE] == "confirm"]
    assert len(confirm) == 2 and {r.data.params["seed"] for r in confirm} == {"1"}
    assert {r.data.params["epochs"] for r in confirm} == {"4"}  # full length
    short = [r for r in trials if r.data.tags[M.TAG_RUNG] == "0"]
    assert {r.data.params["epochs"] for r in short} == {"2"}
    lr = mlflow.MlflowClient().get_metric_history(short[0].info.run_id, M.LEARNING_RATE)
    assert sorted(lr, key=lambda m: m.step)[-1].value == pytest.approx(0.0, abs=1e-6)
    assert len(summary.best_seeds) == 2 and summary.best_value == pytest.approx(
        sum(summary.best_seeds) / 2
    )
    store = make_storage(f"journal://{tmp_path / 'optuna.journal'}")
    study = optuna.load_study(study_name=summary.study_name, storage=store)
    plan = json.loads(study.user_attrs["halving_plan"])
    one_trial = max(plan["overhead_s"] + plan["epochs"][-1] * plan["epoch_s"], 30)
    assert wall <= plan["budget_s"] + 60 + one_trial  # the budget plus a trial (and the probe)


@pytest.mark.slow
def test_kill_mid_rung_then_rerun_trains_no_configuration_twice_at_a_rung(tmp_path, shared_data):
    path = tmp_path / "tiny-halving.yaml"
    path.write_text(textwrap.dedent(TINY_SPACE))
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "benchmark", "search", "--dataset", "flowers17",
           "--data-dir", str(shared_data), "--space", str(path), "--strategy", "halving",
           "--budget-minutes", "3",
           "--storage", f"journal://{tmp_path / 'optuna.journal'}"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    seen = []
    for line in proc.stdout:  # kill -9 the whole group once the second trial has finished
        seen.append(line)
        if sum(line.startswith("[") for line in seen) >= 2:
            break
    running = "attributes.status = 'RUNNING' and tags.cnn_benchmark_role = 'trial'"
    deadline = time.monotonic() + 120  # the next trial's run begun: killed, it is an orphan
    while time.monotonic() < deadline and not mlflow.search_runs(
            search_all_experiments=True, filter_string=running, output_format="list"):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    killed_at = time.time() * 1000
    proc.wait(timeout=30)
    assert sum(line.startswith("[") for line in seen) >= 2, "".join(seen[-20:])
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resumed:" in rerun.stdout
    store = make_storage(f"journal://{tmp_path / 'optuna.journal'}")
    study = optuna.load_study(study_name=optuna.get_all_study_names(store)[0], storage=store)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE
            and "duplicate_of" not in t.user_attrs]  # fmt: skip
    attrs = ("halving_rung", "halving_stage", "halving_seed")
    keys = [(json.dumps(t.params, sort_keys=True), *(t.user_attrs[a] for a in attrs))
            for t in done]  # fmt: skip
    assert len(keys) == len(set(keys))
    assert any(k[2] == "confirm" for k in keys)
    # the report's figures: the budget the study spent on its parent, though the killed
    # command logged no wall time; the killed trial ended when it last logged, not when the
    # rerun found it
    parent = mlflow.get_run(study.user_attrs["mlflow_parent_run"])
    assert parent.data.metrics[M.BUDGET_SPENT] == pytest.approx(study.user_attrs["halving_spent_s"])
    orphans = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                 filter_string=f"tags.failure_reason = '{M.ORPHAN_REASON}'")
    assert orphans and all(r.info.end_time <= killed_at for r in orphans)


def test_a_budget_that_fits_no_ladder_says_so_and_what_one_would_need():
    """flowers17-auto on this AVX2 CPU (12.97 s an epoch): 150 minutes fit only 2 candidates
    trained straight at 100 epochs, which is no halving; the plan says so and names the
    minutes of the cheapest ladder. 187.5 minutes fit a 15-candidate ladder, said plainly."""
    args = dict(epochs=100, epoch_s=12.97, overhead_s=35.8, eta=4, min_epochs=6, confirm_top=2)
    flat = H.plan_halving(150 * 60, **args)
    assert flat.epochs == (100,) and flat.quotas == (2,)
    assert flat.ladder_s > flat.budget_s
    assert flat.lines()[-1].startswith("no halving: ") and "151.3 min" in flat.lines()[-1]
    assert H.HalvingPlan.from_json(flat.to_json()).ladder_s == flat.ladder_s
    ladder = H.plan_halving(187.5 * 60, **args)
    assert ladder.epochs == (6, 25, 100) and ladder.quotas[0] == 15 and not ladder.ladder_s
    assert not any(line.startswith("no halving") for line in ladder.lines())


def test_a_complete_study_run_again_puts_its_budget_account_on_its_parent():
    """The report reads the budget spent from the parent run; a study whose last command
    died (the metric not logged since) gets it when a command finds the study complete."""
    from benchmark.search import rungs
    from benchmark.search.parent import PARENT_ATTR

    parent = mlflow.MlflowClient().create_run("0").info.run_id
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(PARENT_ATTR, parent)
    study.set_user_attr("halving_spent_s", 11592.0)
    rungs.log_spent(study)
    assert mlflow.get_run(parent).data.metrics[M.BUDGET_SPENT] == 11592.0
