"""Lab task 2: the latest search's best architecture, fixed, with every augmentation policy.
May import: benchmark.metrics, benchmark.errors, benchmark.search.space, benchmark.search.study.
"""

from __future__ import annotations

from typing import Any

import mlflow
import yaml

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.runfilter import literal
from benchmark.search.space import Dimension, SearchSpace

# What the ablation varies (augmentation) or gets elsewhere (dataset: its own option; seed: its
# seeds). Every other TrialConfig field is the best trial's: its architecture and its training
# recipe (schedule, weight decay, label smoothing, early stopping, TTA), so each policy is
# compared under the recipe that won, not under the defaults.
NOT_FIXED = ("dataset", "augmentation", "seed")


def best_of_latest_search(dataset: str) -> tuple[str, dict[str, Any]]:
    """The latest search's best trial run on `dataset` (by validation accuracy) and its
    settings, read back from MLflow so the ablation needs no state of its own. The latest is
    the one last active: a resumed search keeps its parent's first start, so its end counts.
    An older store's resumed study has several parents: the trials of all of them count."""
    parents = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.{M.TAG_ROLE} = 'search' and tags.{M.TAG_DATASET} = {literal(dataset)}",
        output_format="list",
    )
    parents.sort(key=lambda p: max(p.info.start_time or 0, p.info.end_time or 0), reverse=True)
    for parent in parents:
        study = parent.data.tags.get("study_name")
        same = (
            f"tags.study_name = {literal(study)}"
            if study
            else f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        children = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=f"{same} and tags.{M.TAG_TRIAL_STATE} = 'complete'",
            order_by=[f"metrics.{M.OBJECTIVE} DESC"],
            max_results=1,
            output_format="list",
        )
        if children:
            values = TrialConfig.values_from_params(children[0].data.params)
            return children[0].info.run_id, {k: v for k, v in values.items() if k not in NOT_FIXED}
    raise UserError(
        f"no completed search on {dataset!r} in {mlflow.get_tracking_uri()}; run "
        f"`mlflow run . -P dataset={dataset}` first"
    )


def ablation_space(fixed: dict[str, Any], seeds: int, policies: list[str]) -> SearchSpace:
    """The best architecture, fixed, times every augmentation policy: a one-dimension grid."""

    doc = {"strategy": "grid", "seeds": seeds, "fixed": fixed,
           "space": {"augmentation": {"values": policies}}}  # fmt: skip
    text = yaml.safe_dump(doc, sort_keys=False)
    return SearchSpace(
        path="ablation.yaml",
        text=text,
        dataset=None,
        strategy="grid",
        fixed=fixed,
        dimensions=(Dimension(name="augmentation", values=tuple(policies)),),
        seeds=seeds,
    )
