"""What the search does when a trial is stopped from outside, so a rerun leaves every grid
point complete exactly once, in Optuna and as one FINISHED MLflow run.

- A stopped trial (SIGTERM, Ctrl-C, a full disk) is failed without a `fail_reason`: the next
  run of the command queues it again (study.requeue_interrupted).
- A trial process killed alone (kill -9 of it, the OOM killer) is retried the same way once;
  killed again, the configuration itself is the likely cause and it fails for real.
- A retried trial first looks for a FINISHED run of its earlier attempts with the same run
  name: a stop that came after the trial process had finished its run, but before Optuna
  recorded the value, must not train (and log) the same configuration twice.
May import: benchmark.stop, benchmark.train.diskspace, benchmark.metrics, benchmark.search.study.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import mlflow
import optuna

from benchmark import metrics as M
from benchmark import stop
from benchmark.runfilter import literal
from benchmark.search.study import grid_left, stored_trial
from benchmark.train.diskspace import space_warning

KILLS_RETRIED = 1  # a trial process killed alone is retried this many times


def interrupted(trial: optuna.Trial, exc: BaseException) -> None:
    """Mark a trial that `exc` stopped as interrupted (queued again on the next run), with
    the reason; never raises: the store may be the full disk that stopped it."""
    with contextlib.suppress(Exception):
        trial.set_user_attr("interrupted", stop.reason(exc)[:500])


def retry_killed(
    trial: optuna.Trial, exc: stop.TrialKilled, store: optuna.storages.BaseStorage
) -> bool:
    """Whether a trial whose process a signal killed is queued again (True: marked
    interrupted) or fails as the configuration's own failure (False). `store`: the study's."""
    stored = stored_trial(store, trial.study.study_name, trial.number)
    kills = int(stored.user_attrs.get("killed", 0))
    if kills >= KILLS_RETRIED:
        return False
    trial.set_user_attr("killed", kills + 1)  # copied to the retry with the other attrs
    trial.set_user_attr("interrupted", str(exc)[:500])
    return True


def finished_before(
    trial: optuna.Trial, store: optuna.storages.BaseStorage, study_name: str, run_name: str
) -> tuple[str, float] | None:
    """(run id, objective) of a FINISHED run named `run_name` that an earlier attempt of this
    retried trial logged, or None (not a retry, or nothing finished). `store`: the study's."""
    attrs = stored_trial(store, study_name, trial.number).system_attrs
    earlier = {str(n) for n in attrs.get("retry_history", [])}
    if not earlier:
        return None
    runs = mlflow.search_runs(
        search_all_experiments=True, output_format="list",
        filter_string=f"tags.study_name = {literal(study_name)} and attributes.status = "
        f"'FINISHED' and attributes.run_name = {literal(run_name)}",
    )  # fmt: skip
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        metrics = run.data.metrics
        value = metrics.get(M.SELECTED_VAL_ACCURACY, metrics.get(M.VAL_ACCURACY))
        if run.data.tags.get("optuna_trial") in earlier and value is not None:
            return run.info.run_id, value
    return None


def warn_low_space(search: Any, printer: Callable[[str], Any]) -> None:
    """One line before training when the store's filesystem looks too small for the runs
    left (grid: unclaimed points x seeds; optuna: trials left x seeds)."""
    space = search.space
    if space.strategy == "grid":
        left = grid_left(search.study, space)["unclaimed"]
    elif space.strategy == "optuna":
        left = search.total - sum(t.state.is_finished() for t in search.study.trials)
    else:
        return  # halving: its plan decides the trainings, once timed
    with contextlib.suppress(Exception):  # a warning must never stop a search
        if line := space_warning(left * search.seeds, search.study_name):
            printer(line)
