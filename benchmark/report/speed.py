"""Time to accuracy (DAWNBench's measure, issue 30): the training seconds a run needed to
first reach a validation accuracy, and per threshold the configuration that gets there fastest.

Computed here, from the per-epoch curves every trial logs (`val_accuracy` and `epoch_time_s`,
step = epoch), not logged by the trial: a threshold then needs no setting at training time,
and one store answers any threshold, for runs logged before this module too. A run's seconds
to a target are the sum of its epochs' `epoch_time_s` (training and that epoch's validation:
a run cannot know it got there before validating) up to the first epoch whose
`val_accuracy` reached the target; startup, data loading and the test are not counted.
Validation, not test: the target is what a run can watch while it trains; the section shows
the configuration's test accuracy beside it.

May import benchmark.metrics and the report modules load, stats, markdown (and MLflow, pandas).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import mlflow
import pandas as pd

from benchmark import metrics as M
from benchmark.report.load import numbers
from benchmark.report.markdown import table
from benchmark.report.stats import mean_std, num

THRESHOLDS = (0.70, 0.80, 0.85)  # issue 30's: the milestone 0.80 and the goal 0.85 on CIFAR-10
TITLE = "## Time to accuracy"


def seconds_to_reach(
    val_accuracy: Mapping[int, float], epoch_seconds: Mapping[int, float], target: float
) -> float:
    """Seconds of training to the end of the first epoch (step) whose validation accuracy
    is at least `target`; NaN when none is, or when an epoch before it has no time."""
    elapsed = 0.0
    for step in sorted(val_accuracy):
        if step not in epoch_seconds:
            return float("nan")
        elapsed += epoch_seconds[step]
        if val_accuracy[step] >= target:
            return elapsed
    return float("nan")


def _curve(client: mlflow.MlflowClient, run_id: str, metric: str) -> dict[int, float]:
    """A run's per-epoch values of `metric` by step (epochs count from 1: a value logged at
    step 0 is no epoch's); a step logged twice keeps its last."""
    history = sorted(client.get_metric_history(run_id, metric), key=lambda m: m.timestamp)
    return {m.step: m.value for m in history if m.step >= 1}


Curves = dict[str, tuple[dict[int, float], dict[int, float]]]  # run id -> (val, seconds)


def curves(run_ids: Iterable[str]) -> Curves:
    """Each run's per-epoch validation accuracy and epoch seconds, from the current store
    (two queries a run: read once, then ask any threshold of them)."""
    client = mlflow.MlflowClient()
    return {
        rid: (_curve(client, rid, M.VAL_ACCURACY), _curve(client, rid, M.EPOCH_TIME))
        for rid in run_ids
    }


def time_to_accuracy(
    runs: pd.DataFrame | Iterable[str], target: float, read: Curves | None = None
) -> pd.Series:
    """Seconds each run needed to first reach validation accuracy `target` (NaN: never),
    indexed by run id. `runs`: a DataFrame with a `run_id` column (mlflow.search_runs, a
    report's runs) or run ids; their curves come from the current tracking store, or from
    `read` (`curves`) when given."""
    ids = list(runs["run_id"]) if isinstance(runs, pd.DataFrame) else list(runs)
    read = read if read is not None else curves(ids)
    seconds = {rid: seconds_to_reach(*read[rid], target) for rid in ids}
    return pd.Series(seconds, name=f"seconds_to_{target:.2f}", dtype=float)


def fastest(
    board: pd.DataFrame, runs: pd.DataFrame | None = None, thresholds: Sequence[float] = THRESHOLDS
) -> dict[str, Any]:
    """Per threshold ("0.80"), the configuration of `board` whose runs reach it in the least
    mean time, or None: each of its runs must reach it; only its best-timed runs count (its
    clean ones when it has any: another process's load would lengthen the time). Keys:
    configuration (the board's label), seconds, runs, test_accuracy, row (the board's index).

    `runs` (the board's runs, with their `best_val_accuracy`) spares the curves of the runs
    that never reached the lowest threshold: two queries a run add up over 1,000 runs."""
    groups = _best_timed_runs(board)
    peak = {} if runs is None else numbers(runs, M.BEST_VAL_ACCURACY).set_axis(runs["run_id"])

    def may_reach(ids: list[str], target: float) -> bool:  # a run without the metric: may
        return not any(peak.get(r, float("nan")) < target for r in ids)  # NaN < x: False

    lowest = min(thresholds, default=0.0)
    read = curves(r for ids in groups.values() if may_reach(ids, lowest) for r in ids)
    out: dict[str, Any] = {}
    for target in thresholds:
        best = None
        for i, ids in groups.items():
            if not all(r in read for r in ids):
                continue
            values = time_to_accuracy(ids, target, read)
            if values.isna().any():
                continue
            if best is None or float(values.mean()) < best["seconds"]:
                row = board.loc[i]
                best = {"configuration": str(row["label"]), "seconds": float(values.mean()),
                        "runs": len(ids), "test_accuracy": _float(row.get(M.TEST_ACCURACY)),
                        "row": i}  # fmt: skip
        out[f"{target:.2f}"] = best
    return out


def _best_timed_runs(board: pd.DataFrame) -> dict[Any, list[str]]:
    """Board row -> the run ids of that configuration's best-timed runs (summarize's
    `timing`: clean when any run of it was)."""
    if board.empty:
        return {}
    return {
        i: [r for r, t in zip(row["run_ids"], row["timings"], strict=True) if t == row["timing"]]
        for i, row in board.iterrows()
    }


def _float(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def time_to_accuracy_section(board: pd.DataFrame, found: Mapping[str, Any]) -> str:
    """The report's section: per threshold the fastest configuration (`fastest`)."""
    head = (
        f"{TITLE}\n\nPer validation accuracy, the configuration whose runs first reach it in "
        "the least training time: seconds of `fit` (each epoch's training and validation) up "
        "to the first epoch at or above it, mean over the configuration's runs, each of which "
        "must reach it (clean runs when it has any). Test accuracy is the configuration's "
        "mean at the end of its training."
    )
    rows = []
    for key, best in found.items():
        if best is None:
            rows.append([f"≥ {key}", "none reached it", "—", "—", "—"])
            continue
        row = board.loc[best["row"]]
        rows.append([f"≥ {key}", best["configuration"], num(best["seconds"], 0), best["runs"],
                     mean_std(row, M.TEST_ACCURACY, 3)])  # fmt: skip
    return head + "\n\n" + table(
        "validation accuracy | fastest configuration | seconds | runs | test accuracy",
        rows,
        right=(2, 3),
    )


def summary(found: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form (issue 30's `time_to_accuracy`, keyed by threshold), rows dropped."""
    return {
        key: None if best is None else {k: v for k, v in best.items() if k != "row"}
        for key, best in found.items()
    }

