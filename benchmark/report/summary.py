"""`reports/<dataset>.json`: the best configuration (chosen on validation) as plain data, with
its test accuracy per seed and the command that reproduces one seed.

May import benchmark.metrics, benchmark.config and benchmark.report.load only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd

from benchmark import metrics as M
from benchmark.config import TrialConfig
from benchmark.report.load import P, numbers, tested_val


def _typed(name: str, text: Any) -> Any:
    """An MLflow param (a string) back to the config field's type."""
    if text is None or (isinstance(text, float) and math.isnan(text)) or text == "None":
        return None
    default = next(f.default for f in dataclasses.fields(TrialConfig) if f.name == name)
    if isinstance(default, bool):
        return str(text).lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return str(text)


def best_summary(done: pd.DataFrame, board_row: pd.Series) -> dict[str, Any]:
    """The best configuration (board row 0: ranked on validation) as plain data."""
    rows = done[done["run_id"].isin(board_row["run_ids"])].sort_values("seed")
    first = rows.iloc[0]
    config = {
        name: _typed(name, first.get(P(name)))
        for name in TrialConfig.field_names()
        if P(name) in rows and name != "seed"  # the seeds are listed apart
    }
    test = numbers(rows, M.TEST_ACCURACY)
    per_seed = {int(s): float(a) for s, a in zip(rows["seed"], test, strict=True) if a == a}
    seeds = sorted(int(s) for s in rows["seed"])
    tested = test.dropna()
    out: dict[str, Any] = {
        "run_name": str(board_row["label"]),
        "config": config,
        "seeds": seeds,
        "epochs": config.get("epochs"),
        "test_accuracy": {  # null where no run of it logged one (JSON has no NaN)
            "mean": float(tested.mean()) if len(tested) else None,
            "std": float(tested.std()) if len(tested) > 1 else (0.0 if len(tested) else None),
            "per_seed": per_seed,
        },
        "val_accuracy": {"mean": float(tested_val(rows).mean())},
        "run_ids": list(rows["run_id"]),
    }
    tta = numbers(rows, M.TEST_ACCURACY_TTA)
    if tta.notna().any():
        out["test_accuracy_tta"] = {
            "mean": float(tta.mean()),
            "per_seed": {
                int(s): float(a) for s, a in zip(rows["seed"], tta, strict=True) if a == a
            },
        }
    stopped = numbers(rows, M.STOPPED_EPOCH)
    if stopped.notna().any():
        out["stopped_epoch"] = {
            int(s): int(e) for s, e in zip(rows["seed"], stopped, strict=True) if e == e
        }
    train_time = board_row.get(M.TRAIN_TIME)  # from its clean runs when it has any
    if train_time is not None and train_time == train_time:
        out["train_time_s"] = {"mean": float(train_time)}
    if board_row.get("timing"):  # clean | contended: how that train time was measured
        out["timing"] = str(board_row["timing"])
    out["command"] = reproduce_command(config, seed=seeds[0])
    out["command_offline"] = out["command"] + " --data-dir ../shared/data"
    return out


def reproduce_command(config: dict[str, Any], seed: int) -> str:
    """`python -m benchmark train` with every field that differs from the defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrialConfig)}
    parts = ["python -m benchmark train"]
    for name, value in config.items():
        if name == "seed":
            continue
        if name == "dataset" or value != defaults.get(name):
            parts.append(f"--{name.replace('_', '-')} {_flag(value)}")
    parts.append(f"--seed {seed}")
    return " ".join(parts)


def _flag(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)
