"""Lab task 2 and its kin: the latest search's best configuration, fixed, with one setting
varied: every augmentation policy (task 2, the default), or a part of the training recipe
(`ablate --vary ema`, `label_smoothing`, `batch_size`: issue 30's parts from the fast-training
literature, measured on the configuration that won rather than read off the search's mixed
trials; `precision`: float32 against bf16 on it, "bf16 costs no accuracy" measured).
May import: benchmark.metrics, benchmark.errors, benchmark.search.space, benchmark.search.study,
benchmark.train.precision (what `auto` trains as here).
"""

from __future__ import annotations

from typing import Any

import mlflow
import yaml

from benchmark import metrics as M
from benchmark.config import LR_REFERENCE_BATCH, TrialConfig
from benchmark.errors import UserError
from benchmark.runfilter import literal
from benchmark.search.space import Dimension, SearchSpace

# What the ablation gets elsewhere (dataset: its own option; seed: its seeds); the setting it
# varies is dropped from the rest by `ablation_space`. Every other TrialConfig field is the best
# trial's: its architecture and its training recipe (schedule, weight decay, label smoothing,
# early stopping, TTA), so each value is compared under the recipe that won, not the defaults.
NOT_FIXED = ("dataset", "seed")
VARY_DEFAULT = "augmentation"
# The values a recipe part is tried at when `--values` is not given: off and the literature's
# (airbench, ResNet-9 on DAWNBench); precision: float32 and bf16, whichever `auto` is here
# being the winner's own. batch_size: the winner's and 4 times it (BATCH_FACTOR).
PART_VALUES: dict[str, tuple[Any, ...]] = {"ema": (0.0, 0.99), "label_smoothing": (0.0, 0.2),
                                           "precision": ("float32", "mixed_bfloat16")}
BATCH_FACTOR = 4


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


def ablation_space(fixed: dict[str, Any], seeds: int, policies: list[Any],
                   vary: str = VARY_DEFAULT) -> SearchSpace:  # fmt: skip
    """The best configuration, fixed, with `vary` (default: the augmentation policy) taking
    each of `policies` (its values): a one-dimension grid."""
    fixed = {k: v for k, v in fixed.items() if k != vary}
    doc = {"strategy": "grid", "seeds": seeds, "fixed": fixed,
           "space": {vary: {"values": list(policies)}}}  # fmt: skip
    text = yaml.safe_dump(doc, sort_keys=False)
    return SearchSpace(
        path="ablation.yaml",
        text=text,
        dataset=None,
        strategy="grid",
        fixed=fixed,
        dimensions=(Dimension(name=vary, values=tuple(policies)),),
        seeds=seeds,
    )


def part_values(fixed: dict[str, Any], vary: str, given: list[Any] | None) -> list[Any]:
    """The values `vary` is tried at: `given`, else PART_VALUES' (the winner's own value
    first when it is not among them), else one line asking for --values. Each must make a
    valid configuration with the rest fixed: a bad one is one line before anything trains."""
    check_setting(vary)
    own = own_value(fixed, vary)
    if given is None and vary == "batch_size":
        given = [own, own * BATCH_FACTOR]
    if given is None and vary not in PART_VALUES:
        raise UserError(f"--vary {vary} needs --values (e.g. --values {own},...)")
    values = list(given) if given is not None else list(PART_VALUES[vary])
    values = values if own in values or given is not None else [own, *values]
    for v in values:
        TrialConfig.from_options(**{**fixed, vary: v})  # raises UserError with its reason
    return values


def own_value(fixed: dict[str, Any], vary: str) -> Any:
    """The value `vary` has in these settings: the fixed one, else the setting's default; a
    precision of `auto` as the policy it trains under on this machine (float32 or bf16 on a
    CPU), so that `--vary precision` does not train one policy twice under two names."""
    own = fixed.get(vary)
    own = getattr(TrialConfig.from_options(**fixed), vary) if own is None else own
    if vary == "precision":
        from benchmark.train.precision import resolve_precision

        return resolve_precision(own)
    return own


def check_setting(vary: str) -> None:
    """One line naming the settings when `vary` is none an ablation can vary."""
    if vary not in TrialConfig.field_names() or vary in NOT_FIXED:
        known = [n for n in TrialConfig.field_names() if n not in NOT_FIXED]
        raise UserError(f"--vary {vary!r} is not a setting; one of: {', '.join(known)}")


def same_step_rate(fixed: dict[str, Any]) -> dict[str, Any]:
    """The winner's settings with its rate given per 256 images (`lr_scaling: linear`), so
    that a batch-size ablation trains the winner's own batch at the rate it won with and a
    larger batch at a proportionally larger one (Goyal et al.'s rule, "larger batches with a
    scaled learning rate")."""
    if fixed.get("lr_scaling", "none") == "linear":
        return fixed
    cfg = TrialConfig.from_options(**fixed)
    per_256 = cfg.learning_rate * LR_REFERENCE_BATCH / cfg.batch_size
    return {**fixed, "lr_scaling": "linear", "learning_rate": per_256}
