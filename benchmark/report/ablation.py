"""The ablation tables: one per ablation parent run, the latest first. An ablation fixes the
best configuration of a search and varies one setting (`ablate --vary`): the augmentation
policy (lab task 2: Δ against no augmentation, per architecture) or a part of the training
recipe (EMA, label smoothing, the batch with its rate scaled, the precision: Δ against the
part's lowest value, which is "off" for the parts, the winner's own batch for batch_size and
float32 for precision).

Which setting an ablation varied is its parent's tag `benchmark.vary`, else read from its runs
(the one logged param besides the seed that differs between them), so stores written before
`--vary` existed read as before. A lab part trains the values the winner did not have: the
winner's own runs (tag `benchmark.baseline_runs`) stand for its own value in the table.

May import benchmark.metrics, benchmark.config and benchmark.report.load, .markdown, .stats.
"""

from __future__ import annotations

import pandas as pd

from benchmark import metrics as M
from benchmark.config import TrialConfig, parse_param
from benchmark.report.load import DatasetRuns, P, T, col
from benchmark.report.markdown import contended_note, cost_cells, table, utc
from benchmark.report.stats import (
    DASH,
    augmentation_effects,
    delta_ci,
    has_value,
    mean_std,
    num,
    summarize,
    with_ci,
)

NOT_VARIED = {"seed", "dataset"}  # the seed differs between the runs of one value anyway
TIMED_PARTS = ("batch_size", "precision")  # parts whose point is speed: their time is said
TITLE = "## Ablation: augmentation policies on one architecture"
TITLE_PARTS = "## Ablations: one setting varied on the best configuration"


def ablation_title(runs: DatasetRuns) -> str:
    """The section's title: the lab's when every ablation varied the policy."""
    varied = {_setting(runs, pid, ablation_runs(runs, pid)) for pid in runs.ablation_ids}
    return TITLE if varied <= {"augmentation", None} else TITLE_PARTS


def ablation_runs(runs: DatasetRuns, pid: str) -> pd.DataFrame:
    """An ablation's completed runs: its own and, for a lab part, the winner's runs that stand
    for its own value (labelled as the search's: they were trained there, not here)."""
    children = runs.children_of([pid])
    ids = _parent_tag(runs, pid, M.TAG_BASELINE_RUNS).split(",")
    t = runs.trials
    baseline = t[t["run_id"].isin(ids) & (t["state"] == "complete")]
    if baseline.empty:
        return children
    return pd.concat([children, baseline.assign(label=baseline["base"] + " (its search's runs)")])


def _parent_tag(runs: DatasetRuns, pid: str, tag: str) -> str:
    value = col(runs.parents.set_index("run_id"), T(tag)).get(pid)
    return value if isinstance(value, str) else ""


def _setting(runs: DatasetRuns, pid: str, children: pd.DataFrame) -> str | None:
    """The setting an ablation varied: its tag, else the one its runs differ in."""
    return _parent_tag(runs, pid, M.TAG_VARY) or varied_setting(children)


def ablations(runs: DatasetRuns) -> str:
    """One table per ablation parent run, the latest first."""
    parents = runs.parents.set_index("run_id")
    parts = []
    ids = sorted(runs.ablation_ids, key=lambda i: (parents.loc[i, "start_time"], i), reverse=True)
    for pid in ids:
        children = ablation_runs(runs, pid)
        board = summarize(children)
        title = f"Ablation run `{pid}` ({utc(parents.loc[pid, 'start_time'])})"
        if board.empty:
            parts.append(f"{title}: no completed trials.")
            continue
        setting = _setting(runs, pid, children)
        if setting in (None, "augmentation"):
            parts.append(f"{title}, ranked by validation accuracy:\n\n" + _policy_table(board))
        else:
            parts.append(f"{title}, `{setting}` varied:\n\n"
                         + _part_table(board, children, setting))  # fmt: skip
    return "\n\n".join(parts)


def varied_setting(children: pd.DataFrame) -> str | None:
    """The setting (a TrialConfig field besides the seed) whose value differs between the
    runs; None when every run has the same (lab task 2's single policy)."""
    for name in TrialConfig.field_names():
        if name not in NOT_VARIED and col(children, P(name)).dropna().nunique() > 1:
            return name
    return None


