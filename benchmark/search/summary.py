"""A search's outcome: the summary it returns, its progress lines, and what every parent run
of the study shows (counts, best run; the leaderboard note comes from the caller's `describe`).
May import: benchmark.metrics, benchmark.search.study, benchmark.search.space.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import mlflow
from optuna.trial import TrialState

from benchmark import metrics as M
from benchmark.search import names
from benchmark.search.space import SearchSpace
from benchmark.search.study import best_trial, epochs_trained, study_parents


class Describer(Protocol):
    """What a later stage (the report) adds to a search's parent runs: the CLI passes one in,
    so the search never imports the report."""

    def note(self, summary: SearchSummary, parents: list, parent_id: str,
             space: SearchSpace | None) -> str: ...  # fmt: skip

    def attach(self, dataset: str, parent_id: str) -> None: ...


@dataclass
class SearchSummary:
    study_name: str
    storage: str
    counts: dict[str, int]
    best_params: dict[str, Any] | None = None
    best_value: float | None = None
    best_run_id: str | None = None
    best_seeds: list[float] | None = None  # halving: the winner's validation accuracy per seed
    stopped_reason: str = ""
    durations: list[float] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)  # per trial run trained

    def median_timings(self) -> dict[str, float]:
        """Median of each of M.TIMING_METRICS over the trial runs this search trained."""
        return {
            k: statistics.median(t[k] for t in self.timings if k in t)
            for k in M.TIMING_METRICS
            if any(k in t for t in self.timings)
        }


def progress_line(
    trial,
    counts,
    total,
    took,
    durations,
    spent=None,
    *,
    cap: float | None = None,
    eta: float | None = None,
) -> str:
    """`[done/total] name  value  in took s ... ETA`. The ETA is `eta` when the caller knows
    better (halving: the trainings left at their measured costs, where the median of short
    rung-0 trials would lie about the long ones to come), else the median trial times the
    trials left; `cap` (a timeout's rest plus one trial) bounds it."""
    done = counts["finished"]
    total = max(total, done)  # a halving plan shrunk to the time left counts fewer than ran
    left = max(total - done, 0)
    budget = ""
    if eta is None:
        eta = statistics.median(durations) * left
    if spent is not None:  # an epoch budget ends the study first when it runs out first
        used, limit, trained_here = spent
        budget = f"  epochs {used}/{limit}"
        if trained_here:
            eta = min(eta, sum(durations) / trained_here * max(limit - used, 0))
    if cap is not None:
        eta = min(eta, cap)
    state = trial.state.name.lower()
    value = f"val_accuracy {trial.value:.4f}" if trial.value is not None else state
    if trial.state == TrialState.FAIL:
        value = f"failed: {trial.user_attrs.get('fail_reason', 'interrupted')}"
    elif trial.state == TrialState.PRUNED:
        value = f"pruned at epoch {max(trial.intermediate_values, default=0)}"
    name = trial.user_attrs.get("run_name", str(trial.params))
    if names.DUPLICATE_OF in trial.user_attrs:
        value += f" (as trial {trial.user_attrs['duplicate_of']}: not trained again)"
    return f"[{done}/{total}] {name}  {value}  in {took:.1f} s{budget}  ETA {hms(eta)}"


def hms(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def parent_run_name(role: str, study_name: str, strategy: str) -> str:
    """`search-<study>-<strategy>`: one name per study, so its parents are found together
    (the strategy is not repeated when the study's name already says it)."""
    name = f"{role}-{study_name}"
    return name if strategy in study_name.split("-") else f"{name}-{strategy}"


def log_summary(
    study,
    summary: SearchSummary,
    parent_id: str,
    *,
    space: SearchSpace | None = None,
    dataset: str | None = None,
    seeds: int = 1,
    describe: Describer | None = None,
    best=None,
) -> None:
    """The study's counts, best run and (from `describe`) leaderboard on every parent run of
    the study, so each shows the same; then `describe` may attach the dataset's report to this
    parent (MLflow's hyperparameter example, with the comparison readable in the UI).
    `best(study, summary)` picks the best trial when the best trial's value is not the
    answer (halving: the winner over seeds)."""
    client = mlflow.MlflowClient()
    c = summary.counts
    values = {f"n_{k}": float(v) for k, v in c.items() if k != "waiting"}
    values["epochs_trained"] = float(epochs_trained(study, seeds))
    tags: dict[str, str] = {}
    if (best := (best or best_trial)(study, summary)) is not None:
        tags = {
            M.TAG_BEST_RUN: summary.best_run_id or "",
            M.TAG_BEST_CONFIG: best.user_attrs.get("run_name", ""),
        }
        values[f"best_{M.OBJECTIVE}"] = summary.best_value
        try:
            run = client.get_run(summary.best_run_id) if summary.best_run_id else None
        except mlflow.exceptions.MlflowException:  # logged to another tracking store: no copy
            run = None
        for key in (M.TEST_ACCURACY, M.OVERFIT_GAP, M.TRAIN_TIME, M.PARAM_COUNT):
            if run and key in run.data.metrics:
                values[f"best_{key}"] = run.data.metrics[key]
    parents = study_parents(summary.study_name)
    if parent_id not in {p.info.run_id for p in parents}:  # a store that lags its writes
        parents.append(client.get_run(parent_id))
    tags[M.TAG_STUDY_PARENTS] = str(len(parents))
    if describe is not None:
        tags[M.TAG_NOTE] = describe.note(summary, parents, parent_id, space)
    now = int(time.time() * 1000)
    for p in parents:
        client.log_batch(
            p.info.run_id,
            metrics=[mlflow.entities.Metric(k, v, now, 0) for k, v in values.items()],
            tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()],
        )
    if describe is not None and dataset is not None:
        describe.attach(dataset, parent_id)
