"""A halving plan fitted to the time left, at every step of the search: the quotas of the
rungs not yet full shrink when time runs short (never the confirmation), rung 0 replaces a
candidate that learned nothing while time allows, and the last rung grows into time to spare,
with each trained configuration costed at its own epoch time (halving.Costs, the search's one
cost model).

May import: benchmark.search.halving, .survivors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchmark.search.halving import (
    CONFIRM,
    STARTED,
    Cost,
    HalvingPlan,
    Record,
    at_rung,
    config_keys,
    finalists,
    largest_ladder,
)
from benchmark.search.survivors import best_per_config


@dataclass
class Progress:
    """The plan's quotas after shrinking to the time left, why they shrank, and the seconds
    their trainings not yet started will take at the measured costs (the progress ETA)."""

    quotas: list[int]
    notes: list[str] = field(default_factory=list)
    need_s: float = 0.0


def fit(plan: HalvingPlan, records: Sequence[Record], left_s: float, cost: Cost) -> Progress:
    """Fit the quotas of rungs not yet full to `left_s`: first as a smaller plan of the same
    shape (the most rung-0 candidates whose 1/eta ladder, what has started included, fits
    at the measured costs); when none fits, cut rung 0's new candidates, then the middle
    rungs, then the last, down to `confirm_top`, and skip middle rungs not begun.
    Confirmation is never cut. Survivors and finalists already known are costed as
    themselves (`halving.Costs`). Time to spare (the probe overestimated) goes to the last rung:
    see `_grow_last`."""
    quotas = list(plan.quotas)
    started = [len(config_keys(at_rung(records, r))) for r in range(len(quotas))]
    floor = [max(s, min(plan.confirm_top, q)) for s, q in zip(started, quotas, strict=True)]

    def need() -> float:
        explore = sum(_rung_need(plan, records, r, q, cost) for r, q in enumerate(quotas))
        return explore + _confirm_need(plan, records, cost)

    progress = Progress(quotas)
    if need() > left_s and (fitted := _replan(plan, started, need, quotas, left_s)) is not None:
        quotas[:] = fitted
    last = len(quotas) - 1
    order = [0, *range(1, last), last]
    for r in order:
        while need() > left_s and quotas[r] > floor[r]:
            quotas[r] -= 1
    for r in range(1, last):  # skip a middle rung nobody began
        if need() > left_s and started[r] == 0:
            quotas[r] = 0
    if dead := _replace_dead(plan, records, quotas, need, left_s):
        progress.notes.append(f"{dead} candidate(s) learned nothing (validation at chance): "
                              f"rung 0 grows to {quotas[0]} to replace them")  # fmt: skip
    grown = _grow_last(plan, records, quotas, need, left_s, cost)
    if grown:
        progress.notes.append(f"time to spare: the last rung grows to {quotas[-1]} candidates "
                              f"(planned {plan.quotas[-1]})")  # fmt: skip
    elif any(q < p for q, p in zip(quotas, plan.quotas, strict=True)):
        progress.notes.append(
            f"time short: rungs shrunk to {quotas} candidates (planned {list(plan.quotas)})"
        )
    progress.need_s = need()
    return progress


def _rung_need(plan: HalvingPlan, records: Sequence[Record], rung: int, quota: int,
               cost: Cost) -> float:  # fmt: skip
    """Seconds of rung `rung`'s trainings not yet started: the survivors the rung below
    ranks first as themselves, the rest (new candidates) at the median cost."""
    here = config_keys(at_rung(records, rung))
    slots = max(quota - len(here), 0)
    below = plan.order(at_rung(records, rung - 1)) if rung else []
    known = [r.key for r in below[:quota] if r.key not in here][:slots]
    epochs = plan.epochs[rung]
    return sum(cost(epochs, key) for key in known) + (slots - len(known)) * cost(epochs)


def _confirm_need(plan: HalvingPlan, records: Sequence[Record], cost: Cost) -> float:
    """Seconds of the confirmation trainings not yet started: the finalists as ranked now
    (the leaders of the highest rung so far) as themselves, the places not yet taken at the
    median cost."""
    full, seeds = plan.epochs[-1], range(1, plan.seeds)
    done = {(r.key, r.seed) for r in records if r.stage == CONFIRM and r.state in STARTED}
    fins = finalists(plan, records)
    left = [cost(full, f.key) for f in fins for s in seeds if (f.key, s) not in done]
    return sum(left) + (plan.confirm_top - len(fins)) * len(seeds) * cost(full)


def _replace_dead(plan: HalvingPlan, records: Sequence[Record], quotas: list[int],
                  need: Callable[[], float], left_s: float) -> int:  # fmt: skip
    """A rung-0 place for each rung-0 candidate that finished at or below chance (a diverged
    net ranks nothing: two of flowers17-auto's first three did), while the time left allows
    it and rung 1 still has places to fill; at most twice the planned rung 0."""
    if len(quotas) < 2 or len(config_keys(at_rung(records, 1))) >= quotas[1]:
        return 0
    done = [r for r in best_per_config(at_rung(records, 0)) if r.state == "complete"]
    dead, added = sum(not plan.learned(r) for r in done), 0
    while added < dead and quotas[0] < 2 * plan.quotas[0]:
        quotas[0] += 1
        if need() > left_s:
            quotas[0] -= 1
            break
        added += 1
    return added


def _grow_last(
    plan: HalvingPlan,
    records: Sequence[Record],
    quotas: list[int],
    need: Callable[[], float],
    left_s: float,
    cost: Cost,
) -> bool:
    """More full-length candidates when the time left allows them with one full training
    of slack, up to half the candidates of the rung before: a plan made from a pessimistic
    probe would otherwise end early with its budget unspent. Only once the rung before has
    finished (its ranking is known) and before confirmation starts (its finalists must not
    change under it)."""
    last = len(quotas) - 1
    before = at_rung(records, last - 1) if last else []
    busy = config_keys(before, ("running", "waiting"))
    if (not last or len(config_keys(before)) < quotas[last - 1] or busy
            or any(r.stage == CONFIRM for r in records)):  # fmt: skip
        return False
    full, grown = cost(plan.epochs[-1]), False
    most = len(best_per_config(before)) // 2  # still a halving: at most half the rung before
    while quotas[last] < most and need() + 2 * full <= left_s:
        quotas[last] += 1
        grown = True
    return grown


def _replan(plan: HalvingPlan, started: list[int], need: Callable[[], float],
            quotas: list[int], left_s: float) -> list[int] | None:  # fmt: skip
    """The largest ladder of the plan's shape (never below what has started, never above
    the plan) whose remaining trainings fit: `largest_ladder` over the time left; `need`
    reads `quotas` as they are set here."""
    saved = list(quotas)

    def fits(ladder: tuple[int, ...]) -> bool:
        quotas[:] = [min(max(q, s), p) for q, s, p in zip(ladder, started, plan.quotas,
                                                           strict=True)]  # fmt: skip
        return need() <= left_s

    found = largest_ladder(started[0], plan.quotas[0], len(plan.quotas), plan.eta,
                           plan.confirm_top, fits)  # fmt: skip
    fitted = None
    if found is not None:
        fits(found)
        fitted = list(quotas)
    quotas[:] = saved
    return fitted
