"""Survivor selection of a halving search: which configurations of a finished rung go on.

A rule orders a rung's completed configurations, the first to go on first; the scheduler
(benchmark.search.halving) takes them in that order up to the next rung's quota, passing
over any whose own trainings from there on no longer fit the time left, and confirms the
first `confirm_top` of the last rung on every seed. That is the only place survivors are
chosen, so a new way to choose them is one registered function here, named by a space's
`halving: survivors:` key (docs/extending.md shows one, with its test).

May import: benchmark.registry (below every other search module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from benchmark.registry import Registry


class Record(Protocol):
    """What a rule reads of a trial (benchmark.search.halving.Record has it)."""

    key: str  # the configuration (benchmark.search.names.config_key of its params)
    params: dict[str, Any]
    state: str  # complete | running | waiting | failed | pruned
    value: float | None  # validation accuracy (complete trials)
    number: int  # the Optuna trial number: the order trials began


Rule = Callable[[Sequence[Record]], list[Record]]
SURVIVORS: Registry[Rule] = Registry("survivor rule")
DEFAULT = "top"


def best_per_config(records: Sequence[Record]) -> list[Record]:
    """The completed records, one per configuration (its best validation accuracy), in the
    order they first finished: what every rule starts from."""
    best: dict[str, Record] = {}
    for r in sorted(records, key=lambda r: r.number):
        if r.state == "complete" and (r.key not in best or r.value > best[r.key].value):
            best[r.key] = r
    return list(best.values())


@SURVIVORS.register
def top(records: Sequence[Record]) -> list[Record]:
    """Best validation accuracy first (ties: the earlier trial): successive halving as
    Jamieson & Talwalkar and Hyperband define it."""
    return sorted(best_per_config(records), key=lambda r: (-r.value, r.number))


@SURVIVORS.register
def diverse(records: Sequence[Record]) -> list[Record]:
    """The best of each model family first (families in the order of their best), then
    each family's second, and so on. Why: a short rung favours what learns fast; a family
    that starts slowly (residual nets under a long warm-up) would lose every place to the
    other before either has trained at length."""
    by_family: dict[str, list[Record]] = {}
    for r in top(records):
        by_family.setdefault(str(r.params.get("model", "")), []).append(r)
    out: list[Record] = []
    for depth in range(max((len(v) for v in by_family.values()), default=0)):
        out += [group[depth] for group in by_family.values() if depth < len(group)]
    return out
