"""What one search works on, typed once below the modules that read it: the resolved
settings and study (`Search`), and a halving search's plan and wall-clock account (`Budget`).

Why here: the trial slots, the halving bridge and the driver all read the same object; with
its class in the driver (which imports them) they took it untyped.
May import: benchmark.metrics, benchmark.train, benchmark.search.halving, .names, .space,
.storage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from benchmark.search import names
from benchmark.search.halving import HalvingPlan
from benchmark.search.space import SearchSpace
from benchmark.search.storage import redact
from benchmark.train.isolate import TrialPool
from benchmark.train.tracking import Tracking


@dataclass
class Budget:
    """The study's plan and its wall-clock account: what earlier commands spent is stored in
    the study, so a 150-minute search stopped after 100 minutes has 50 left when resumed."""

    plan: HalvingPlan
    spent_before: float
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)  # shrink notes already printed
    need_s: float | None = None  # the trainings not yet started, at the measured costs
    trainings: int | None = None  # all of them as the quotas now stand (a rung may grow)

    def eta(self) -> float:
        """Seconds to the end: the trainings not yet started, at the measured costs. The
        rungs were fitted to the time left, so what outruns it is confirmation, which is
        never skipped: the search will take that long, budget or not (capping at the time
        left printed a negative ETA once the budget was spent). Before any: the time left."""
        return max(self.left(), 0.0) if self.need_s is None else self.need_s

    def spent(self) -> float:
        return self.spent_before + time.monotonic() - self.started

    def left(self) -> float:
        return self.plan.budget_s - self.spent()

    def save(self, study: optuna.Study) -> float:
        """The seconds spent, stored in the study (and returned, for the parent run)."""
        spent = self.spent()
        study.set_user_attr(names.SPENT, spent)
        return spent

    def status(self) -> str:
        return f"budget {self.spent() / 60:.1f}/{self.plan.budget_s / 60:.0f} min"


@dataclass
class Search:
    """What one run of the search command works on: settings resolved once, the study."""

    space: SearchSpace
    dataset: str
    data_dir: str | None
    study_name: str
    storage: str
    store: Any
    study: optuna.Study
    base: dict[str, Any]  # dataset + CLI overrides, over the space's fixed settings
    seeds: int  # per trial (grid, optuna); the finalists' seeds (halving)
    total: int  # trials (or, halving, planned trainings)
    timeout: float | None
    epoch_budget: tuple[int, int, int] | None  # (max_epochs, epochs per run, seeds)
    max_failures: int | None
    workers: int
    isolate: bool
    role: str
    tracking: Tracking  # where the parent run goes (the `mlflow run` run, if any)
    log_models: str = "all"  # which trials keep their model: all | best | none
    budget: Budget | None = None  # strategy halving: the plan and the time spent
    tags: dict[str, str] | None = None  # on the parent and every trial run (the lab's task)
    pool: TrialPool | None = None  # the trial processes, while the slots run (driver)

    def settings(self) -> dict[str, Any]:
        """The resolved settings, as the parent run's tags and params show them."""
        space, halving = self.space, self.space.strategy == "halving"
        resolved = {
            "strategy": space.strategy, "dataset": self.dataset,
            "space_file": shown(space.path), "study_name": self.study_name,
            "storage": redact(self.storage), "seeds": self.seeds, "n_trials": self.total,
            "sampler": space.sampler if space.strategy != "grid" else "grid",
            "pruner": space.pruner.get("type", "median") if space.strategy == "optuna"
            else "none", "workers": self.workers,
        }  # fmt: skip
        if self.epoch_budget is not None:
            resolved["max_epochs"] = self.epoch_budget[0]
        if self.timeout is not None:  # the report's budget column reads it
            resolved["timeout"] = self.timeout
        if halving and self.budget is not None:
            plan = self.budget.plan
            resolved |= {"budget_minutes": round(plan.budget_s / 60, 2), "eta": plan.eta,
                         "confirm_top": plan.confirm_top,
                         "rung_epochs": "-".join(map(str, plan.epochs))}  # fmt: skip
        return resolved


def shown(path: str) -> str:
    """A shipped space as `search_spaces/x.yaml` (same on every machine), others as given."""
    p = Path(path).resolve()
    root = Path(__file__).resolve().parents[2]
    return str(p.relative_to(root)) if p.is_relative_to(root) else path


