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

The cost model (`Costs`), the plan search (`largest_ladder`) and the typed answer of
`next_job` (a Job, `Wait` or `Done`) live here once; survivor selection is
benchmark.search.survivors.
May import: benchmark.config, benchmark.search.names, .space (the settings), .survivors.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmark.config import TrialConfig
from benchmark.search import names
from benchmark.search.space import HALVING_SEEDS, HalvingSettings
from benchmark.search.survivors import SURVIVORS

EXPLORE, CONFIRM = "explore", "confirm"  # the tag benchmark.stage
CHANCE_TOLERANCE = 1e-6  # float32 rounding of an accuracy, far below one image of any split
MAX_DUPLICATES = 3  # rung 0 ends when its sampler re-proposed this many times its quota
DEFAULTS = HalvingSettings()  # declared once, with the space's other settings


@dataclass(frozen=True)
class Costs:
    """The one cost model of a search: seconds of one training of `epochs` epochs = a fixed
    part per trial (process hand-over, build, tracing, evaluation, logging) + epochs at the
    configuration's own steady epoch time once it has trained (its `Record.key` in `own`),
    else the average candidate's. The dry run prices each configuration with it, the plan
    with the probe's figures, the refits with what the study's runs took.

    Candidates differ by more than the median says: on the CIFAR-10 subset a k5 model with
    two convolutions a block took about 76 s an epoch where the median was about 20 s:
    promoted with 104 minutes left, its 40-epoch run and two confirmations needed about 150."""

    epoch_s: float
    overhead_s: float
    own: Mapping[str, float] = field(default_factory=dict)

    def __call__(self, epochs: float, key: str | None = None) -> float:
        return self.overhead_s + epochs * self.own.get(key, self.epoch_s)


Cost = Callable[..., float]  # cost(epochs, key=None): seconds of one training (a Costs)


@dataclass(frozen=True)
class HalvingPlan:
    """Rung r trains `quotas[r]` candidates for `epochs[r]` epochs; then the top
    `confirm_top` of the last rung train seeds 1..seeds-1 at `epochs[-1]`. Stored with the
    study (JSON), with the budget, the costs it was planned from and the survivor rule."""

    epochs: tuple[int, ...]
    quotas: tuple[int, ...]
    eta: int
    confirm_top: int
    seeds: int
    budget_s: float
    epoch_s: float  # one epoch of an average candidate, measured by the probe
    overhead_s: float  # per trial: process hand-over, build, tracing, evaluation, logging
    survivors: str = DEFAULTS.survivors  # benchmark.search.survivors: who goes on
    chance: float = 0.0  # val accuracy of guessing the commonest class (0: not known)
    ladder_s: float = 0.0  # when the budget fitted no ladder: what the cheapest one needs

    def cost(self, epochs: int, key: str | None = None) -> float:
        """Planned seconds of one trial of `epochs` epochs (the probe timed an average
        configuration: every one is costed alike until it has trained)."""
        return Costs(self.epoch_s, self.overhead_s)(epochs, key)

    def total_s(self) -> float:
        explore = sum(q * self.cost(e) for e, q in zip(self.epochs, self.quotas, strict=True))
        return explore + self.confirm_top * (self.seeds - 1) * self.cost(self.epochs[-1])

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> HalvingPlan:
        raw = json.loads(text)
        return cls(**{**raw, "epochs": tuple(raw["epochs"]), "quotas": tuple(raw["quotas"])})

    def order(self, records: Sequence[Record]) -> list[Record]:
        """A rung's completed configurations, the first to go on first (the plan's rule),
        those at or below `chance` left out unless none is above: when time ran short a rung
        kept all it had, and a diverged CNN (val accuracy 1/17) went on to 25 epochs."""
        ranked = SURVIVORS.get(self.survivors)(records)
        return [r for r in ranked if self.learned(r)] or ranked

    def learned(self, rec: Record) -> bool:
        """Above `chance` (0: not known), with a tolerance: Keras' float32 1/17 is above the
        float64 one."""
        return not self.chance or (rec.value or 0.0) > self.chance + CHANCE_TOLERANCE

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
        if self.ladder_s:
            out.append(f"no halving: at these costs the budget fits no shorter rung, so every "
                       f"candidate trains at full length; a ladder needs about "
                       f"{_m(self.ladder_s)} (--budget-minutes; lab: --budget-factor)")  # fmt: skip
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


def largest_ladder(lo: int, hi: int, rungs: int, eta: int, confirm_top: int,
                   fits: Callable[[tuple[int, ...]], bool]) -> tuple[int, ...] | None:  # fmt: skip
    """The one plan search: the ladder `quotas_for(n0)` with the most rung-0 candidates
    n0 in [lo, hi] that `fits` (cost grows with n0, so the first that does not fit ends
    the search). Planning asks it of the budget, refits of the time left."""
    best = None
    for n0 in range(max(lo, 1), hi + 1):
        ladder = quotas_for(n0, rungs, eta, confirm_top)
        if not fits(ladder):
            break
        best = ladder
    return best


