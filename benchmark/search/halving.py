"""Successive halving within a wall-clock budget, then seed confirmation: the plan and the
next job, decided from what the study holds (nothing else), so resume and workers come free.

Why fresh trainings per rung: SMAC3's successive-halving intensifier and BOHB treat a
real-valued budget as a new run at that budget, and keep the incumbent from the highest budget
observed. Optuna's pruners (median, Hyperband) instead stop one long run part-way, comparing
trials at an epoch of a schedule sized for the full length: under cosine or one-cycle that
ranks what learns fast, not what ends best (measured here: short trials reversed several
full-length findings). So rung r trains each survivor afresh for `epochs[r]` epochs with its
whole schedule (warm-up, decay, early-stopping patience) scaled to that length
(`scaled_config`); rung 0's candidates come from the space's sampler; each rung keeps the
best 1/eta by validation accuracy; the last rung runs at full length. Then the top
`confirm_top` are trained on the other seeds at full length and the winner is the best mean
validation accuracy over seeds: a one-seed best is optimistic (the winner's curse).

May import: benchmark.config (the search's other modules import this one).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmark.config import TrialConfig

EXPLORE, CONFIRM = "explore", "confirm"  # the tag benchmark.stage
WAIT = "wait"  # next_job: nothing to start now, but trials that decide the next are running
MAX_DUPLICATES = 3  # rung 0 ends when its sampler re-proposed this many times its quota


@dataclass(frozen=True)
class HalvingPlan:
    """Rung r trains `quotas[r]` candidates for `epochs[r]` epochs; then the top
    `confirm_top` of the last rung train seeds 1..seeds-1 at `epochs[-1]`. Stored with the
    study (JSON), with the budget and the costs it was planned from."""

    epochs: tuple[int, ...]
    quotas: tuple[int, ...]
    eta: int
    confirm_top: int
    seeds: int
    budget_s: float
    epoch_s: float  # one epoch of an average candidate, measured by the probe
    overhead_s: float  # per trial: process hand-over, build, tracing, evaluation, logging

    def cost(self, epochs: int, key: str | None = None) -> float:
        """Planned seconds of one trial of `epochs` epochs (any configuration: the probe
        timed an average one)."""
        return self.overhead_s + epochs * self.epoch_s

    def total_s(self) -> float:
        explore = sum(q * self.cost(e) for e, q in zip(self.epochs, self.quotas, strict=True))
        return explore + self.confirm_top * (self.seeds - 1) * self.cost(self.epochs[-1])

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> HalvingPlan:
        raw = json.loads(text)
        return cls(**{**raw, "epochs": tuple(raw["epochs"]), "quotas": tuple(raw["quotas"])})

    def lines(self) -> list[str]:
        """The plan as the search prints it before training."""
        out = [
            f"rung {r}: {q} candidate(s) x {e} epochs, about {_m(q * self.cost(e))}"
            for r, (e, q) in enumerate(zip(self.epochs, self.quotas, strict=True))
        ]
        confirm = self.confirm_top * (self.seeds - 1)
        out.append(
            f"confirm: top {self.confirm_top} x {self.seeds - 1} more seed(s) x "
            f"{self.epochs[-1]} epochs ({confirm} trainings), about "
            f"{_m(confirm * self.cost(self.epochs[-1]))}"
        )
        out.append(
            f"planned {_m(self.total_s())} of a {_m(self.budget_s)} budget (eta {self.eta}; "
            f"{self.epoch_s:.2f} s an epoch, {self.overhead_s:.1f} s a trial)"
        )
        return out


def _m(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def rung_epochs(epochs: int, eta: int, min_epochs: int) -> tuple[int, ...]:
    """Full length, then each shorter rung 1/eta of the next, down to `min_epochs`."""
    out = [epochs]
    while round(out[0] / eta) >= max(min_epochs, 1) and round(out[0] / eta) < out[0]:
        out.insert(0, round(out[0] / eta))
    return tuple(out)


def quotas_for(n0: int, rungs: int, eta: int, confirm_top: int) -> tuple[int, ...]:
    """n0 candidates, 1/eta kept at each rung, never fewer than the finalists confirmed."""
    return tuple(max(math.ceil(n0 / eta**r), min(confirm_top, n0)) for r in range(rungs))


def plan_halving(
    budget_s: float,
    *,
    epochs: int,
    epoch_s: float,
    overhead_s: float,
    eta: int = 3,
    min_epochs: int | None = None,
    confirm_top: int = 2,
    seeds: int = 3,
    max_candidates: int | None = None,
) -> HalvingPlan:
    """The most rung-0 candidates whose rungs and confirmation fit `budget_s`.

    With fewer rungs each candidate costs more, so the plan with the most rungs (down to
    `min_epochs`, default epochs/eta^2) is tried first; when not even `confirm_top`
    candidates fit, the shorter rungs are dropped one by one. When nothing fits, the
    smallest plan is returned (its total says by how much it overruns).
    """
    min_epochs = min_epochs or max(1, round(epochs / eta**2))
    all_rungs = rung_epochs(epochs, eta, min_epochs)
    cap = max_candidates or 10_000
    plan = None
    for drop in range(len(all_rungs)):
        rungs = all_rungs[drop:]
        for n0 in range(min(confirm_top, cap), cap + 1):
            quotas = quotas_for(n0, len(rungs), eta, confirm_top)
            candidate = HalvingPlan(rungs, quotas, eta, confirm_top, seeds, budget_s,
                                    epoch_s, overhead_s)  # fmt: skip
            if candidate.total_s() > budget_s:
                break
            plan = candidate
        if plan is not None and (len(rungs) == 1 or plan.quotas[0] > plan.quotas[1]):
            return plan
        plan = None
    rungs = all_rungs[-1:]
    quotas = quotas_for(min(confirm_top, cap), 1, eta, confirm_top)
    return HalvingPlan(rungs, quotas, eta, confirm_top, seeds, budget_s, epoch_s, overhead_s)


def scaled_config(cfg: TrialConfig, epochs: int) -> TrialConfig:
    """`cfg` as a complete training of `epochs` epochs: warm-up and early-stopping patience
    keep their share of the full length (the schedules scale with `epochs` themselves)."""
    if epochs == cfg.epochs:
        return cfg
    share = epochs / cfg.epochs
    warmup = round(cfg.warmup_epochs * share)
    patience = max(1, round(cfg.early_stopping_patience * share))
    return cfg.replace(
        epochs=epochs,
        warmup_epochs=min(warmup, epochs),
        early_stopping_patience=patience if cfg.early_stopping_patience else 0,
    )


Cost = Callable[..., float]  # cost(epochs, key=None): seconds of one training


@dataclass(frozen=True)
class Record:
    """One trial of the study as the scheduler sees it."""

    params: dict[str, Any]
    rung: int
    stage: str
    seed: int  # offset from the config's seed
    state: str  # complete | running | waiting | failed | pruned
    value: float | None = None
    number: int = -1

    @property
    def key(self) -> str:
        return json.dumps(self.params, sort_keys=True, default=str)


@dataclass(frozen=True)
class Job:
    """What the next trial trains: `params` None = a new candidate from the sampler."""

    rung: int
    stage: str = EXPLORE
    seed: int = 0
    params: dict[str, Any] | None = None

    def attrs(self) -> dict[str, Any]:
        return {"halving_rung": self.rung, "halving_stage": self.stage, "halving_seed": self.seed}


STARTED = ("complete", "running", "waiting", "failed", "pruned")


def at_rung(records: Sequence[Record], rung: int, stage: str = EXPLORE) -> list[Record]:
    """The records of one rung (confirmations: stage CONFIRM at the last rung)."""
    return [r for r in records if r.rung == rung and r.stage == stage]


def config_keys(records: Sequence[Record], states: Sequence[str] = STARTED) -> set[str]:
    """The configurations among `records` in one of `states` (a rung's quota counts these)."""
    return {r.key for r in records if r.state in states}


def ranked(records: Sequence[Record]) -> list[Record]:
    """Completed records, one per configuration (its best), best validation accuracy first."""
    best: dict[str, Record] = {}
    for r in records:
        if r.state == "complete" and (r.key not in best or r.value > best[r.key].value):
            best[r.key] = r
    return sorted(best.values(), key=lambda r: (-r.value, r.number))


def next_job(plan: HalvingPlan, records: Sequence[Record], quotas: Sequence[int],
             left_s: float = math.inf, cost: Cost | None = None) -> Job | str:  # fmt: skip
    """The next training, WAIT, or "" when the search is done (rungs and confirmation).

    A survivor is promoted only if its own trainings from here on (the rungs left and its
    confirmation seeds, at its own cost) fit `left_s`; the next in rank takes its place.

    A queued trial with nothing running (an interrupted trial queued again on resume, a
    survivor queued by a worker stopped before it started it) is this worker's to take: no
    one else will start it, and waiting for it never ends. Job(rung=0) without params lets
    the next `optimize` take it (Optuna starts queued trials first, and `job_of` reads its
    rung); should another worker take it first, this one trains a new rung-0 candidate."""

    def affordable(rec: Record, rung: int) -> bool:
        path = [e for e, q in zip(plan.epochs[rung:], quotas[rung:], strict=True) if q]
        confirm = [plan.epochs[-1]] * (plan.seeds - 1)
        return sum((cost or plan.cost)(e, rec.key) for e in path + confirm) <= left_s

    job = _scheduled(plan, records, quotas, affordable)
    if (
        job == WAIT
        and config_keys(records, ("waiting",))
        and not config_keys(records, ("running",))
    ):
        return Job(rung=0)
    return job


def _scheduled(plan: HalvingPlan, records: Sequence[Record], quotas: Sequence[int],
               affordable: Callable[[Record, int], bool]) -> Job | str:  # fmt: skip
    """next_job's schedule: fill each rung in turn, survivors once the rung below is done.
    A rung no survivor could afford leaves the finalists to the rung below."""
    source: list[Record] = []  # the last rung that ran: where survivors come from
    for r, quota in enumerate(quotas):
        if quota == 0:
            continue
        here = at_rung(records, r)
        started = config_keys(here)
        if len(started) < quota:
            if r == 0:
                if _duplicates(here) < MAX_DUPLICATES * quota:
                    return Job(rung=r)
            else:
                if config_keys(source, ("running", "waiting")):
                    return WAIT  # survivors are chosen once the rung below has finished
                going = [c for c in ranked(source) if c.key in started or affordable(c, r)]
                for rec in going[:quota]:
                    if rec.key not in started:
                        return Job(rung=r, params=rec.params)
        if config_keys(here, ("running", "waiting")):
            return WAIT
        source = here or source
    return _confirm_job(plan, records, source)


def _duplicates(records: Sequence[Record]) -> int:
    return len(records) - len({r.key for r in records})


def finalists(plan: HalvingPlan, records: Sequence[Record]) -> list[Record]:
    """The top `confirm_top` of the last rung that completed anything."""
    for r in reversed(range(len(plan.epochs))):
        if ranked(at_rung(records, r)):
            return ranked(at_rung(records, r))[: plan.confirm_top]
    return []


def _confirm_job(plan: HalvingPlan, records: Sequence[Record], last: Sequence[Record]) -> Job | str:
    """Each finalist at full length on every seed; seed 0 is its last-rung run when that
    rung was full length."""
    if config_keys(last, ("running", "waiting")):
        return WAIT
    full = plan.epochs[-1]
    pending = False
    for fin in finalists(plan, records):
        for seed in range(plan.seeds):
            done = [
                r for r in records
                if r.key == fin.key and r.seed == seed and r.state in STARTED
                and (r.stage == CONFIRM or (seed == 0 and plan.epochs[r.rung] == full))
            ]  # fmt: skip
            if not done:
                return Job(rung=len(plan.epochs) - 1, stage=CONFIRM, seed=seed, params=fin.params)
            pending = pending or any(r.state in ("running", "waiting") for r in done)
    return WAIT if pending else ""


def winner(plan: HalvingPlan, records: Sequence[Record]) -> tuple[Record, list[float]] | None:
    """The finalist with the best mean validation accuracy over its full-length seeds, and
    those values (seed order)."""
    full = plan.epochs[-1]
    best = None
    for fin in finalists(plan, records):
        values = {
            r.seed: r.value for r in records
            if r.key == fin.key and r.state == "complete"
            and (r.stage == CONFIRM or plan.epochs[r.rung] == full)
        }  # fmt: skip
        if values:
            scores = [values[s] for s in sorted(values)]
            if best is None or statistics.fmean(scores) > statistics.fmean(best[1]):
                best = (fin, scores)
    return best
