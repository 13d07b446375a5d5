"""Successive halving on an Optuna study: the plan and the time spent live in the study's user
attributes, each trial's rung, stage and seed in its own, so a resumed or second worker
decides the next training from the storage alone (see halving.py for the method).

Survivors and confirmations are `study.enqueue_trial(params, user_attrs=...)`, new
candidates the sampler's own trials: Optuna's storage records every rung, and its sampler
proposes every candidate.
May import: benchmark.search.halving, .names, .state, .timeleft, .study, .space, .dryrun (the
probe).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import mlflow
import optuna
from mlflow.exceptions import MlflowException
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark.errors import UserError
from benchmark.runfilter import literal
from benchmark.search import names
from benchmark.search.dryrun import chance_accuracy, probe_space
from benchmark.search.halving import (
    CONFIRM,
    Costs,
    Done,
    HalvingPlan,
    Job,
    Next,
    Record,
    next_job,
    plan_halving,
    winner,
)
from benchmark.search.space import SearchSpace
from benchmark.search.state import Budget, Search
from benchmark.search.study import recover_dead_trials
from benchmark.search.timeleft import fit


def stored_plan(study: optuna.Study) -> HalvingPlan | None:
    text = study.user_attrs.get(names.PLAN)
    return HalvingPlan.from_json(text) if text else None


def new_plan(space: SearchSpace, epochs: int, seeds: int, minutes: float,
             probe: Callable[[], tuple[float, float]]) -> HalvingPlan:  # fmt: skip
    """Time the probe, then fit rungs and confirmation to `minutes` (grid spaces: at most
    their points as candidates)."""
    epoch_s, overhead_s = probe()
    opts = space.halving
    return plan_halving(
        minutes * 60, epochs=epochs, epoch_s=epoch_s, overhead_s=overhead_s, eta=opts.eta,
        min_epochs=opts.min_epochs, confirm_top=opts.confirm_top, seeds=seeds,
        max_candidates=len(space.grid_points()) if space.sampler == "grid" else None,
        survivors=opts.survivors,
    )  # fmt: skip


def open_budget(study: optuna.Study, plan: HalvingPlan) -> Budget:
    """Store the plan once (a resumed study keeps its own; a new budget_minutes replaces
    only the total) and start this command's clock."""
    if stored_plan(study) is None:
        study.set_user_attr(names.PLAN, plan.to_json())
    return Budget(plan=plan, spent_before=float(study.user_attrs.get(names.SPENT, 0.0)))


