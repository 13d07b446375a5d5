"""The report's numbers and how they are written: the leaderboard (`summarize`: seeds of a
configuration -> mean, std, count), augmentation effects with Welch intervals (`delta_ci`),
rank correlation, the Pareto front, and the fixed formats of a number, a mean ± std and an
interval.

May import benchmark.metrics and benchmark.report.load only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from benchmark import metrics as M
from benchmark.report.load import TAG_PARENT, P, T, X, col, numbers, tested_val

DASH = "—"  # any missing number or name
CI_LEVEL = 0.95
SUMMARY_METRICS = (
    M.VAL_ACCURACY,
    M.BEST_VAL_ACCURACY,
    M.BEST_EPOCH,
    M.TEST_ACCURACY,
    M.TEST_ACCURACY_TTA,
    M.STOPPED_EPOCH,
    M.OVERFIT_GAP,
    M.TRAIN_TIME,
    M.IMAGES_PER_S,
    M.CPU_MS_PER_IMAGE,
    M.PROBE_IMAGES_PER_S,
    M.PARAM_COUNT,
    M.FLOPS,
)
# Costs a neighbour's load inflates: a configuration's are read from its best-timed runs only
# (clean, else untagged, else contended: TIMING_RANK), never averaged with worse ones.
COST_METRICS = (M.TRAIN_TIME, M.IMAGES_PER_S, M.CPU_MS_PER_IMAGE)
TIMING_RANK = {"clean": 0, "": 1, "contended": 2}  # "": logged before the load was measured
Row = Mapping[str, Any]  # one summary row: a record of `summarize`'s DataFrame
Delta = tuple[float, float, float]  # difference of means, lower and upper CI bound


CONFIRM_SEEDS = 3  # seeds a configuration needs before it may displace one that has them


def best_row(board: pd.DataFrame) -> pd.Series:
    """The best configuration: the highest validation accuracy among the configurations
    measured on the most seeds, counting up to CONFIRM_SEEDS (board: summarize's, non-empty).

    Why not simply the top of the leaderboard: one seed's validation accuracy moves by a
    point or two (1,000 CIFAR-10 validation images: a standard error of 1.3 pp), so a
    one-seed probe that happens to score half a point higher would otherwise displace a
    configuration confirmed on three seeds, and the report's "best" would rest on one run."""
    return full_seed_rows(searched(board)).iloc[0]


def full_seed_rows(board: pd.DataFrame) -> pd.DataFrame:
    """The configurations measured on the board's most seeds, counting up to CONFIRM_SEEDS:
    the ones a best (best_row) or a time to accuracy (speed) may rest on."""
    if board.empty:
        return board
    need = min(CONFIRM_SEEDS, int(board["n"].max()))
    return board[board["n"] >= need]


def searched(board: pd.DataFrame) -> pd.DataFrame:
    """The rows a headline best may come from: configurations a search found (some run of
    theirs is a search's), not those trained by hand with `train`; every row when no search
    found any (a store of hand-trained runs only). Why: the suite reports what its search
    finds in a budget; a configuration someone picked by hand is shown, never the answer."""
    if "by_hand" not in board:
        return board
    found = board[~board["by_hand"].astype(bool)]
    return found if len(found) else board


def best_by_hand_row(board: pd.DataFrame) -> pd.Series | None:
    """The best of the configurations trained by hand only (best_row's rule), or None."""
    if "by_hand" not in board or not board["by_hand"].astype(bool).any():
        return None
    return best_row(board[board["by_hand"].astype(bool)])


def confirmed(board: pd.DataFrame) -> pd.Series:
    """The leaderboard rows of its first table: configurations trained at full length on 2
    or more seeds. Why apart: a halving rung's shorter training (tag `rung`) and a one-seed
    trial only chose what to train further; ranked among the confirmed ones, a lucky short
    run reads as a rival. False for every row of an empty board."""
    if board.empty:
        return pd.Series(dtype=bool)
    rung = board["rung_run"].astype(bool) if "rung_run" in board else False
    return (board["n"] >= 2) & ~rung


def shown_order(board: pd.DataFrame) -> pd.DataFrame:
    """The board in the order the leaderboard shows it: its confirmed rows, then the rest,
    each ranked on validation (the order of the configuration ids C1, C2, ...)."""
    first = confirmed(board)
    return pd.concat([board[first], board[~first]]) if len(board) else board


def unconfirmed_above(board: pd.DataFrame, best: pd.Series) -> pd.DataFrame:
    """Configurations a search found ranked above `best` (best_row's) on validation, run
    on fewer seeds; not a halving search's shorter rungs: those are shorter trainings that
    only chose which candidates went on, not candidates for more seeds themselves."""
    above = searched(board).loc[: best.name].iloc[:-1]
    if "rung_run" not in above:
        return above
    epochs = pd.to_numeric(above["epochs"], errors="coerce")
    full = pd.to_numeric(pd.Series([best.get("epochs")]), errors="coerce").iloc[0]
    shorter = above["rung_run"].astype(bool) & (epochs < full)
    return above[~shorter]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: mean, std and count of each metric, ranked by validation
    accuracy at the last epoch (test accuracy is shown, never ranked on).

    Costs (COST_METRICS) come from the configuration's best-timed runs: its clean ones when it
    has any; `timing` says which (clean, "" = untagged, contended), `timings` each run's.
    """
    if runs.empty:
        return pd.DataFrame()
    runs = runs.sort_values(["config", "seed", "run_id"]).copy()
    runs[X(M.VAL_ACCURACY)] = tested_val(runs)
    g = runs.groupby("config", sort=True)
    out = g[["label", "arch_label", "arch", "aug", "suffix"]].first()
    out["epochs"] = g[P("epochs")].first() if P("epochs") in runs else np.nan
    out["n"] = g.size()
    out["run_ids"] = g["run_id"].agg(list)
    out["seeds"] = g["seed"].agg(list)
    timing = col(runs, "timing").fillna("").astype(str)
    rank = timing.map(TIMING_RANK).fillna(TIMING_RANK[""])
    best_timed = rank == rank.groupby(runs["config"]).transform("min")
    out["timings"] = timing.groupby(runs["config"]).agg(list)  # beside run_ids
    out["timing"] = rank.groupby(runs["config"]).min().map({v: k for k, v in TIMING_RANK.items()})
    for m in SUMMARY_METRICS:
        values = numbers(runs, m)
        values = (values.where(best_timed) if m in COST_METRICS else values).groupby(runs["config"])
        out[m], out[m + ":std"], out[m + ":n"] = values.mean(), values.std(), values.count()
        out[m + ":min"], out[m + ":max"] = values.min(), values.max()
    out["overfit"] = col(runs, T(M.TAG_OVERFIT)).groupby(runs["config"]).agg(_verdict)
    # by hand: every run of it trained outside a search (`train`: no parent, no study)
    hand = col(runs, T(TAG_PARENT)).isna() & col(runs, T("study_name")).isna()
    out["by_hand"] = hand.groupby(runs["config"]).all()
    out["rung_run"] = col(runs, T(M.TAG_RUNG)).notna().groupby(runs["config"]).all()  # halving
    out["_rank"] = out[M.VAL_ACCURACY].fillna(-np.inf)
    out = out.reset_index().sort_values(["_rank", "label", "config"], ascending=[False, True, True])
    return out.drop(columns="_rank").reset_index(drop=True)


def _verdict(tags: pd.Series) -> str:
    """yes / no when the seeds agree, else "2/3 yes"; missing tags count as unknown."""
    known = [t for t in tags if isinstance(t, str)]
    if not known:
        return DASH
    yes = sum(t == "yes" for t in known)
    if yes in (0, len(known)) and len(known) == len(tags):
        return known[0]
    return f"{yes}/{len(tags)} yes"


def delta_ci(a: Row, b: Row, metric: str) -> Delta:
    """mean(b) - mean(a) of a metric between two summary rows, with its 95% Welch
    t-interval (NaN bounds unless both sides have 2 or more seeds)."""
    (ma, sa, na), (mb, sb, nb) = ((r[metric], r[metric + ":std"], r[metric + ":n"]) for r in (a, b))
    if not (na and nb):
        return math.nan, math.nan, math.nan
    d = float(mb - ma)
    if na < 2 or nb < 2:
        return d, math.nan, math.nan
    va, vb = sa**2 / na, sb**2 / nb
    if va + vb == 0:
        return d, d, d
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = float(stats.t.ppf(0.5 + CI_LEVEL / 2, dof)) * math.sqrt(va + vb)
    return d, d - half, d + half


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Rank correlation; NaN when fewer than 3 points or one side is constant."""
    x, y = pd.Series(x, dtype=float), pd.Series(y, dtype=float)
    ok = x.notna() & y.notna()
    rx, ry = x[ok].rank(), y[ok].rank()
    if ok.sum() < 3 or rx.nunique() < 2 or ry.nunique() < 2:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def pareto_front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats with fewer or as many x, by increasing x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i], i))
    front, best = [], -math.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


