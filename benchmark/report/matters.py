"""What a search says about its ingredients, and where the suite stands against published
numbers.

- `what_matters`: Optuna's fANOVA importance of each searched dimension, fitted on the
  completed trials as MLflow holds them (so a grid counts as much as an Optuna study), and
  the mean validation accuracy for each value of each dimension; `matters_by_study` gives
  one such analysis per study.
- `reference_points`: the lab's net as this suite measured it, beside the published
  numbers of `REFERENCES` with their conditions and sources.

May import benchmark.metrics, benchmark.config and benchmark.report.load and .text only.
"""

from __future__ import annotations

import math

import optuna
import pandas as pd

from benchmark import metrics as M
from benchmark.config import TrialConfig, augmentation_tag
from benchmark.report.load import TAG_ROLE, DatasetRuns, P, T, col, numbers, tested_val
from benchmark.report.text import short

NO_NUMBER = "–"  # an en dash: the reference table always showed this one
# Params that never differ between configurations on purpose (or are derived from others).
NOT_DIMENSIONS = {
    "seed",
    "dataset",
    "filters",
    "class_names",
    *M.SPLIT_SIZE_PARAMS,
    M.PRECISION_RESOLVED,
}
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


def searched_dimensions(done: pd.DataFrame) -> list[str]:
    """Config fields whose value differs between completed trials, in TrialConfig order."""
    dims = []
    for name in TrialConfig.field_names():
        column = P(name)
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
    values = tested_val(done)
    ok = values.notna()
    if ok.sum() < MIN_TRIALS_FOR_IMPORTANCE or not dims or values[ok].nunique() < 2:
        return {}  # equal accuracies (every trial at chance): fANOVA has no variance to split
    keys = {d: done.loc[ok, P(d)].fillna("None").astype(str) for d in dims}
    dists = {
        d: optuna.distributions.CategoricalDistribution(sorted(set(keys[d]), key=_sort_key))
        for d in dims
    }
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    try:
        study = optuna.create_study(direction="maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
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
    values = tested_val(done)
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
        key = done[P(d)].fillna("None").astype(str)
        g = values.groupby(key)
        stats = pd.DataFrame({"mean": g.mean(), "n": g.count(), "max": g.max()})
        stats = stats.loc[sorted(stats.index, key=_sort_key)]
        per_value[d] = stats
        if imp:
            best = stats["mean"].idxmax()
            lines.append(f"| `{d}` | {imp[d]:.3f} | {short(best)} ({stats['mean'][best]:.4f}) |")
    lines.append("\nMean validation accuracy for each value (runs = completed trial runs):\n")
    lines.append("| setting | value | mean val acc | best val acc | runs |")
    lines.append("| --- | --- | ---: | ---: | ---: |")
    for d in order:
        for value, row in per_value[d].iterrows():
            lines.append(
                f"| `{d}` | {short(value)} | {row['mean']:.4f} | {row['max']:.4f} | "
                f"{int(row['n'])} |"
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
    test = numbers(done, M.TEST_ACCURACY)
    if P("model") in done:
        lab = done[done[P("model")].astype(str) == "seed"]
        for aug, rows in sorted(lab.groupby(lab[P("augmentation")].astype(str))):
            acc = test[rows.index].dropna()
            if acc.empty:
                continue
            epochs = ", ".join(sorted(set(rows[P("epochs")].astype(str))))
            lines.append(
                f"| The lab's net, measured here ({augmentation_tag(aug)}) | {_mean_std(acc)} | "
                f"{len(acc)} run(s), {epochs} epochs, {rows[P('optimizer')].iloc[0]}, "
                f"train {rows[P('train_size')].iloc[0]} images | this suite |"
            )
    if best:
        acc = best["test_accuracy"]
        shown = NO_NUMBER if acc["mean"] is None else f"{acc['mean']:.4f} ± {acc['std']:.4f}"
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


def matters_by_study(runs: DatasetRuns) -> str:
    """One "what matters" analysis per study: settings fixed in one search and searched in
    another must not be compared across searches (their other settings differ)."""
    searches = runs.parents[col(runs.parents, T(TAG_ROLE)) == "search"]
    if searches.empty:
        return what_matters(runs.main)
    study = col(searches, T("study_name")).fillna(searches["run_id"])
    parts = []
    for name, group in sorted(searches.groupby(study), key=lambda kv: kv[1]["start_time"].min()):
        done = _first_rung(runs.children_of(list(group["run_id"])))
        if done.empty:
            continue
        parts.append(f"### Study `{name}` ({len(done)} completed trial runs)\n\n"
                     + what_matters(done))  # fmt: skip
    return "\n\n".join(parts) if parts else what_matters(runs.main)


def _first_rung(done: pd.DataFrame) -> pd.DataFrame:
    """A halving study's rung-0 runs only: every candidate at one length (later rungs train
    survivors longer, so their `epochs` would read as a searched setting), and the most of
    them. Other studies: as they are."""
    rung = col(done, T(M.TAG_RUNG))
    if rung.isna().all():
        return done
    return done[(rung == "0") & (col(done, T(M.TAG_STAGE)) == "explore")]