def records(study: optuna.Study) -> list[Record]:
    """Every trial with a rung, as the scheduler reads them; interrupted trials are left
    out (they are enqueued again with their rung, and count as waiting)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        state = _STATES.get(t.state)
        if t.state == TrialState.FAIL:
            state = "failed" if names.FAIL_REASON in attrs else None
        if state is None or names.RUNG not in attrs:
            continue
        out.append(Record(
            params=t.params or t.system_attrs.get("fixed_params", {}),
            rung=int(attrs[names.RUNG]), stage=attrs[names.STAGE],
            seed=int(attrs.get(names.SEED, 0)), state=state, value=t.value,
            number=t.number, run_id=attrs.get(names.run_id_attr(0)),
        ))  # fmt: skip
    return out


_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


MEASURED_AFTER = 5  # finished trials before their costs replace the probe's


VALIDATION_SHARE = 0.15  # an epoch's validation pass, beside its training part (images_per_s)


def measured_cost(study: optuna.Study, plan: HalvingPlan, recs: list[Record] | None = None,
                  notes: list[str] | None = None) -> Costs:  # fmt: skip
    """Seconds of a trial of `epochs` epochs, from what the study's finished trial runs
    really took: the median seconds of a steady epoch (their training images over their
    `images_per_s`, which leaves out the first epoch's tracing, plus a validation pass) and
    the median of the rest of their wall time (start-up, tracing, evaluation, logging the
    model). From a short rung's totals alone, tracing and logging would read as slow epochs
    and shrink a plan of 100-epoch trainings for nothing. Until MEASURED_AFTER have finished,
    the probe's figures: the first few candidates say little about the average. A
    configuration that has trained is costed at its own steady epoch (`Costs`). When the
    tracking store cannot be read, the probe's figures, and a line in `notes` says so."""
    try:
        runs = _finished_runs(study)
    except mlflow.exceptions.MlflowException as exc:  # the store away for a moment
        if notes is not None:
            notes.append(f"costs: the tracking store could not be read ({str(exc)[:120]}); "
                         "costing every training at the probe's figures")  # fmt: skip
        runs = []
    steady = [(1 + VALIDATION_SHARE) * n / m[M.IMAGES_PER_S] for m, _, n, _ in runs]
    own = _own_epoch_s(recs if recs is not None else records(study), runs, steady)
    if len(runs) < MEASURED_AFTER:
        return Costs(plan.epoch_s, plan.overhead_s, own)
    fixed = statistics.median(
        max(m[M.TRIAL_WALL_TIME] - epochs * e, 0.0)
        for (m, epochs, _, _), e in zip(runs, steady, strict=True)
    )
    return Costs(statistics.median(steady), fixed, own)


def _own_epoch_s(recs: list[Record], runs: list, steady: list[float]) -> dict[str, float]:
    """Each trained configuration's median steady epoch seconds, by `Record.key`."""
    key_of = {r.number: r.key for r in recs}
    by_key: dict[str, list[float]] = {}
    for (_, _, _, number), seconds in zip(runs, steady, strict=True):
        if number in key_of:
            by_key.setdefault(key_of[number], []).append(seconds)
    return {key: statistics.median(values) for key, values in by_key.items()}


def _finished_runs(study: optuna.Study) -> list[tuple[dict[str, float], int, int, int | None]]:
    """(metrics, epochs trained, training images, Optuna trial number) of the study's
    finished trial runs that logged their times, those timed beside other load (tag
    `timing=contended`) left out: a neighbour's load is not the configuration's cost (a
    flowers17 resnet trained at 49 images/s alone and 28 beside a test run, and would have
    been priced at 1.7x for the rest of the search)."""
    runs = mlflow.search_runs(
        search_all_experiments=True, output_format="list",
        filter_string=f"tags.study_name = {literal(study.study_name)} and "
        "attributes.status = 'FINISHED'",
    )  # fmt: skip
    needed = {M.TRIAL_WALL_TIME, M.IMAGES_PER_S, M.STOPPED_EPOCH}
    return [
        (
            r.data.metrics,
            int(r.data.metrics[M.STOPPED_EPOCH]),
            int(r.data.params["train_size"]),
            _number(r.data.tags.get("optuna_trial")),
        )  # fmt: skip
        for r in runs
        if needed <= set(r.data.metrics)
        and r.data.metrics[M.STOPPED_EPOCH] > 0
        and r.data.metrics[M.IMAGES_PER_S] > 0
        and "train_size" in r.data.params
        and r.data.tags.get(M.TAG_TIMING) != M.TIMING_CONTENDED
    ]


def _number(tag: str | None) -> int | None:
    return int(tag) if tag and tag.isdigit() else None


def decide(study: optuna.Study, budget: Budget, printer) -> Next:
    """The next job, WAIT, or Done with why; the quotas shrink to the time left. A note
    (a shrink, a cost that could not be read) is printed once per command."""
    recs = records(study)
    notes: list[str] = []
    cost = measured_cost(study, budget.plan, recs, notes)
    progress = fit(budget.plan, recs, budget.left(), cost)
    budget.need_s = progress.need_s
    budget.trainings = planned_trainings(budget.plan, progress.quotas)
    for note in notes + progress.notes:
        if note not in budget.notes:
            budget.notes.append(note)
            printer(note)
    return next_job(budget.plan, recs, progress.quotas, budget.left(), cost)


def prepare(study: optuna.Study, job: Job) -> None:
    """A survivor or a confirmation is queued with its parameters and rung: the next
    `optimize` takes it; a new candidate is left to the sampler."""
    if job.params is not None:
        study.enqueue_trial(job.params, user_attrs=job.attrs(), skip_if_exists=False)


def job_of(trial: optuna.Trial, fallback: Job | None) -> Job:
    """The job a trial trains: its own attributes when it was queued (a survivor, a
    confirmation, a retried trial), else the slot's new-candidate job."""
    attrs = trial.user_attrs
    if names.RUNG in attrs:
        return Job(rung=int(attrs[names.RUNG]), stage=attrs[names.STAGE],
                   seed=int(attrs.get(names.SEED, 0)))  # fmt: skip
    job = fallback or Job(rung=0)
    for key, value in job.attrs().items():
        trial.set_user_attr(key, value)
    return job


def best(study: optuna.Study, plan: HalvingPlan) -> tuple[Any, list[float]] | None:
    """The winning trial (its first full-length seed) and its validation accuracies."""
    found = winner(plan, records(study))
    if found is None:
        return None
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == found.first.number)
    return trial, found.values


def winner_run_ids(study: optuna.Study, budget: Budget | None) -> list[str] | None:
    """The MLflow runs of the confirmed winner's full-length seeds (None: not halving)."""
    if budget is None:
        return None
    found = winner(budget.plan, records(study))
    return [] if found is None else [r.run_id for r in found.seeds if r.run_id]


def where(trial: optuna.trial.FrozenTrial) -> str:
    """`rung 1` or `confirm seed 2`: the progress line's note of what a trial trained."""
    attrs = trial.user_attrs
    if attrs.get(names.STAGE) == CONFIRM:
        return f"confirm seed {attrs.get(names.SEED, 0)}"
    return f"rung {attrs.get(names.RUNG, 0)}"


