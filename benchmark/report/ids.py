"""Short configuration ids (`C1`, `C2`, ...) for every table of a dataset report, and the one
legend table (Configurations) that names them.

Why: a configuration's name is its run name plus each setting that tells it apart from a
namesake, so a halving search's candidates reached 223 characters and a table row that named
one 427. Every table now says `C3`; the legend gives each id's run name and the settings
that differ between the dataset's configurations (those every configuration shares are in
the header, once).

The ids follow the leaderboard: its first table (full length, several seeds), then its
second, each ranked on validation; then the configurations no completed main run holds (only
failed, or only in an ablation), by name. `config_ids` is public so that another section
names a configuration as the tables do.

May import benchmark.config and benchmark.report.load, .stats, .text and .markdown.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from benchmark.config import TrialConfig
from benchmark.presets import unused_settings
from benchmark.report.load import DatasetRuns, P
from benchmark.report.markdown import table
from benchmark.report.stats import DASH, has_value, shown_order
from benchmark.report.text import short

PREFIX = "C"
NOT_READ = "·"  # a legend cell whose setting the configuration's family does not read
# Settings the run name itself spells out (config.TrialConfig.run_name): no legend column.
IN_THE_NAME = ("model", "depth", "kernel_size", "dense_units", "convs_per_block", "head",
               "pool_position", "augmentation")  # fmt: skip
NOT_SETTINGS = ("seed", "dataset")  # differ between runs of one configuration, or reports


def config_ids(board: pd.DataFrame) -> dict[str, str]:
    """Configuration key (the board's `config` column: stats.summarize's) -> its id, `C1`,
    `C2`, ... in the order the leaderboard shows its rows."""
    if board.empty:
        return {}
    keys = shown_order(board)["config"]
    return {str(k): f"{PREFIX}{i}" for i, k in enumerate(keys, 1)}


def dataset_ids(runs: DatasetRuns, board: pd.DataFrame) -> dict[str, str]:
    """`config_ids` of the leaderboard, then an id for every other configuration of the
    dataset's trial runs (failed only, ablation only), by name: every table can use one."""
    ids = config_ids(board)
    rest = runs.trials[~runs.trials["config"].isin(list(ids))]
    for key in rest.sort_values(["label", "config"])["config"].drop_duplicates():
        ids[str(key)] = f"{PREFIX}{len(ids) + 1}"
    return ids


def with_ids(runs: DatasetRuns, ids: dict[str, str]) -> DatasetRuns:
    """The same runs labelled by id: what the report's sections print. The architecture
    label loses the settings after its name (the ids tell the configurations apart)."""
    trials = runs.trials.copy()
    pairs = zip(trials["arch_label"], trials["suffix"], strict=True)
    trials["arch_label"] = [a.removesuffix(s) if s else a for a, s in pairs]
    trials["label"] = trials["config"].map(ids).fillna(trials["label"])  # fmt: skip
    return dataclasses.replace(runs, trials=trials)


def board_with_ids(board: pd.DataFrame, ids: dict[str, str]) -> pd.DataFrame:
    """The leaderboard with its labels as ids (the hand-trained mark kept after them), its
    architecture labels without the settings after the name, as in `with_ids`."""
    if board.empty:
        return board
    pairs = zip(board["arch_label"], board["suffix"], strict=True)
    return board.assign(label=board["config"].map(ids).fillna(board["label"]),
                        arch_label=[a.removesuffix(s) if s else a for a, s in pairs])  # fmt: skip


def _value(v: object) -> str:
    """A setting's legend cell: shortened, a dash where a run did not log it."""
    return short(v) if has_value(v) and v != "" else DASH


def _cells(row: pd.Series, settings: list[str]) -> list[str]:
    ignored = {P(n) for n in unused_settings(str(row.get(P("model"), "")))}
    return [NOT_READ if c in ignored else _value(row[c]) for c in settings]


def legend(runs: DatasetRuns, ids: dict[str, str]) -> str:
    """The Configurations section, its heading first (empty without ids). One row per id:
    the run name MLflow shows (without `-s<seed>`) and the value of each setting that
    differs between the dataset's configurations (floats to 4 digits)."""
    if not ids:
        return ""
    first = runs.trials.drop_duplicates("config").set_index("config")
    first = first.loc[[k for k in ids if k in first.index]]
    settings = [
        c for c in (P(n) for n in TrialConfig.field_names()
                    if n not in IN_THE_NAME + NOT_SETTINGS)
        if c in first and first[c].fillna("").astype(str).nunique() > 1
    ]  # fmt: skip
    rows = [[ids[k], f"`{r['base']}`", *_cells(r, settings)] for k, r in first.iterrows()]
    heads = " | ".join(["id", "run name", *(c.removeprefix("params.") for c in settings)])
    note = (
        "Every table names a configuration by its id. Run name: the MLflow run name without "
        "its `-s<seed>` (it spells out the architecture and the augmentation policy). The "
        "other columns are the settings that differ between this dataset's configurations; "
        f"those they all share are in the header; {NOT_READ} where the configuration's model "
        "family does not read the setting (a resnet's `filters_max`, a plain CNN's "
        "`stage_widths`), though its run logged it."
    )
    return "\n\n## Configurations\n\n" + note + "\n\n" + table(heads, rows)
