"""Warm start: the best configurations earlier searches in the tracking store found become a
new halving study's first candidates (Optuna's `enqueue_trial`), this dataset's first, then
other datasets' adapted to this space (a value this space cannot take drops the candidate).
May import: benchmark.config, benchmark.metrics, benchmark.search.space, .halving, .names.
"""

from __future__ import annotations

from typing import Any

import mlflow
import optuna

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.search import names
from benchmark.search.halving import Job
from benchmark.search.space import Dimension, SearchSpace

SHARE = 3  # at most a third of rung 0's candidates come from the store


def stored_best(dataset: str, limit: int = 200) -> list[mlflow.entities.Run]:
    """Finished trial runs of any search, best validation accuracy first, `dataset`'s first."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.{M.TAG_ROLE} = 'trial' and attributes.status = 'FINISHED'",
        order_by=[f"metrics.{M.OBJECTIVE} DESC"],
        max_results=limit,
        output_format="list",
    )
    runs = [r for r in runs if M.OBJECTIVE in r.data.metrics]
    return sorted(runs, key=lambda r: r.data.params.get("dataset") != dataset)  # stable


def adapted(run: mlflow.entities.Run, space: SearchSpace) -> dict[str, Any] | None:
    """The run's values of the space's dimensions, or None if one is outside the space.

    A searched learning_rate is carried over as the rate the run trained at: where the run
    and the space scale the rate with the batch differently (lr_scaling), the value is
    converted so that the candidate's peak rate is the run's (else 0.05 at batch 64 unscaled
    would become 0.05 per 256 images, a quarter of the rate)."""
    values = TrialConfig.values_from_params(run.data.params)
    point = {}
    for dim in space.dimensions:
        if dim.name not in values:
            return None
        point[dim.name] = values[dim.name]
    if "learning_rate" in point:
        try:
            peak = TrialConfig.from_params(run.data.params).peak_learning_rate
            asked = space.config(point).peak_learning_rate
        except (UserError, TypeError, ValueError):  # no config: judged by the values alone
            peak = asked = 1.0
        point["learning_rate"] *= peak / asked
    if not all(_admits(dim, point[dim.name]) for dim in space.dimensions):
        return None
    return point


def _admits(dim: Dimension, value: Any) -> bool:
    if dim.low is None:
        return value in dim.values
    return isinstance(value, int | float) and dim.low <= value <= dim.high


def enqueue_warm_start(study: optuna.Study, space: SearchSpace, base: dict[str, Any], plan,
                       printer) -> list[str]:  # fmt: skip
    """Queue up to a third of rung 0 from the store's best; returns the source run ids."""
    limit = max(1, plan.quotas[0] // SHARE)
    seen, chosen = set(), []
    for run in stored_best(base["dataset"]):
        point = adapted(run, space)
        key = None if point is None else names.config_key(point)
        if point is None or key in seen:
            continue
        seen.add(key)
        attrs = Job(rung=0).attrs() | {names.WARM_START: run.info.run_id}
        study.enqueue_trial(point, user_attrs=attrs, skip_if_exists=False)
        chosen.append(run.info.run_id)
        if len(chosen) >= limit:
            break
    if chosen:
        printer(f"warm start: {len(chosen)} candidate(s) from earlier searches in this store "
                "first (--warm-start false to start cold)")  # fmt: skip
    return chosen
