"""The names a search writes into Optuna's storage, and the one key of a configuration.

Why one module: a resumed search, a second worker, the integrity check and the report all
read back what an earlier command wrote. A name typed in two places drifts apart silently
(the study still loads; the trial just stops counting), so every writer and reader takes it
from here.

May import nothing from benchmark (every search module imports this one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Trial user attributes of a halving search: where the trial sits in the plan.
RUNG = "halving_rung"  # int: the rung (0 = shortest); confirmations sit at the last rung
STAGE = "halving_stage"  # EXPLORE or CONFIRM (benchmark.search.halving)
SEED = "halving_seed"  # int: offset from the configuration's seed
HALVING_ATTRS = (RUNG, STAGE, SEED)

# Study user attributes of a halving search.
PLAN = "halving_plan"  # HalvingPlan as JSON: fixed when the study is created
SPENT = "halving_spent_s"  # seconds of the budget the study's commands have spent

# Trial user attributes of every search.
RUN_ID = "run_id_"  # + repeat index: the MLflow run of each seed the trial trained
FAIL_REASON = "fail_reason"  # set when the configuration itself failed (not interrupted)
DUPLICATE_OF = "duplicate_of"  # the earlier trial whose result a re-proposal reused
WARM_START = "warm_start"  # the run an enqueued warm-start candidate was taken from


def run_id_attr(repeat: int = 0) -> str:
    """The trial attribute holding the MLflow run id of seed repeat `repeat`."""
    return f"{RUN_ID}{repeat}"


def config_key(values: Mapping[str, Any]) -> str:
    """One configuration's identity, whatever holds its values: an Optuna trial's params, a
    grid point, a warm-start candidate, or a report row's MLflow params. Two mappings with
    the same items (in any order) have the same key; values that JSON cannot hold compare
    by their text, as MLflow stores every param."""
    return json.dumps(dict(values), sort_keys=True, default=str)
