"""The lab's answers: what each report says first, from the runs the lab command tagged
`lab_task` (task1: architectures with and without augmentation; task2: shift + grayscale
added to task 1's best), as markdown and as the `lab` object of `<dataset>.json`.

May import benchmark.metrics, benchmark.choices and the report modules load and stats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from benchmark import metrics as M
from benchmark.choices import LAB_DATASETS, WITH_SHIFT_GRAYSCALE, display
from benchmark.report.load import DatasetRuns, T, col, numbers, slug
from benchmark.report.stats import (
    CI_LEVEL,
    DASH,
    augmentation_effects,
    best_row,
    delta_ci,
    mean_std,
    num,
    spearman,
    summarize,
    with_ci,
)

TASK1, TASK2 = "task1", "task2"
TITLE = "## The lab's answers"
BASE_OF = {display("augmentation", v): display("augmentation", k)
           for k, v in WITH_SHIFT_GRAYSCALE.items()}  # fmt: skip


def task_runs(runs: DatasetRuns, task: str) -> pd.DataFrame:
    """The completed runs the lab command trained for `task`."""
    done = runs.complete
    return done[col(done, T(M.TAG_LAB_TASK)) == task]


def _accuracy(row: Mapping[str, Any], runs: pd.DataFrame) -> dict[str, Any]:
    """{mean, std, seeds}: the test accuracy of one configuration, each seed's in order."""
    mine = runs[runs["config"] == row["config"]].sort_values("seed")
    seeds = {int(s): float(v) for s, v in zip(mine["seed"], numbers(mine, M.TEST_ACCURACY),
                                               strict=True)}  # fmt: skip
    std = row[M.TEST_ACCURACY + ":std"]
    return {"mean": _round(row[M.TEST_ACCURACY]), "std": _round(std), "seeds": {
        str(k): _round(v) for k, v in seeds.items()}}  # fmt: skip


def _round(v: Any) -> float | None:
    """6 digits: the text shows 3 of them, and a 4-digit 0.0045 (from 0.004537) read 0.004
    where the same std straight from the runs read 0.005, on one screen."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


def lab_summary(runs: DatasetRuns) -> dict[str, Any] | None:
    """`lab` of `<dataset>.json`: task 1's rows and effects, task 2's comparison; None when
    the lab command has not run on this dataset."""
    t1 = task_runs(runs, TASK1)
    if t1.empty:
        return None
    board = summarize(t1)
    rows = [{"architecture": r["arch_label"], "augmentation": r["aug"],
             "params": int(r[M.PARAM_COUNT]), "overfit": r["overfit"],
             "train_time_s": _round(r[M.TRAIN_TIME]),
             "test_accuracy": _accuracy(r, t1)} for r in board.to_dict("records")]  # fmt: skip
    effects = [{"architecture": e.arch, "augmentation": e.policy, "delta": _round(e.test[0]),
                "ci95": [_round(e.test[1]), _round(e.test[2])]}
               for e in augmentation_effects(board)]  # fmt: skip
    best = best_row(board)
    doc: dict[str, Any] = {"task1": {"rows": rows, "effects": effects, "best": {
        "architecture": best["arch_label"], "augmentation": best["aug"]}}}  # fmt: skip
    if (task2 := _task2(runs, board, t1)) is not None:
        doc["task2"] = task2
    return doc


def _task2(runs: DatasetRuns, board: pd.DataFrame, t1: pd.DataFrame) -> dict[str, Any] | None:
    """Task 2's configuration against the same architecture and base policy in task 1."""
    t2 = task_runs(runs, TASK2)
    if t2.empty:
        return None
    row = summarize(t2).iloc[0]
    base = board[(board["arch"] == row["arch"]) & (board["aug"] == BASE_OF.get(row["aug"]))]
    if base.empty:
        return None
    b = base.iloc[0]
    d = delta_ci(b, row, M.TEST_ACCURACY)
    return {"configuration": f"{row['arch_label']}-aug={b['aug']}",
            "baseline": {"augmentation": b["aug"], "test_accuracy": _accuracy(b, t1)},
            "shift_grayscale": {"augmentation": row["aug"], "test_accuracy": _accuracy(row, t2)},
            "delta": _round(d[0]), "ci95": [_round(d[1]), _round(d[2])]}  # fmt: skip