def _policy_table(board: pd.DataFrame) -> str:
    vs_none = {e.aug_label: e.test for e in augmentation_effects(board)}
    rows = []
    for r in board.to_dict("records"):
        vs = vs_none.get(str(r["label"]))
        rows.append([
            r["label"], r["aug"], r["arch_label"], mean_std(r, M.VAL_ACCURACY),
            mean_std(r, M.TEST_ACCURACY), with_ci(vs) if vs else DASH,
            mean_std(r, M.OVERFIT_GAP), r["overfit"], *cost_cells(r), str(r["n"]),
        ])  # fmt: skip
    heads = ("id | augmentation | architecture | val acc | test acc | Δ test vs none | "
             "overfit gap | overfit | train time (s) | images/s | CPU ms/image | seeds")
    return table(heads, rows, right=(3, 4, 5, 6, 8, 9, 10, 11)) + contended_note(board)


def parts_paragraph(runs: DatasetRuns) -> str:
    """The findings' answer on the recipe parts (issue 30: keep what pays, say what did not):
    each part's latest ablation, each value against the part's lowest; "" when none ran."""
    parents = runs.parents.set_index("run_id")
    latest: dict[str, pd.DataFrame] = {}  # setting -> its latest ablation's runs
    for pid in sorted(runs.ablation_ids, key=lambda i: (parents.loc[i, "start_time"], i)):
        children = ablation_runs(runs, pid)
        if (setting := _setting(runs, pid, children)) not in (None, "augmentation"):
            latest[setting] = children
    said = [c for setting, children in latest.items() if (c := _part_clause(setting, children))]
    if not said:
        return ""
    return ("**Recipe parts on the winner.** One part changed at a time, the rest as the "
            "winner, test accuracy against the part's lowest value (95% CI over seeds; the "
            "tables are under Ablations): " + "; ".join(said) + ".")  # fmt: skip


def _part_clause(setting: str, children: pd.DataFrame) -> str:
    board = _by_value(summarize(children), children, setting)
    if len(board) < 2:
        return ""
    base, said = board.iloc[0], []
    for r in board.iloc[1:].to_dict("records"):
        d = delta_ci(base, r, M.TEST_ACCURACY)
        took = (f", {num(r[M.TRAIN_TIME], 0)} s of training against "
                f"{num(base[M.TRAIN_TIME], 0)} s"
                if setting in TIMED_PARTS else "")  # fmt: skip
        said.append(f"{r['_value']} gives {mean_std(r, M.TEST_ACCURACY)}, Δ {with_ci(d)}: "
                    f"{_verdict(d)}{took}")  # fmt: skip
    return f"`{setting}` against {base['_value']} ({mean_std(base, M.TEST_ACCURACY)}): " + (
        ", ".join(said))


def _verdict(d: tuple[float, float, float]) -> str:
    """Pays when the whole interval is above 0, costs when below, else within the noise."""
    _, lo, hi = d
    if not (has_value(lo) and has_value(hi)):
        return "too few seeds to say"
    return "pays" if lo > 0 else "costs accuracy" if hi < 0 else "within the seeds' noise"


def _by_value(board: pd.DataFrame, children: pd.DataFrame, setting: str) -> pd.DataFrame:
    """The summary rows with the value of `setting` each has (`_value`), lowest first; for
    precision the policy a run trained under (`auto` is float32 or bf16 by machine)."""
    logged = col(children, P(setting))
    if setting == "precision":
        logged = col(children, P(M.PRECISION_RESOLVED)).fillna(logged)
    value_of = logged.groupby(children["config"]).first().map(parse_param)
    board = board.assign(_value=board["config"].map(value_of))
    return board.sort_values("_value", key=_sortable, ignore_index=True)


def _part_table(board: pd.DataFrame, children: pd.DataFrame, setting: str) -> str:
    """One row per value of `setting`, in its order, each against the lowest value (a
    Welch 95% CI over seeds); the TTA score beside the plain one."""
    board = _by_value(board, children, setting)
    base = board.iloc[0]
    rows = []
    for i, r in enumerate(board.to_dict("records")):
        vs = with_ci(delta_ci(base, r, M.TEST_ACCURACY)) if i else DASH
        rows.append([
            r["label"], str(r["_value"]), mean_std(r, M.VAL_ACCURACY),
            mean_std(r, M.TEST_ACCURACY), vs, mean_std(r, M.TEST_ACCURACY_TTA),
            mean_std(r, M.OVERFIT_GAP), r["overfit"], *cost_cells(r), str(r["n"]),
        ])  # fmt: skip
    heads = (f"id | {setting} | val acc | test acc | Δ test vs {base['_value']} | "
             "test acc TTA | overfit gap | overfit | train time (s) | images/s | CPU ms/image | "
             "seeds")
    return table(heads, rows, right=tuple(range(2, 12))) + contended_note(board)


def _sortable(values: pd.Series) -> pd.Series:
    """Numbers by value, text after them by name: the lowest value is the baseline."""
    numeric = pd.to_numeric(values, errors="coerce")
    return numeric if numeric.notna().all() else values.astype(str)