def planned_trainings(plan: HalvingPlan, quotas: Sequence[int] | None = None) -> int:
    """The plan's trainings, or with `quotas` as they stand now (shrunk or grown)."""
    return sum(plan.quotas if quotas is None else quotas) + plan.confirm_top * (plan.seeds - 1)


# --- what the driver asks of a halving search --------------------------------------------


def open_plan(search: Search, minutes: float | None, printer) -> Budget:
    """The study's stored plan (a new `minutes` replaces its total), or a new one fitted to
    the budget from a timed probe; printed before any training."""
    space, study = search.space, search.study
    plan = stored_plan(study)
    if plan is None:
        minutes = _minutes(space, minutes)
        epochs = space.config({}, **search.base).epochs
        printer(f"timing a two-epoch probe of the space to plan {minutes:g} minutes ...")
        plan = new_plan(space, epochs, search.seeds, minutes,
                              lambda: probe_space(space, search.base, search.data_dir))  # fmt: skip
    elif minutes is not None and abs(minutes * 60 - plan.budget_s) > 1:
        plan = dataclasses.replace(plan, budget_s=minutes * 60)
        search.study.set_user_attr(names.PLAN, plan.to_json())
    if not plan.chance:  # a new plan, or one stored before chance was
        plan = dataclasses.replace(plan, chance=chance_accuracy(space, search.base,
                                                                search.data_dir))
        if stored_plan(study) is not None:
            study.set_user_attr(names.PLAN, plan.to_json())
    budget = open_budget(study, plan)
    search.total = planned_trainings(plan)
    for line in plan.lines():
        printer(line)
    if budget.spent_before:
        printer(f"resumed: {budget.spent_before / 60:.1f} min of the budget spent, "
                f"{budget.left() / 60:.1f} min left")  # fmt: skip
    return budget


def plan_only(space: SearchSpace, *, dataset: str, data_dir: str | None = None,
              overrides: dict[str, Any] | None = None, seeds: int | None = None,
              budget_minutes: float | None = None, printer=print) -> HalvingPlan:  # fmt: skip
    """`--dry-run` of a halving search: the probe timed and the plan printed, nothing
    trained, no study and no run created."""
    base = {"dataset": dataset, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    minutes = _minutes(space, budget_minutes)
    epochs = space.config({}, **base).epochs
    printer(f"timing a two-epoch probe of the space to plan {minutes:g} minutes ...")
    plan = new_plan(space, epochs, seeds or space.seeds, minutes,
                          lambda: probe_space(space, base, data_dir))  # fmt: skip
    for line in plan.lines():
        printer(line)
    return plan


def _minutes(space: SearchSpace, given: float | None) -> float:
    minutes = given or space.halving.budget_minutes
    if minutes is None:
        raise UserError(
            "strategy halving needs a time budget: --budget-minutes N "
            "(-P budget_minutes=N) or halving.budget_minutes in the space"
        )
    return minutes


def done_reason(search: Search) -> str | None:
    """Why a halving study has nothing left to train, or None."""
    recover_dead_trials(search.study, search.store)
    decision = decide(search.study, search.budget, lambda line: None)
    return decision.reason if isinstance(decision, Done) else None


def finished(study: optuna.Study) -> Budget | None:
    """A halving study's budget once its stored plan has nothing left to train, read without
    running its search (the lab's plan and parts); None before it has a plan or while it
    has work left (a trial still running or interrupted included)."""
    plan = stored_plan(study)
    if plan is None:
        return None
    budget = open_budget(study, plan)  # the stored plan and the time spent; writes nothing
    return budget if isinstance(decide(study, budget, lambda line: None), Done) else None


def log_spent(study: optuna.Study) -> None:
    """The budget spent (the study's account) onto its parent run, metric `budget_spent_s`:
    how the report learns it, also for a study whose last command died before logging."""
    from benchmark.search.parent import PARENT_ATTR

    parent, spent = study.user_attrs.get(PARENT_ATTR), study.user_attrs.get(names.SPENT)
    if parent and spent is not None:
        with contextlib.suppress(MlflowException):  # a parent deleted by hand: nothing to say
            mlflow.MlflowClient().log_metric(parent, M.BUDGET_SPENT, float(spent))


def best_filler(search: Search):
    """Under halving, the summary's best is the winner over seeds, not the best trial."""
    if search.budget is None:
        return None

    def fill(study, summary):
        found = best(study, search.budget.plan)
        if found is None:
            return None
        trial, values = found
        summary.best_params, summary.best_value = trial.params, statistics.fmean(values)
        summary.best_run_id = trial.user_attrs.get(names.run_id_attr(0))
        summary.best_seeds = values
        return trial

    return fill


def warm_start_wanted(space: SearchSpace, warm_start: bool | None) -> bool:
    return space.halving.warm_start if warm_start is None else warm_start