# --- markdown -----------------------------------------------------------------------------


def lab_section(runs: DatasetRuns, best: Mapping[str, Any] | None = None) -> str:
    """`## The lab's answers`: one short paragraph per task with its figures, then the
    searches' best (`best`: the report's headline best, from <dataset>.json); "" for a
    dataset the lab does not cover that it never ran on."""
    lab = lab_summary(runs)
    if lab is None and runs.dataset not in LAB_DATASETS:
        return ""  # a folder: dataset has no lab to answer
    if lab is None:
        return (f"{TITLE}\n\nThe lab command has not run on this dataset (`python -m "
                f"benchmark lab --datasets {runs.dataset}`): no task-1 runs in this store.")
    parts = [TITLE, _task1_text(runs, lab["task1"])]
    parts.append(_task2_text(lab.get("task2")))
    if best is not None:
        found = (best.get("found_by") or {}).get("strategy")
        how = f" (found by {found})" if found else ""
        parts.append(f"**The searches' best**{how}: `{best.get('run_name', DASH)}`, test "
                     f"accuracy {_ms(best.get('test_accuracy'))} over "
                     f"{len(best.get('seeds') or [])} seed(s), chosen on validation among the "
                     "configurations run on the most seeds (Leaderboard below).")  # fmt: skip
    return "\n\n".join(parts)


def _ms(acc: Mapping[str, Any] | None) -> str:
    if not acc or acc.get("mean") is None:
        return DASH
    if acc.get("std") is None:
        return num(acc["mean"], 3)
    return f"{num(acc['mean'], 3)} ± {num(acc['std'], 3)}"


def _task1_text(runs: DatasetRuns, task1: Mapping[str, Any]) -> str:
    t1 = task_runs(runs, TASK1)
    board = summarize(t1)
    effects = augmentation_effects(board)
    n_arch, seeds = board["arch"].nunique(), int(board["n"].max())
    better = [e for e in effects if e.test[0] > 0]
    sure = [e for e in effects if not math.isnan(e.test[1]) and (e.test[1] > 0 or e.test[2] < 0)]
    best = task1["best"]
    top = board[(board["arch_label"] == best["architecture"])
                & (board["aug"] == best["augmentation"])]
    head = (f"**Task 1: architectures with and without augmentation.** {n_arch} architectures "
            f"(depth, kernel size and dense width varied) × {{none, lab}}, {seeds} seeds each, "
            f"{_epochs(t1)} epochs. The lab's augmentation raised mean test accuracy on "
            f"{len(better)} of {len(effects)} architectures (mean Δ "
            f"{num(_mean([e.test[0] for e in effects]), 3, sign=True)}); the {CI_LEVEL:.0%} CI "
            f"excludes zero for {len(sure)}. Best on validation: `{best['architecture']}` with "
            f"aug={best['augmentation']}, test {mean_std(top.iloc[0], M.TEST_ACCURACY, 3)}.")
    rows = []
    for e in effects:
        arch = board[board["arch_label"] == e.arch].iloc[0]
        none = board[(board["arch_label"] == e.arch) & (board["aug"] == "none")].iloc[0]
        aug = board[(board["arch_label"] == e.arch) & (board["aug"] == e.policy)].iloc[0]
        rows.append(f"| `{e.arch}` | {num(arch[M.PARAM_COUNT], 0)} | "
                    f"{mean_std(none, M.TEST_ACCURACY, 3)} | "
                    f"{mean_std(aug, M.TEST_ACCURACY, 3)} | {with_ci(e.test, 3)} | "
                    f"{none['overfit']} → {aug['overfit']} | "
                    f"{num(none[M.TRAIN_TIME], 0)} → {num(aug[M.TRAIN_TIME], 0)} |")
    table = ("| architecture | params | test, no aug | test, lab aug | Δ [95% CI] | overfit | "
             "train s |\n| --- | ---: | ---: | ---: | ---: | --- | ---: |\n" + "\n".join(rows))
    return head + "\n\n" + table


