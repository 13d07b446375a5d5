"""Search efficiency: does Optuna with pruning find (nearly) the grid's best for less work?

Both searches are ordinary resumable studies of the same space, so running this after the
default search reuses the finished grid instead of training it again.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools

import optuna

from benchmark.search import run_search
from benchmark.space import load_space, space_path


def epochs_trained(study: optuna.Study) -> int:
    """Epochs actually run: every trial reports once per epoch, pruned ones stop early."""
    return sum(len(t.intermediate_values) for t in study.get_trials(deepcopy=False))


def best_value(study: optuna.Study) -> float:
    done = [t.value for t in study.get_trials(deepcopy=False) if t.value is not None]
    return max(done, default=float("nan"))


def compare(dataset: str, space_file: str | None, data_dir: str | None, storage: str | None,
            n_trials: int | None) -> dict[str, float]:  # fmt: skip
    printer = functools.partial(print, flush=True)
    grid_space = load_space(space_path(dataset, space_file), strategy="grid")
    opt_space = dataclasses.replace(grid_space, strategy="optuna")
    results = {}
    for label, space in (("grid", grid_space), ("optuna", opt_space)):
        summary = run_search(space, dataset=dataset, data_dir=data_dir, storage=storage,
                             n_trials=n_trials, printer=printer)  # fmt: skip
        study = optuna.load_study(study_name=summary.study_name, storage=storage or _storage())
        results[f"{label}_best"] = best_value(study)
        results[f"{label}_epochs"] = epochs_trained(study)
        results[f"{label}_trials"] = len(study.trials)
    results["epoch_ratio"] = results["optuna_epochs"] / results["grid_epochs"]
    results["gap_pp"] = 100 * (results["grid_best"] - results["optuna_best"])
    return results


def _storage() -> str:
    from benchmark.search import default_storage

    return default_storage()


def cmd_efficiency(args: argparse.Namespace) -> int:
    from benchmark.runtime import prepare_tracking

    prepare_tracking(args.experiment)
    r = compare(args.dataset, args.space, args.data_dir, args.storage, args.n_trials)
    print(
        f"grid:   best val_accuracy {r['grid_best']:.4f}, {r['grid_trials']} trials, "
        f"{r['grid_epochs']} epochs\n"
        f"optuna: best val_accuracy {r['optuna_best']:.4f}, {r['optuna_trials']} trials, "
        f"{r['optuna_epochs']} epochs (pruning)\n"
        f"gap: {r['gap_pp']:+.2f} pp (target <= 1)\n"
        f"epoch ratio: {r['epoch_ratio']:.2f} (target <= 0.40)"
    )
    return 0
