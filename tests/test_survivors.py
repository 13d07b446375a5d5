"""Survivor selection: one registered rule orders a rung, the scheduler promotes and confirms
in that order (docs/extending.md copies the first test)."""

from __future__ import annotations

import hashlib
import json
import textwrap

import mlflow
import numpy as np
import optuna
import pytest

from benchmark.errors import UserError
from benchmark.search import halving as H
from benchmark.search import rungs
from benchmark.search.space import load_space
from benchmark.search.survivors import SURVIVORS, diverse, top


def rec(x, model, value, rung=0, n=0) -> H.Record:
    return H.Record(params={"x": x, "model": model}, rung=rung, stage=H.EXPLORE, seed=0,
                    state="complete", value=value, number=n)  # fmt: skip


def test_a_new_survivor_rule_is_one_registered_function(tmp_path):
    @SURVIVORS.register
    def worst_first(records):  # a rule: the rung's configurations, the first to go on first
        return list(reversed(top(records)))

    try:
        space = tmp_path / "s.yaml"
        space.write_text(textwrap.dedent("""\
            strategy: halving
            fixed: {epochs: 9}
            space: {depth: {values: [1, 2, 3, 4, 5, 6]}}
            halving: {budget_minutes: 5, survivors: worst_first}
        """))
        settings = load_space(space).halving
        assert settings.survivors == "worst_first"
        plan = H.HalvingPlan((3, 9), (6, 2), 3, 2, 3, 1e9, 1.0, 1.0, settings.survivors)
        recs = [rec(i, "cnn", i / 10, n=i) for i in range(6)]
        assert H.next_job(plan, recs, plan.quotas) == H.Job(rung=1, params=recs[0].params)
        assert H.HalvingPlan.from_json(plan.to_json()).survivors == "worst_first"  # resumes
    finally:
        SURVIVORS.unregister("worst_first")


def test_diverse_gives_each_model_family_a_place_before_any_gets_a_second():
    """Residual nets under a long warm-up lose a short rung to plain CNNs: `top` would send
    on only CNNs, `diverse` sends on the best of each family first."""
    recs = [rec(1, "cnn", 0.60, n=1), rec(2, "cnn", 0.58, n=2), rec(3, "cnn", 0.57, n=3),
            rec(4, "resnet", 0.50, n=4), rec(5, "resnet", 0.40, n=5)]  # fmt: skip
    assert [r.params["x"] for r in top(recs)][:2] == [1, 2]
    assert [r.params["x"] for r in diverse(recs)] == [1, 4, 2, 5, 3]
    plan = H.HalvingPlan((3, 9), (5, 2), 3, 2, 3, 1e9, 1.0, 1.0, "diverse")
    first = H.next_job(plan, recs, plan.quotas)
    assert first == H.Job(rung=1, params={"x": 1, "model": "cnn"})
    going = [*recs, rec(1, "cnn", 0.7, rung=1, n=6)]
    assert H.next_job(plan, going, plan.quotas).params == {"x": 4, "model": "resnet"}


def test_a_rule_reads_each_configuration_once_at_its_best():
    twice = [rec(1, "cnn", 0.3, n=1), rec(1, "cnn", 0.6, n=2), rec(2, "cnn", 0.5, n=3)]
    assert [(r.params["x"], r.value) for r in top(twice)] == [(1, 0.6), (2, 0.5)]