@dataclass
class Effect:
    arch: str
    policy: str
    n_none: int
    n_aug: int
    test: Delta
    gap: Delta
    time: Delta
    test_none: tuple[float, float]  # mean, std
    test_aug: tuple[float, float]
    none_label: str = ""  # the two configurations compared, as the board labels them
    aug_label: str = ""


def augmentation_effects(board: pd.DataFrame) -> list[Effect]:
    """Per architecture, each policy against the same architecture without augmentation."""
    rows = board.sort_values(["arch_label", "aug"]).to_dict("records") if len(board) else []
    nones = {r["arch"]: r for r in rows if r["aug"] == "none"}
    return [
        Effect(
            a["arch_label"], b["aug"], a["n"], b["n"],
            *(delta_ci(a, b, m) for m in (M.TEST_ACCURACY, M.OVERFIT_GAP)), _time_delta(a, b),
            (a[M.TEST_ACCURACY], a[M.TEST_ACCURACY + ":std"]),
            (b[M.TEST_ACCURACY], b[M.TEST_ACCURACY + ":std"]), str(a["label"]), str(b["label"]),
        )
        for b in rows
        if b["aug"] != "none" and (a := nones.get(b["arch"])) is not None
    ]  # fmt: skip


def _time_delta(a: Row, b: Row) -> Delta:
    """Δ train time, unless a side was timed only beside other load: its wall time measured
    the neighbours too, so the difference would not be the policy's."""
    if "contended" in (a.get("timing"), b.get("timing")):
        return math.nan, math.nan, math.nan
    return delta_ci(a, b, M.TRAIN_TIME)


