"""Search efficiency: does Optuna with pruning find (nearly) the grid's best for less work?

The grid runs first (or is reused: both are ordinary resumable studies, so running this
after the default search does not train the grid again). Optuna then gets an epoch budget,
a fraction of what the grid trained, and runs trials until no further one fits in it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math

import optuna

from benchmark.errors import UserError
from benchmark.search import default_storage, epochs_trained, run_search, study_name_for
from benchmark.space import load_space, space_path

TRIALS_PER_POINT = 4  # default cap on Optuna trials: re-proposed points cost no epochs


def best_value(study: optuna.Study) -> float:
    done = [t.value for t in study.get_trials(deepcopy=False) if t.value is not None]
    return max(done, default=float("nan"))


def compare(
    dataset: str,
    space_file: str | None,
    data_dir: str | None,
    storage: str | None,
    n_trials: int | None = None,
    budget: float = 0.4,
) -> dict[str, float]:
    """Run (or reuse) the grid, then Optuna within `budget` x the grid's epochs."""
    if not 0 < budget <= 1:
        raise UserError(f"--budget should be a fraction in (0, 1]; got {budget}")
    printer = functools.partial(print, flush=True)
    storage = storage or default_storage()
    grid_space = load_space(space_path(dataset, space_file), strategy="grid")
    opt_space = dataclasses.replace(grid_space, strategy="optuna")
    results: dict[str, float] = {}

    def record(label: str, study_name: str) -> None:
        study = optuna.load_study(study_name=study_name, storage=storage)
        results[f"{label}_best"] = best_value(study)
        results[f"{label}_epochs"] = epochs_trained(study, grid_space.seeds)
        results[f"{label}_trials"] = len(study.trials)

    summary = run_search(grid_space, dataset=dataset, data_dir=data_dir, storage=storage,
                         printer=printer)  # fmt: skip
    record("grid", summary.study_name)
    max_epochs = math.floor(budget * results["grid_epochs"])
    # Its own study per budget: rerunning resumes it, another budget starts afresh.
    name = study_name_for(opt_space, dataset, {"seeds": opt_space.seeds, "maxepochs": max_epochs})
    n_trials = n_trials or TRIALS_PER_POINT * len(grid_space.grid_points())
    summary = run_search(opt_space, dataset=dataset, data_dir=data_dir, storage=storage,
                         study_name=name, n_trials=n_trials, max_epochs=max_epochs,
                         printer=printer)  # fmt: skip
    record("optuna", summary.study_name)
    results["max_epochs"] = max_epochs
    results["epoch_ratio"] = results["optuna_epochs"] / results["grid_epochs"]
    results["gap_pp"] = 100 * (results["grid_best"] - results["optuna_best"])
    return results


def cmd_efficiency(args: argparse.Namespace) -> int:
    from benchmark.runtime import prepare_tracking

    prepare_tracking(args.experiment)
    r = compare(args.dataset, args.space, args.data_dir, args.storage, args.n_trials, args.budget)
    print(
        f"grid:   best val_accuracy {r['grid_best']:.4f}, {r['grid_trials']} trials, "
        f"{r['grid_epochs']} epochs\n"
        f"optuna: best val_accuracy {r['optuna_best']:.4f}, {r['optuna_trials']} trials, "
        f"{r['optuna_epochs']} epochs (pruning; budget {r['max_epochs']} epochs)\n"
        f"gap: {r['gap_pp']:+.2f} pp (target <= 1)\n"
        f"epoch ratio: {r['epoch_ratio']:.2f} (target <= 0.40)"
    )
    return 0