def test_an_unknown_survivor_rule_is_one_line_naming_the_known(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text("strategy: halving\nspace: {depth: {values: [1, 2]}}\n"
                     "halving: {survivors: best}\n")  # fmt: skip
    with pytest.raises(UserError) as err:
        load_space(space)
    assert "halving.survivors should be one of top, diverse" in str(err.value)
    assert "\n" not in str(err.value)


def test_halving_defaults_come_from_the_settings_and_rename_no_study(tmp_path):
    """The defaults are declared once (space.HalvingSettings); a space that gives none keeps
    the study name (digest) it had when the defaults lived in the scheduler."""
    space = tmp_path / "s.yaml"
    space.write_text("strategy: halving\nspace: {depth: {values: [1, 2]}}\n"
                     "halving: {budget_minutes: 5}\n")  # fmt: skip
    loaded = load_space(space)
    assert (loaded.halving.eta, loaded.halving.confirm_top, loaded.halving.survivors) == (
        3, 2, "top")  # fmt: skip
    before = json.dumps(["halving", loaded.fixed, [d.__dict__ for d in loaded.dimensions],
                         loaded.seeds, None, None, None], sort_keys=True, default=str)  # fmt: skip
    assert loaded.digest == hashlib.sha256(before.encode()).hexdigest()[:8]
    plan = H.plan_halving(600, epochs=9, epoch_s=1.0, overhead_s=1.0)
    assert (plan.eta, plan.confirm_top, plan.seeds) == (3, 2, 3)


def test_a_cost_that_cannot_be_read_is_said_in_one_line(monkeypatch):
    """The tracking store away: the probe's figures, and one line that says so."""

    def away(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("database is locked")

    monkeypatch.setattr(mlflow, "search_runs", away)
    study = optuna.create_study(direction="maximize", study_name="costs")
    plan = H.HalvingPlan((3, 9), (6, 2), 3, 2, 3, 1e9, 2.0, 7.0)
    notes: list[str] = []
    costs = rungs.measured_cost(study, plan, [], notes)
    assert (costs.epoch_s, costs.overhead_s) == (2.0, 7.0)
    assert len(notes) == 1 and "database is locked" in notes[0] and "probe" in notes[0]


def test_a_trial_timed_beside_other_load_does_not_price_the_rest_of_the_search():
    """Six finished runs in a real store: five clean at 1 s an epoch (100 images at 115
    images/s, validation included) and one beside other load at 10. The contended one
    neither moves the median nor prices its configuration (a neighbour's load is not its
    cost)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from benchmark import metrics as M

    study = optuna.create_study(direction="maximize", study_name="priced")
    client, recs = MlflowClient(), []
    for n in range(6):
        contended = n == 5
        run = client.create_run("0", tags={"study_name": "priced", "optuna_trial": str(n),
                                           M.TAG_TIMING: "contended" if contended else "clean"})
        images_per_s = 11.5 if contended else 115.0
        metrics = {M.TRIAL_WALL_TIME: 10.0 * (10 if contended else 1) + 5.0,
                   M.IMAGES_PER_S: images_per_s, M.STOPPED_EPOCH: 10.0}  # fmt: skip
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                         params=[Param("train_size", "100")])  # fmt: skip
        client.set_terminated(run.info.run_id)
        recs.append(rec(n, "cnn", 0.5, n=n))
    plan = H.HalvingPlan((3, 9), (6, 2), 3, 2, 3, 1e9, 2.0, 7.0)
    costs = rungs.measured_cost(study, plan, recs)
    assert costs.epoch_s == pytest.approx(1.0)  # the clean runs' median, not the probe's 2.0
    assert costs.overhead_s == pytest.approx(5.0)
    assert recs[5].key not in costs.own and costs(10, recs[5].key) == pytest.approx(15.0)
    assert costs(10, recs[0].key) == pytest.approx(15.0)


def test_a_candidate_that_learned_nothing_does_not_go_on():
    """17 Flowers, time short, rungs kept at 2: a diverged CNN (val accuracy 1/17, what
    always guessing one class scores) is passed over, so rung 1 trains the resnet alone;
    a rung where nothing learned still goes on (the search ends with a winner)."""
    plan = H.HalvingPlan((6, 25), (2, 2), 4, 2, 3, 1e9, 2.0, 7.0, chance=1 / 17)
    as_logged = float(np.float32(20 / 340))  # Keras' accuracy: float32, above 1/17 in float64
    rung0 = [rec(0, "resnet", 0.0676, n=0), rec(1, "cnn", as_logged, n=1)]
    assert [r.params["model"] for r in plan.order(rung0)] == ["resnet"]
    job = H.next_job(plan, rung0, list(plan.quotas), 1e9, plan.cost)
    assert job.rung == 1 and job.params["model"] == "resnet"
    started = [*rung0, H.Record(params=job.params, rung=1, stage=H.EXPLORE, seed=0,
                                state="complete", value=0.69, number=2)]  # fmt: skip
    assert H.next_job(plan, started, list(plan.quotas), 1e9, plan.cost).stage == H.CONFIRM
    dead = [rec(0, "resnet", 1 / 17, n=0), rec(1, "cnn", 0.05, n=1)]
    assert len(plan.order(dead)) == 2
    assert H.HalvingPlan.from_json(plan.to_json()).chance == pytest.approx(1 / 17)


def test_chance_is_what_guessing_the_commonest_validation_class_scores(shared_data):
    from benchmark.search.dryrun import chance_accuracy
    from benchmark.search.space import SPACES_DIR

    space = load_space(SPACES_DIR / "flowers17-auto.yaml")
    assert chance_accuracy(space, {"dataset": "flowers17"}, str(shared_data)) == 1 / 17
