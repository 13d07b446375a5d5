"""Optuna's plugged-in parts by name: samplers and pruners, each one registered function.

A space file names them (`optuna.sampler: tpe`, `optuna.pruner: {type: median, ...}`); the
space's validation reads the names from these registries, and a pruner's allowed keys from its
function's keyword arguments, so adding one is a decorated function and nothing else:

    @PRUNERS.register
    def patient(n_warmup_steps: int = 0, patience: int = 2):
        import optuna
        return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(
            n_warmup_steps=n_warmup_steps), patience=patience)

Optuna is imported inside the functions: the CLI's `--help` validates names without it.
May import: benchmark.registry (nothing of the search's other stages).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from benchmark.registry import Registry

# sampler(space, seed) -> optuna sampler (space: the SearchSpace, for its grid or settings)
SAMPLERS: Registry[Callable[..., Any]] = Registry("sampler")
# pruner(**options from the space's optuna.pruner mapping) -> optuna pruner
PRUNERS: Registry[Callable[..., Any]] = Registry("pruner")


@SAMPLERS.register
def tpe(space: Any, seed: int) -> Any:
    """Tree-structured Parzen estimator; the space's `startup_trials` random trials first."""
    import optuna

    n = space.startup_trials
    startup = {} if n is None else {"n_startup_trials": n}
    return optuna.samplers.TPESampler(seed=seed, **startup)


@SAMPLERS.register(name="random")
def random_sampler(space: Any, seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register
def grid(space: Any, seed: int) -> Any:
    """Every point of the space's values, in a seeded order; claimed points are not retaken."""
    import optuna

    return optuna.samplers.GridSampler(space.grid(), seed=seed)


@PRUNERS.register
def median(n_startup_trials: int = 5, n_warmup_steps: int = 0) -> Any:
    """Stop a trial below the median of earlier trials at the same epoch."""
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
    )


@PRUNERS.register
def hyperband(min_resource: int = 1, reduction_factor: int = 3) -> Any:
    import optuna

    return optuna.pruners.HyperbandPruner(
        min_resource=min_resource, reduction_factor=reduction_factor
    )


@PRUNERS.register
def threshold(lower: float = 0.0, n_warmup_steps: int = 0) -> Any:
    """Stop any trial whose val_accuracy is below `lower`."""
    import optuna

    return optuna.pruners.ThresholdPruner(lower=lower, n_warmup_steps=n_warmup_steps)


@PRUNERS.register(name="none")
def no_pruning() -> Any:
    import optuna

    return optuna.pruners.NopPruner()


def pruner_options(name: str) -> tuple[str, ...]:
    """The keys a space may give the pruner `name` (its function's keyword arguments)."""
    return tuple(inspect.signature(PRUNERS.get(name)).parameters)


def make_sampler(space: Any, seed: int) -> Any:
    """The space's sampler; a grid strategy always samples its grid."""
    name = "grid" if space.strategy == "grid" else space.sampler
    return SAMPLERS.get(name)(space, seed)


def make_pruner(space: Any) -> Any:
    """The space's pruner; a grid means: run every point fully, so it never prunes; halving
    compares complete trainings of each rung's length instead of pruning."""
    options = dict(space.pruner)
    name = "none" if space.strategy in ("grid", "halving") else options.pop("type", "median")
    return PRUNERS.get(name)(**({} if name == "none" else options))
