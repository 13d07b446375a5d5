"""Where a configuration came from: which search found the best one (`found_by` in
`reports/<dataset>.json`), and which were trained by hand with `train` (marked in the
leaderboard, their best named apart as `best_by_hand`).

Why the difference matters: the suite claims that its search, given a budget, finds what a
skilled person finds. A configuration someone picked and trained by hand stays in the tables,
but the headline best is chosen among those a search found (stats.searched), and its JSON
says which search, with what space, budget and wall time.

May import benchmark.metrics and benchmark.report.load, .stats, .summary, .budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from benchmark import metrics as M
from benchmark.report.budget import Study
from benchmark.report.load import TAG_PARENT, T, col
from benchmark.report.stats import best_by_hand_row
from benchmark.report.summary import best_summary

BY_HAND = "by hand"  # found_by.strategy of a configuration no search trained
MARK = " (by hand)"  # after a hand-trained configuration's name in the leaderboard


def found_by(studies: list[Study], run_ids: Sequence[str]) -> dict[str, Any]:
    """The search that trained most of these runs: its strategy, latest parent run of
    theirs, space file, budget, wall time (all its parent runs) and, when the configuration
    was a warm-started candidate, the earlier run it was queued from (else null)."""
    ids = set(run_ids)
    count, study = max(((int(s.runs["run_id"].isin(ids).sum()), s) for s in studies),
                       key=lambda held: held[0], default=(0, None))  # fmt: skip
    if not count or study is None:
        return {"strategy": BY_HAND, "parent_run_id": None, "space": None,
                "budget_minutes": None, "wall_s": None, "warm_start": None}  # fmt: skip
    mine = study.runs[study.runs["run_id"].isin(ids)]
    parents = study.parents[study.parents["run_id"].isin(set(col(mine, T(TAG_PARENT))))]
    parent = (parents if len(parents) else study.parents).iloc[-1]
    candidate = study.runs[study.runs["point"].isin(set(mine["point"]))]
    warm = col(candidate, T(M.TAG_WARM_START)).dropna()
    return {
        "strategy": study.strategy,
        "study_name": study.name,
        "parent_run_id": str(parent["run_id"]),
        "parent_runs": len(study.parents),
        "space": study.tag("space_file"),
        "budget_minutes": study.number("budget_minutes"),
        "wall_s": round(study.wall_s, 1),
        "trainings": len(study.runs),
        "warm_start": str(warm.iloc[0]) if len(warm) else None,
    }


def best_by_hand(done: pd.DataFrame, board: pd.DataFrame) -> dict[str, Any] | None:
    """The best configuration trained by hand only, as the JSON's `best` is written."""
    row = best_by_hand_row(board)
    if row is None:
        return None
    return best_summary(done, row) | {"found_by": found_by([], row["run_ids"])}


def _mixed(board: pd.DataFrame) -> bool:
    """Some rows trained by hand and some found by a search: only then is a mark news (a
    store of hand-trained runs only has its best among them, as before searches existed)."""
    return "by_hand" in board and board["by_hand"].astype(bool).nunique() == 2


def marked(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard with hand-trained configurations marked after their name."""
    if not _mixed(board):
        return board
    hand = board["by_hand"].astype(bool)
    return board.assign(label=board["label"].where(~hand, board["label"] + MARK))


def hand_note(board: pd.DataFrame) -> str:
    """The leaderboard's note on hand-trained rows; empty unless a search found others."""
    if not _mixed(board):
        return ""
    return (
        f"\n\n{MARK.strip()}: trained with `python -m benchmark train`, outside any search. "
        "These rows are ranked like the others, but the best configuration (Findings, the "
        "JSON summary's `best`) is chosen among those a search found; the best of these is "
        "the JSON's `best_by_hand`."
    )