def plan_halving(budget_s: float, *, epochs: int, epoch_s: float, overhead_s: float,
                 eta: int = DEFAULTS.eta, min_epochs: int | None = DEFAULTS.min_epochs,
                 confirm_top: int = DEFAULTS.confirm_top, seeds: int = HALVING_SEEDS,
                 max_candidates: int | None = None,
                 survivors: str = DEFAULTS.survivors) -> HalvingPlan:  # fmt: skip
    """The most rung-0 candidates whose rungs and confirmation fit `budget_s` (the
    defaults are the space's: benchmark.search.space.HalvingSettings).

    With fewer rungs each candidate costs more, so the plan with the most rungs (down to
    `min_epochs`, default epochs/eta^2) is tried first; when not even `confirm_top`
    candidates fit, the shorter rungs are dropped one by one. When nothing fits, the
    smallest plan is returned (its total says by how much it overruns).
    """
    min_epochs = min_epochs or max(1, round(epochs / eta**2))
    all_rungs = rung_epochs(epochs, eta, min_epochs)
    cap = max_candidates or 10_000

    def plan(rungs: tuple[int, ...], quotas: tuple[int, ...]) -> HalvingPlan:
        return HalvingPlan(rungs, quotas, eta, confirm_top, seeds, budget_s, epoch_s,
                           overhead_s, survivors)  # fmt: skip

    for drop in range(len(all_rungs)):
        rungs = all_rungs[drop:]
        quotas = largest_ladder(min(confirm_top, cap), cap, len(rungs), eta, confirm_top,
                                lambda q, r=rungs: plan(r, q).total_s() <= budget_s)  # fmt: skip
        if quotas is not None and (len(rungs) == 1 or quotas[0] > quotas[1]):
            break
    else:
        rungs, quotas = all_rungs[-1:], quotas_for(min(confirm_top, cap), 1, eta, confirm_top)
    chosen = plan(rungs, quotas)
    if len(rungs) == 1 < len(all_rungs) and cap > confirm_top:  # the budget fitted no ladder
        ladder = next(q for n in range(confirm_top + 1, cap + 1)
                      if (q := quotas_for(n, 2, eta, confirm_top))[0] > q[1])  # fmt: skip
        chosen = dataclasses.replace(chosen, ladder_s=plan(all_rungs[-2:], ladder).total_s())
    return chosen


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
    run_id: str | None = None  # the MLflow run it trained (complete trials)

    @property
    def key(self) -> str:
        return names.config_key(self.params)


@dataclass(frozen=True)
class Job:
    """What the next trial trains: `params` None = a new candidate from the sampler."""

    rung: int
    stage: str = EXPLORE
    seed: int = 0
    params: dict[str, Any] | None = None

    def attrs(self) -> dict[str, Any]:
        return {names.RUNG: self.rung, names.STAGE: self.stage, names.SEED: self.seed}


@dataclass(frozen=True)
class Wait:
    """Nothing to start now: trials that decide the next one are running."""


@dataclass(frozen=True)
class Done:
    """Nothing left to start, and why (the search's stopped reason)."""

    reason: str


WAIT = Wait()
Next = Job | Wait | Done  # next_job's answer (and the trial slots' with Job | None)
STARTED = ("complete", "running", "waiting", "failed", "pruned")


def at_rung(records: Sequence[Record], rung: int, stage: str = EXPLORE) -> list[Record]:
    """The records of one rung (confirmations: stage CONFIRM at the last rung)."""
    return [r for r in records if r.rung == rung and r.stage == stage]


def config_keys(records: Sequence[Record], states: Sequence[str] = STARTED) -> set[str]:
    """The configurations among `records` in one of `states` (a rung's quota counts these)."""
    return {r.key for r in records if r.state in states}


def next_job(plan: HalvingPlan, records: Sequence[Record], quotas: Sequence[int],
             left_s: float = math.inf, cost: Cost | None = None) -> Next:  # fmt: skip
    """The next training, WAIT, or Done when rungs and confirmation are done.

    A survivor is promoted only if its own trainings from here on (the rungs left and its
    confirmation seeds, at its own cost) fit `left_s`; the next in order takes its place.

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
               affordable: Callable[[Record, int], bool]) -> Next:  # fmt: skip
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
                going = [c for c in plan.order(source) if c.key in started or affordable(c, r)]
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
    """The first `confirm_top` of the last rung that completed anything."""
    for r in reversed(range(len(plan.epochs))):
        if ordered := plan.order(at_rung(records, r)):
            return ordered[: plan.confirm_top]
    return []


def full_length_seeds(plan: HalvingPlan, records: Sequence[Record], fin: Record,
                      states: Sequence[str] = STARTED) -> dict[int, list[Record]]:  # fmt: skip
    """A finalist's full-length trainings by seed: its confirmations, and seed 0's run at
    the last rung when that rung was full length."""
    full, out = plan.epochs[-1], {}
    for r in records:
        if r.key == fin.key and r.state in states and (
            r.stage == CONFIRM or (r.seed == 0 and plan.epochs[r.rung] == full)
        ):
            out.setdefault(r.seed, []).append(r)
    return out


def _confirm_job(plan: HalvingPlan, records: Sequence[Record], last: Sequence[Record]) -> Next:
    """Each finalist at full length on every seed."""
    if config_keys(last, ("running", "waiting")):
        return WAIT
    pending = False
    for fin in finalists(plan, records):
        done = full_length_seeds(plan, records, fin)
        for seed in range(plan.seeds):
            if seed not in done:
                return Job(rung=len(plan.epochs) - 1, stage=CONFIRM, seed=seed, params=fin.params)
            pending = pending or any(r.state in ("running", "waiting") for r in done[seed])
    return WAIT if pending else Done("rungs and confirmation done")


@dataclass(frozen=True)
class Winner:
    """The confirmed winner: its completed full-length trainings, seed order."""

    seeds: list[Record]

    @property
    def values(self) -> list[float]:
        return [r.value for r in self.seeds]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def first(self) -> Record:
        return self.seeds[0]


def winner(plan: HalvingPlan, records: Sequence[Record]) -> Winner | None:
    """The one winner function: the finalist with the best mean validation accuracy over
    its full-length seeds (a one-seed best is optimistic: the winner's curse)."""
    best = None
    for fin in finalists(plan, records):
        done = full_length_seeds(plan, records, fin, ("complete",))
        found = Winner([done[s][-1] for s in sorted(done)])
        if done and (best is None or found.mean > best.mean):
            best = found
    return best
