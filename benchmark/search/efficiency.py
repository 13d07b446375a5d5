"""Search efficiency: does Optuna with pruning find (nearly) the grid's best for less work?

The grid runs first (or is reused: both are ordinary resumable studies, so running this
after the default search does not train the grid again). Optuna then gets an epoch budget,
a fraction of what the grid trained, and runs trials until no further one fits in it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import warnings

import optuna
from optuna.trial import TrialState

from benchmark.errors import UserError
from benchmark.search.driver import run_search
from benchmark.search.parts import make_pruner, make_sampler
from benchmark.search.space import SearchSpace, load_space, space_path
from benchmark.search.storage import default_storage, make_storage
from benchmark.search.study import (
    epochs_trained,
    finished_with_params,
    fits_budget,
    study_name_for,
)

TARGET_GAP_PP = 1.0  # "within 1 percentage point of the grid's best"
TRIALS_PER_POINT = 4  # default cap on Optuna trials: re-proposed points cost no epochs


def best_value(study: optuna.Study) -> float:
    """Optuna's best_value: completed trials only (a pruned one keeps a part-trained score)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max((t.value for t in done), default=float("nan"))


def replay(
    grid: optuna.Study, space: SearchSpace, max_epochs: int, n_trials: int, seed: int
) -> tuple[float, int]:
    """Optuna's own sampler and pruner driven by the finished grid's recorded curves, no
    training: (best value, epochs it would have trained). Training here is repeatable
    (same seed, same curve), so this predicts a real run; over many sampler seeds it shows
    how much of a result is the sampler's luck."""
    curves = {
        tuple(sorted(t.params.items())): t for t in grid.trials if t.state == TrialState.COMPLETE
    }
    study = optuna.create_study(  # in memory: nothing is stored
        direction="maximize", sampler=make_sampler(space, seed), pruner=make_pruner(space)
    )
    full = max(len(t.intermediate_values) for t in curves.values())

    def objective(trial: optuna.Trial) -> float:
        params = {d.name: d.suggest(trial) for d in space.dimensions}
        if (earlier := finished_with_params(trial.study, trial.number, params)) is not None:
            if earlier.state == TrialState.PRUNED:  # as run_search does: never twice
                raise optuna.TrialPruned()
            return earlier.value
        recorded = curves.get(tuple(sorted(params.items())))
        if recorded is None:
            raise UserError(f"the grid has no finished trial for {params}: replay needs one")
        for step, value in sorted(recorded.intermediate_values.items()):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return recorded.value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        while len(study.trials) < n_trials:
            if not fits_budget(study, max_epochs, full, space.seeds):
                break
            study.optimize(objective, n_trials=1)
    return best_value(study), epochs_trained(study, space.seeds)


def compare(
    dataset: str,
    space_file: str | None,
    data_dir: str | None,
    storage: str | None,
    n_trials: int | None = None,
    budget: float = 0.4,
    replays: int = 0,
    tracking=None,
) -> dict[str, float]:
    """Run (or reuse) the grid, then Optuna within `budget` x the grid's epochs; with
    `replays`, also replay Optuna over that many sampler seeds on the grid's curves."""
    if not 0 < budget <= 1:
        raise UserError(f"--budget should be a fraction in (0, 1]; got {budget}")
    printer = functools.partial(print, flush=True)
    grid_space = load_space(space_path(dataset, space_file), strategy="grid")
    opt_space = dataclasses.replace(grid_space, strategy="optuna")
    storage = storage or default_storage(
        study_name_for(grid_space, dataset, {"seeds": grid_space.seeds})
    )
    store = make_storage(storage)
    results: dict[str, float] = {}

    def record(label: str, study_name: str) -> None:
        study = optuna.load_study(study_name=study_name, storage=store)
        results[f"{label}_best"] = best_value(study)
        results[f"{label}_epochs"] = epochs_trained(study, grid_space.seeds)
        results[f"{label}_trials"] = len(study.trials)

    summary = run_search(grid_space, dataset=dataset, data_dir=data_dir, storage=storage,
                         printer=printer, tracking=tracking)  # fmt: skip
    record("grid", summary.study_name)
    grid_name = summary.study_name
    max_epochs = math.floor(budget * results["grid_epochs"])
    # Its own study per budget: rerunning resumes it, another budget starts afresh.
    name = study_name_for(opt_space, dataset, {"seeds": opt_space.seeds, "maxepochs": max_epochs})
    n_trials = n_trials or TRIALS_PER_POINT * len(grid_space.grid_points())
    summary = run_search(opt_space, dataset=dataset, data_dir=data_dir, storage=storage,
                         study_name=name, n_trials=n_trials, max_epochs=max_epochs,
                         printer=printer, tracking=tracking)  # fmt: skip
    record("optuna", summary.study_name)
    results["max_epochs"] = max_epochs
    if replays:
        grid = optuna.load_study(study_name=grid_name, storage=store)
        runs = [replay(grid, opt_space, max_epochs, n_trials, s) for s in range(replays)]
        gaps = [100 * (results["grid_best"] - best) for best, _ in runs]
        results["replay_hits"] = sum(g <= TARGET_GAP_PP for g in gaps)
        results["replay_median_gap_pp"] = statistics.median(gaps)
        results["replay_median_epochs"] = statistics.median(e for _, e in runs)
    results["epoch_ratio"] = results["optuna_epochs"] / results["grid_epochs"]
    results["gap_pp"] = 100 * (results["grid_best"] - results["optuna_best"])
    return results
