"""What a search says about its ingredients, where the suite stands against published numbers,
and the machine-readable summary of the best configuration.

- `what_matters`: Optuna's fANOVA importance of each searched dimension, fitted on the
  completed trials as MLflow holds them (so a grid counts as much as an Optuna study), and
  the mean validation accuracy for each value of each dimension.
- `reference_points`: the lab's net as this suite measured it, beside the published
  numbers of `REFERENCES` with their conditions and sources.
- `summary_json`: `reports/<dataset>.json`, the best configuration (chosen on validation)
  with its test accuracy per seed and the command that reproduces one seed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import optuna
import pandas as pd

from benchmark import metrics as M
from benchmark.config import TrialConfig

DASH = "–"
# Params that never differ between configurations on purpose (or are derived from others).
NOT_DIMENSIONS = {"seed", "dataset", "filters", *M.SPLIT_SIZE_PARAMS}
MIN_TRIALS_FOR_IMPORTANCE = 4
FEW_TRIALS = 12  # below this, importances are flagged as hints

# Published numbers (../shared/anchors.md lists the sources). None of them is a result of
# this suite; each keeps its conditions, which rarely match ours.
REFERENCES: dict[str, list[tuple[str, str, str, str]]] = {
    "cifar10": [
        (
            "TensorFlow tutorial CNN (the lab's net)",
            '"over 70%" test',
            "Adam, 10 epochs, no augmentation, 50k train",
            "tensorflow/docs tutorials/images/cnn",
        ),
        (
            "The lab's notebook",
            "68.67%",
            "same net, RMSprop, 20 epochs, test used as val",
            "seed lab",
        ),
        (
            "Keras cifar10_cnn example",
            "75% (25 ep), 79% (50 ep)",
            "4 convs + dropout, aug",
            "keras examples",
        ),
        (
            "VGG 3 blocks + dropout",
            "83.1%",
            "Keras tutorial replication, 50k train",
            "machinelearningmastery CIFAR-10 from scratch",
        ),
        ("Plain CNN with BN + dropout", "83.4%", "no augmentation, 50k train", "alexrayu.com"),
        (
            "VGG16 + BN + dropout",
            "93.56%",
            "250 epochs, SGD Nesterov, wd 5e-4, flip/shift",
            "geifmany/cifar-vgg",
        ),
        (
            "airbench94",
            "94.01%",
            "9.9 epochs on an A100, label smoothing, TTA, 50k train",
            "KellerJordan/cifar10-airbench",
        ),
    ],
    "cifar100": [
        (
            "VGG16 + BN + dropout",
            "70.48%",
            "250 epochs, SGD Nesterov, 50k train",
            "geifmany/cifar-vgg",
        ),
    ],
    "flowers17": [
        (
            "Small CNN from scratch",
            "~75%",
            "128 px, 3 conv blocks, aug, 80/20 split",
            "Krutikagadge/Flower-Classification-ML_CA",
        ),
        (
            "MiniVGGNet from scratch",
            '"60% range"',
            "64 px, no augmentation, 100 epochs",
            "ahasan-haque/Flower17Implementation",
        ),
        (
            "AlexNet-like from scratch",
            "~55% val",
            "227 px, 100 epochs, 80/20 split",
            "sarahbeilman.com",
        ),
        (
            "VGG16 fine-tuned (ImageNet weights, not from scratch)",
            "~87%",
            "last 4 convs trained",
            "Krutikagadge/Flower-Classification-ML_CA",
        ),
        (
            "DINOv2 frozen + head (pretrained, not from scratch)",
            "99.6% test",
            "official splits",
            "JunukCha/DINOv2_classification",
        ),
    ],
}


def _p(name: str) -> str:
    return f"params.{name}"


def _x(name: str) -> str:
    return f"metrics.{name}"


def _num(df: pd.DataFrame, metric: str) -> pd.Series:
    """A metric as numbers; all-missing when no run logged it."""
    if _x(metric) not in df:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[_x(metric)], errors="coerce")


def _val(done: pd.DataFrame) -> pd.Series:
    """Val accuracy of the tested weights (early stopping: the restored best epoch's)."""
    return _num(done, M.SELECTED_VAL_ACCURACY).fillna(_num(done, M.VAL_ACCURACY))


def searched_dimensions(done: pd.DataFrame) -> list[str]:
    """Config fields whose value differs between completed trials, in TrialConfig order."""
    dims = []
    for name in TrialConfig.field_names():
        column = _p(name)
        if name in NOT_DIMENSIONS or column not in done:
            continue
        if done[column].fillna("None").astype(str).nunique() > 1:
            dims.append(name)
    return dims


def _sort_key(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def importances(done: pd.DataFrame, dims: list[str]) -> dict[str, float]:
    """fANOVA importances (Optuna's evaluator, fixed seed: the report is reproducible).

    Every dimension is given to Optuna as categorical over the values seen: a grid's points
    and an Optuna study's suggestions alike; each completed run is one trial whose value is
    its validation accuracy.
    """
    values = _val(done)
    ok = values.notna()
    if ok.sum() < MIN_TRIALS_FOR_IMPORTANCE or not dims:
        return {}
    keys = {d: done.loc[ok, _p(d)].fillna("None").astype(str) for d in dims}
    dists = {
        d: optuna.distributions.CategoricalDistribution(sorted(set(keys[d]), key=_sort_key))
        for d in dims
    }
    study = optuna.create_study(direction="maximize")
    for i in keys[dims[0]].index:
        study.add_trial(
            optuna.trial.create_trial(
                params={d: keys[d][i] for d in dims},
                distributions=dists,
                value=float(values[i]),
            )
        )
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    result = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
    return {d: float(result.get(d, 0.0)) for d in dims}


def what_matters(done: pd.DataFrame) -> str:
    """Importance table, then mean validation accuracy per value of each dimension."""
    dims = searched_dimensions(done)
    if not dims:
        return "Every completed trial used the same settings: nothing to compare."
    imp = importances(done, dims)
    values = _val(done)
    order = sorted(dims, key=lambda d: -imp.get(d, 0.0)) if imp else dims
    lines = []
    if imp:
        lines.append(
            f"Importance of each searched setting for validation accuracy (Optuna's fANOVA "
            f"evaluator over {int(values.notna().sum())} completed trial runs, seed 0; the "
            "importances sum to 1). A setting ranks high when changing it moves validation "
            "accuracy more than the others do."
            + (
                f" Only {int(values.notna().sum())} completed trials for {len(dims)} settings:"
                " read these as hints, not findings.\n"
                if values.notna().sum() < FEW_TRIALS
                else "\n"
            )
        )
        lines.append("| setting | importance | best value (mean val acc) |")
        lines.append("| --- | ---: | --- |")
    else:
        lines.append(
            f"Fewer than {MIN_TRIALS_FOR_IMPORTANCE} completed trials: no importances; "
            "mean validation accuracy per value below.\n"
        )
    per_value = {}
    for d in order:
        key = done[_p(d)].fillna("None").astype(str)
        g = values.groupby(key)
        stats = pd.DataFrame({"mean": g.mean(), "n": g.count(), "max": g.max()})
        stats = stats.loc[sorted(stats.index, key=_sort_key)]
        per_value[d] = stats
        if imp:
            best = stats["mean"].idxmax()
            lines.append(f"| `{d}` | {imp[d]:.3f} | {best} ({stats['mean'][best]:.4f}) |")
    lines.append("\nMean validation accuracy for each value (runs = completed trial runs):\n")
    lines.append("| setting | value | mean val acc | best val acc | runs |")
    lines.append("| --- | --- | ---: | ---: | ---: |")
    for d in order:
        for value, row in per_value[d].iterrows():
            lines.append(
                f"| `{d}` | {value} | {row['mean']:.4f} | {row['max']:.4f} | {int(row['n'])} |"
            )
    lines.append(
        "\nA mean over a value mixes every other setting it was tried with: read it beside "
        "the importance and the leaderboard, not alone."
    )
    return "\n".join(lines)


def reference_points(dataset: str, done: pd.DataFrame, best: dict | None) -> str:
    """The suite's own numbers (lab net, best configuration) beside the published ones."""
    lines = [
        "| what | test accuracy | conditions | source |",
        "| --- | --- | --- | --- |",
    ]
    test = _num(done, M.TEST_ACCURACY)
    if _p("model") in done:
        lab = done[done[_p("model")].astype(str) == "seed"]
        for aug, rows in sorted(lab.groupby(lab[_p("augmentation")].astype(str))):
            acc = test[rows.index].dropna()
            if acc.empty:
                continue
            epochs = ", ".join(sorted(set(rows[_p("epochs")].astype(str))))
            lines.append(
                f"| The lab's net, measured here (aug={aug}) | {_mean_std(acc)} | "
                f"{len(acc)} run(s), {epochs} epochs, {rows[_p('optimizer')].iloc[0]}, "
                f"train {rows[_p('train_size')].iloc[0]} images | this suite |"
            )
    if best:
        acc = best["test_accuracy"]
        shown = DASH if acc["mean"] is None else f"{acc['mean']:.4f} ± {acc['std']:.4f}"
        lines.append(
            f"| Best configuration here (`{best['run_name']}`) | "
            f"{shown} | {len(acc['per_seed'])} seed(s), "
            f"{best['epochs']} epochs, chosen on validation | this suite |"
        )
    for what, number, conditions, source in REFERENCES.get(dataset, []):
        lines.append(f"| {what} | {number} | {conditions} | {source} |")
    note = (
        "\n\nPublished rows are quoted with their own conditions (most train on more images "
        "or use other splits); they are not results of this suite."
    )
    return "\n".join(lines) + note


def _mean_std(values: pd.Series) -> str:
    std = values.std() if len(values) > 1 else float("nan")
    return f"{values.mean():.4f}" + ("" if math.isnan(std) else f" ± {std:.4f}")


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
        name: _typed(name, first.get(_p(name)))
        for name in TrialConfig.field_names()
        if _p(name) in rows and name != "seed"  # the seeds are listed apart
    }
    test = _num(rows, M.TEST_ACCURACY)
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
        "val_accuracy": {"mean": float(_val(rows).mean())},
        "run_ids": list(rows["run_id"]),
    }
    tta = _num(rows, M.TEST_ACCURACY_TTA)
    if tta.notna().any():
        out["test_accuracy_tta"] = {
            "mean": float(tta.mean()),
            "per_seed": {
                int(s): float(a) for s, a in zip(rows["seed"], tta, strict=True) if a == a
            },
        }
    stopped = _num(rows, M.STOPPED_EPOCH)
    if stopped.notna().any():
        out["stopped_epoch"] = {
            int(s): int(e) for s, e in zip(rows["seed"], stopped, strict=True) if e == e
        }
    train_time = _num(rows, M.TRAIN_TIME)
    if train_time.notna().any():
        out["train_time_s"] = {"mean": float(np.nanmean(train_time))}
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
