"""The lab's `parts` stages (`lab --parts ema,label_smoothing,batch_size,precision`): issue 30's
recipe parts from the fast-training literature, and float32 against bf16, each measured on the
dataset's winner with everything else fixed, on the lab's seeds, as `ablate --vary` does by
hand. Being stages, their runs are rebuilt by the lab command like every other report section,
and a rerun skips what is done.

The winner is the auto search's confirmed winner when the lab runs one (`--auto true`), else
task 1's best; a part's stage waits for it (its space is None until then), as task 2 waits for
task 1. Its settings are read back from the winner's MLflow run, so the part varies the
configuration that won, recipe included, not a default.

The winner's own value is not trained again: its search already trained that configuration on
the lab's seeds, and a seed trains the same run twice. Those runs stand for it (tag
`benchmark.baseline_runs` on the part's parent, read by the report). On flowers17's winner
that is 12 trainings of 21, each about 26 minutes on a 2-core AVX2 CPU.

May import benchmark.search's modules (not lab.py: it imports this one), the stages before.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

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
    own_value,
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

    budget = rungs.finished(study)  # None while training: the winner may change
    return (rungs.winner_run_ids(study, budget) or None) if budget is not None else None


def baseline_runs(run_ids: list[str], seeds: int) -> list[str]:
    """The winner's runs that stand for its own value in a part, by seed: one for each of the
    lab's seeds (0, 1, ...); [] when they do not cover them, and the part trains it too."""
    by_seed = {mlflow.get_run(r).data.params.get("seed"): r for r in run_ids}
    wanted = [str(s) for s in range(seeds)]
    return [by_seed[s] for s in wanted] if set(wanted) <= set(by_seed) else []


def part_space(run_ids: list[str], vary: str, seeds: int, dataset: str,
               reuse: bool = True) -> SearchSpace:  # fmt: skip
    """The winner's settings (its first seed's run) with `vary` at the part's values: the
    literature's (`ablate --vary` without --values), and the winner's own unless its runs
    stand for it (`reuse`)."""
    params = mlflow.get_run(run_ids[0]).data.params
    fixed = {k: v for k, v in TrialConfig.values_from_params(params).items() if k not in NOT_FIXED}
    own = winner_value(params, vary)
    if vary == "batch_size":
        fixed = same_step_rate(fixed)  # the winner's rate per 256 images, a 4x batch scaled
    values = [v for v in part_values(fixed, vary, None) if not (reuse and v == own)]
    space = ablation_space(fixed, seeds, values, vary=vary)
    return dataclasses.replace(space, path=f"{dataset}-{vary}.yaml")


def winner_value(params: dict[str, str], vary: str) -> Any:
    """The winner's own value of `vary` (its run's `params`); for precision the policy its
    runs trained under (`precision_resolved`: `auto` is bf16 on one CPU, float32 on another)."""
    if vary == "precision" and M.PRECISION_RESOLVED in params:
        return params[M.PRECISION_RESOLVED]
    values = TrialConfig.values_from_params(params)
    return own_value({k: v for k, v in values.items() if k not in NOT_FIXED}, vary)


def stage_tags(vary: str | None, baseline: list[str]) -> dict[str, str]:
    """A part's tags: what it varies, and the winner's runs that stand for its own value
    (none for the lab's other stages, `vary` None)."""
    if vary is None:
        return {}
    return {M.TAG_VARY: vary, **({M.TAG_BASELINE_RUNS: ",".join(baseline)} if baseline else {})}


def part_seconds(run_ids: list[str], space: SearchSpace) -> float:
    """The stage's estimate: the winner's mean training time for each of its trainings (a
    larger batch trains faster a sample; an estimate, not a promise)."""
    times = [mlflow.get_run(r).data.metrics.get(M.TRAIN_TIME) for r in run_ids]
    times = [t for t in times if t is not None]
    trainings = len(space.grid_points()) * space.seeds
    return statistics.fmean(times) * trainings if times else 0.0


def unpriced_trainings(vary: str, seeds: int) -> int:
    """A part's trainings before its winner is known: its default values on every seed, less
    the one the winner's runs stand for (a winner's own value not among them adds one)."""
    return (len(PART_VALUES.get(vary, (1, BATCH_FACTOR))) - 1) * seeds  # batch_size: 4x only


def describe(run_ids: list[str], space: SearchSpace, baseline: list[str]) -> str:
    """The line the lab prints before a part's stage: what it varies on which run, and which
    of the winner's runs stand for its own value."""
    dim = space.dimensions[0]
    own = winner_value(mlflow.get_run(run_ids[0]).data.params, dim.name)
    reused = (f"; its own {own} is its {len(baseline)} run(s), not retrained" if baseline
              else "")  # fmt: skip
    return (f"varying {dim.name} at {', '.join(map(str, dim.values))} on the winner "
            f"(run {run_ids[0]}), {space.seeds} seed(s) each{reused}")  # fmt: skip