# --- formats ----------------------------------------------------------------------------


def has_value(v: Any) -> bool:
    """Not None, NaN or pd.NA: a number (or name) to show."""
    return v is not None and not (isinstance(v, float) and math.isnan(v)) and v is not pd.NA


def num(v: Any, digits: int = 4, sign: bool = False) -> str:
    if not has_value(v):
        return DASH
    text = f"{float(v):+,.{digits}f}" if sign else f"{float(v):,.{digits}f}"
    return text.replace("-", "−")  # a true minus: as wide as the plus, tables line up


def mean_std(row: Row, metric: str, digits: int = 4) -> str:
    """ "0.7123 ± 0.0101" over seeds, the value alone for one seed, "—" for none."""
    n = row[metric + ":n"]
    if not n:
        return DASH
    if n == 1:
        return num(row[metric], digits)
    return f"{num(row[metric], digits)} ± {num(row[metric + ':std'], digits)}"


def with_ci(d: Delta, digits: int = 4) -> str:
    value, lo, hi = d
    if not has_value(value):
        return DASH
    if not has_value(lo):
        return num(value, digits, sign=True)
    return f"{num(value, digits, sign=True)} [{num(lo, digits, True)}, {num(hi, digits, True)}]"


def epoch_range(row: Row) -> str:
    lo, hi = row[M.BEST_EPOCH + ":min"], row[M.BEST_EPOCH + ":max"]
    if not has_value(lo):
        return ""
    return f" (ep {int(lo)})" if lo == hi else f" (ep {int(lo)}–{int(hi)})"
