"""The lab's `parts` stages (`lab --parts ema,label_smoothing,batch_size`): issue 30's recipe
parts from the fast-training literature, each measured on the dataset's winner with everything
else fixed, on the lab's seeds, as `ablate --vary` does by hand. Being stages, their runs are
rebuilt by the lab command like every other report section, and a rerun skips what is done.

The winner is the auto search's confirmed winner when the lab runs one (`--auto true`), else
task 1's best; a part's stage waits for it (its space is None until then), as task 2 waits for
task 1. Its settings are read back from the winner's MLflow run, so the part varies the
configuration that won, recipe included, not a default.

May import benchmark.search's modules (not lab.py: it imports this one), the stages before.
"""

from __future__ import annotations

import dataclasses
import statistics

import mlflow
import optuna

from benchmark import metrics as M
from benchmark.choices import LAB_PARTS
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.search import names
from benchmark.search.ablation import (
    BATCH_FACTOR,
    NOT_FIXED,
    PART_VALUES,
    ablation_space,
    part_values,
    same_step_rate,
)
from benchmark.search.space import SearchSpace


def check_parts(parts: tuple[str, ...]) -> None:
    """One line naming the parts when one is not a part the lab can vary by itself."""
    unknown = [p for p in parts if p not in LAB_PARTS]
    if unknown:
        raise UserError(f"lab parts are {', '.join(LAB_PARTS)}; got {', '.join(unknown)}")


def winner(study: optuna.Study | None, halving: bool) -> list[str] | None:
    """The MLflow runs (one per seed) of the study's winner, or None while it has none: a
    halving study's confirmed winner once the search has nothing left to train, a grid's
    best trial (mean validation accuracy over its seeds) once every point is done."""
    if study is None:
        return None
    if halving:
        return _halving_winner(study)
    best = best_grid_trial(study)
    if best is None:
        return None
    return [v for k, v in sorted(best.user_attrs.items()) if k.startswith(names.RUN_ID)] or None


def best_grid_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """A grid study's best complete trial (its value: the mean validation accuracy over its
    seeds), the earliest on a tie: task 2's configuration and the parts' winner alike."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _halving_winner(study: optuna.Study) -> list[str] | None:
    from benchmark.search import rungs  # the probe's TensorFlow, only where a plan is read
    from benchmark.search.halving import Done

    plan = rungs.stored_plan(study)
    if plan is None:
        return None
    budget = rungs.open_budget(study, plan)  # the stored plan and the time spent; writes nothing
    if not isinstance(rungs.decide(study, budget, lambda line: None), Done):
        return None  # still training: the winner may change
    return rungs.winner_run_ids(study, budget) or None


def part_space(run_ids: list[str], vary: str, seeds: int, dataset: str) -> SearchSpace:
    """The winner's settings (its first seed's run) with `vary` at the part's values: the
    winner's own and the literature's (`ablate --vary` without --values)."""
    params = mlflow.get_run(run_ids[0]).data.params
    fixed = {k: v for k, v in TrialConfig.values_from_params(params).items() if k not in NOT_FIXED}
    if vary == "batch_size":
        fixed = same_step_rate(fixed)  # the winner's rate per 256 images, a 4x batch scaled
    space = ablation_space(fixed, seeds, part_values(fixed, vary, None), vary=vary)
    return dataclasses.replace(space, path=f"{dataset}-{vary}.yaml")


def part_seconds(run_ids: list[str], space: SearchSpace) -> float:
    """The stage's estimate: the winner's mean training time for each of its trainings (a
    larger batch trains faster a sample; an estimate, not a promise)."""
    times = [mlflow.get_run(r).data.metrics.get(M.TRAIN_TIME) for r in run_ids]
    times = [t for t in times if t is not None]
    trainings = len(space.grid_points()) * space.seeds
    return statistics.fmean(times) * trainings if times else 0.0


def unpriced_trainings(vary: str, seeds: int) -> int:
    """A part's trainings before its winner is known: its default values on every seed (the
    winner's own value may add one)."""
    return len(PART_VALUES.get(vary, (1, BATCH_FACTOR))) * seeds  # batch_size: own, 4x


def describe(run_ids: list[str], space: SearchSpace) -> str:
    """The line the lab prints before a part's stage: what it varies on which run."""
    dim = space.dimensions[0]
    return (f"varying {dim.name} at {', '.join(map(str, dim.values))} on the winner "
            f"(run {run_ids[0]}), {space.seeds} seed(s) each")  # fmt: skip