def _task2_text(task2: Mapping[str, Any] | None) -> str:
    if task2 is None:
        return ("**Task 2: shift + grayscale on the best.** Not run yet: the lab command "
                "trains it once task 1 is complete.")
    lo, hi = task2["ci95"]
    verdict = ("no significant change" if lo is None or lo <= 0 <= hi else
               "a significant gain" if lo > 0 else "a significant loss")  # fmt: skip
    return (f"**Task 2: shift + grayscale on the best.** `{task2['configuration']}` retrained "
            f"with aug={task2['shift_grayscale']['augmentation']} on the same seeds: test "
            f"{_ms(task2['shift_grayscale']['test_accuracy'])} against "
            f"{_ms(task2['baseline']['test_accuracy'])}, Δ {_ci(task2)} ({CI_LEVEL:.0%} CI): "
            f"{verdict}.")


def _ci(effect: Mapping[str, Any]) -> str:
    """A JSON effect's `delta` and `ci95` as the report writes an interval."""
    bounds = [math.nan if x is None else x for x in effect["ci95"]]
    return with_ci((effect["delta"], *bounds), 3)


def _epochs(runs: pd.DataFrame) -> str:
    values = sorted({str(v) for v in col(runs, "params.epochs").dropna()})
    return "/".join(values) or DASH


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else math.nan


# --- across datasets ----------------------------------------------------------------------


def lab_index(labs: Mapping[str, dict | None], skipped: Mapping[str, str]) -> str:
    """README's first section: each dataset's answers in one row, the datasets not run and
    why, and whether task 1's ranking carries over between datasets."""
    rows = []
    for dataset, lab in labs.items():
        if lab is None:
            continue
        t1, t2 = lab["task1"], lab.get("task2")
        effects = t1["effects"]
        up = sum(1 for e in effects if (e["delta"] or 0) > 0)
        best = next(r for r in t1["rows"] if r["architecture"] == t1["best"]["architecture"]
                    and r["augmentation"] == t1["best"]["augmentation"])  # fmt: skip
        t2_text = DASH if t2 is None else _ci(t2)
        rows.append(f"| [{dataset}]({slug(dataset)}.md) | `{best['architecture']}` aug="
                    f"{best['augmentation']}: {_ms(best['test_accuracy'])} | {up} of "
                    f"{len(effects)} | {t2_text} |")  # fmt: skip
    lines = [TITLE, "Test accuracy, mean ± std over seeds; Δ with its 95% CI. Task 1: the "
             "best architecture × policy on validation, and on how many architectures the "
             "lab's augmentation raised test accuracy. Task 2: shift + grayscale added to "
             "that best.", "| dataset | task 1 best (test) | augmentation helped | task 2 Δ "
             "(test) |\n| --- | --- | --- | --- |\n" + "\n".join(rows)]  # fmt: skip
    lines += [f"- **{d}**: not run: {why}" for d, why in skipped.items()]
    lines.append(task1_rank_correlation(labs))
    return "\n\n".join(lines)


def task1_rank_correlation(labs: Mapping[str, dict | None]) -> str:
    """Spearman ρ of mean test accuracy over the task-1 configurations (architecture ×
    policy) that two datasets share: does the lab's ranking carry over?"""
    means = {d: {(r["architecture"], r["augmentation"]): r["test_accuracy"]["mean"]
                 for r in lab["task1"]["rows"]} for d, lab in labs.items() if lab}  # fmt: skip
    names, lines = sorted(means), []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(set(means[a]) & set(means[b]))
            rho = spearman([means[a][k] for k in shared], [means[b][k] for k in shared])
            lines.append(f"| {a} | {b} | {len(shared)} | {num(rho, 2, sign=True)} |")
    if not lines:
        return "### Does task 1's ranking carry over?\n\nOne dataset only: nothing to compare."
    return ("### Does task 1's ranking carry over?\n\nSpearman ρ of mean test accuracy over "
            "the task-1 architecture × policy pairs both datasets trained.\n\n| dataset | "
            "dataset | shared | ρ |\n| --- | --- | ---: | ---: |\n" + "\n".join(lines))
