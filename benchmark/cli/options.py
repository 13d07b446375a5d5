"""The CLI's options: generated from TrialConfig's fields for `train` (a new setting is one
dataclass line; its end-of-line comment becomes the flag's help), and the search, report,
efficiency and bench options with their allowed values and examples.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import types
import typing
from collections.abc import Sequence

from benchmark import argtypes, choices
from benchmark.cli.check import add_check_parser
from benchmark.cli.commands import (
    cmd_ablate,
    cmd_bench,
    cmd_efficiency,
    cmd_report,
    cmd_retime,
    cmd_search,
    cmd_train,
)
from benchmark.cli.lab import add_lab_parser
from benchmark.cli.messages import Parser, _lazy
from benchmark.config import TrialConfig
from benchmark.metrics import LOG_MODELS
from benchmark.search.space import STRATEGIES

FORMATTER = argparse.RawDescriptionHelpFormatter  # epilogs keep their example lines


@functools.cache
def _field_notes() -> dict[str, str]:
    """Each TrialConfig field's help, declared beside it in config.py (`setting(..., help)`)."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrialConfig)
            if f.metadata.get("help")}  # fmt: skip


def add_config_options(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One --flag per TrialConfig field; default None = "let the preset/dataclass decide".

    Enumerated fields (benchmark/choices.py CHOICES) accept their listed values only, and
    their help lists them; the field's comment in config.py is the rest of the help.
    """
    group = parser.add_argument_group("trial settings (TrialConfig; none = the default)")
    hints = typing.get_type_hints(TrialConfig)
    for f in dataclasses.fields(TrialConfig):
        if f.name in skip:
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if isinstance(hint, types.UnionType) else hint
        if f.name in choices.CHOICES:
            parse, metavar = argtypes.choice(f.name), "NAME"
            allowed = f"one of: {choices.known(f.name)}"
        else:
            parse = {
                bool: argtypes.boolean,
                int: argtypes.integer,
                float: argtypes.number,
                str: str,
            }[base]
            metavar, allowed = base.__name__.upper(), "true or false" if base is bool else ""
        note = _field_notes().get(f.name, "")
        text = "; ".join(t for t in (note, allowed, f"default: {f.default}") if t)
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=argtypes.optional(parse),  # "none" = not given: MLproject parameters need one
            default=None,
            metavar=metavar,
            help=text.replace("%", "%%"),  # argparse %-formats help ("30% of the epochs")
        )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=argtypes.optional(str),
        default=os.environ.get("BENCHMARK_DATA_DIR"),
        help="directory holding the upstream archives (env BENCHMARK_DATA_DIR)",
    )
    p.add_argument("--experiment", default=None, help="MLflow experiment name")


def _dataset_option(p: argparse.ArgumentParser, **kwargs) -> None:
    p.add_argument(
        "--dataset",
        type=argtypes.choice("dataset"),
        metavar="NAME",
        help=f"one of: {choices.known('dataset')}",
        **kwargs,
    )


def _add_search_options(p: argparse.ArgumentParser, space: bool = True) -> None:
    """The search's and the ablation's options (`space`: the search's own too)."""
    _add_common(p)
    _dataset_option(p, required=True)
    optional_int = argtypes.optional(argtypes.integer)
    if space:
        _add_space_options(p)
    p.add_argument("--epochs", type=optional_int, default=None)
    p.add_argument("--max-train-samples", type=optional_int, default=None)
    p.add_argument("--seeds", type=optional_int, default=None, help="repeats per configuration")
    p.add_argument(
        "--storage",
        type=argtypes.optional(str),
        default=None,
        help="Optuna storage: a journal file path, journal:///PATH, or an SQLAlchemy URL "
        "(default: optuna.journal beside mlflow.db)",
    )
    p.add_argument(
        "--workers",
        type=argtypes.optional(argtypes.positive),
        default=None,
        metavar="N",
        help="trials training at once on this machine, its cores split between them (default 1)",
    )
    p.add_argument("--study-name", type=argtypes.optional(str), default=None)
    p.add_argument(
        "--log-models",
        type=argtypes.one_of("log_models", LOG_MODELS),
        default=None,
        metavar="WHICH",
        help=f"one of: {', '.join(LOG_MODELS)} (default: all): which trials keep their "
        "trained model as an MLflow model; best: the search's winner, the others' are deleted "
        "when it ends",
    )
    p.add_argument(
        "--max-failures",
        type=optional_int,
        default=None,
        help="stop after this many failed trials in a row",
    )


def _add_space_options(p: argparse.ArgumentParser) -> None:
    """What only `search` takes: the space, its strategy, its budgets, the dry run."""
    optional_int = argtypes.optional(argtypes.integer)
    strategy = argtypes.one_of("strategy", STRATEGIES)
    p.add_argument(
        "--strategy",
        type=argtypes.optional(strategy),
        default=None,
        metavar="NAME",
        help=f"one of: {', '.join(STRATEGIES)} (default: the space's)",
    )
    p.add_argument(
        "--space",
        type=argtypes.optional(str),
        default=None,
        metavar="YAML",
        help="a space file (default: search_spaces/<dataset>.yaml)",
    )
    p.add_argument("--n-trials", type=optional_int, default=None)
    p.add_argument(
        "--timeout", type=argtypes.optional(argtypes.number), default=None, help="seconds"
    )
    p.add_argument(
        "--max-epochs",
        type=optional_int,
        default=None,
        help="optuna: epoch budget; no trial starts that could overrun it",
    )
    p.add_argument(
        "--budget-minutes",
        type=argtypes.optional(argtypes.number),
        default=None,
        metavar="MIN",
        help="halving: wall-clock budget, confirmation included (default: the space's "
        "halving.budget_minutes); stored with the study, so a resumed search has the rest",
    )
    p.add_argument(
        "--warm-start",
        type=argtypes.optional(argtypes.boolean),
        default=None,
        metavar="BOOL",
        help="halving: queue the best configurations of earlier searches in the store "
        "first (default: true, or the space's halving.warm_start)",
    )
    p.add_argument(
        "--dry-run",
        type=argtypes.boolean,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="build every model and estimate the time; no training (true or false)",
    )


def add_report_parser(sub) -> argparse.ArgumentParser:
    """`report` on the CLI's subparsers, bound to benchmark.cli.commands.cmd_report.

    Declared here, not in report.py, so that `report --help` needs no MLflow or pandas.
    """
    p = sub.add_parser(
        "report",
        help="markdown tables and figures from the MLflow runs",
        epilog=EPILOGS["report"],
        formatter_class=FORMATTER,
    )
    p.add_argument(
        "--dataset",
        default="all",
        type=argtypes.choice("dataset", extra=("all",)),
        metavar="NAME",
        help=f"one of: {choices.known('dataset', ('all',))} (default: all)",
    )
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI")
    p.set_defaults(func=cmd_report)
    return p


def add_predict_parser(add) -> argparse.ArgumentParser:
    """`predict`: a logged model (URI) on image files; bound to benchmark.cli.predict."""
    p = add("predict", help="classify image files with a logged or registered model",
            epilog=EPILOGS["predict"])  # fmt: skip
    p.add_argument(
        "--model",
        required=True,
        metavar="URI",
        help="an MLflow model URI: models:/cnn-benchmark-flowers17@champion, runs:/RUN/model, "
        "or a trial's benchmark.model_uri tag (models:/m-...)",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders")
    p.add_argument(
        "--path", action="append", metavar="PATH", help="an image file or folder, as PATH does "
        "(for the MLproject entry; may be repeated)",
    )  # fmt: skip
    p.add_argument(
        "--output", type=argtypes.optional(str), default=None, metavar="CSV",
        help="also write path, top-3 classes and probabilities to this CSV file",
    )  # fmt: skip
    p.set_defaults(func=lambda args: _lazy("benchmark.cli.predict", "cmd_predict")(args))
    return p


EPILOGS = {
    "main": """\
examples:
  python -m benchmark search --dataset flowers17 --data-dir ../shared/data
  python -m benchmark train --dataset cifar10 --data-dir ../shared/data --model seed --epochs 20
  python -m benchmark report
  mlflow run . -P dataset=flowers17 -P data_dir=../shared/data   (the search as an MLflow Project)

Each command's --help lists its options and their allowed values.""",
    "train": """\
example:
  python -m benchmark train --dataset cifar10 --data-dir ../shared/data --model seed \\
      --augmentation none --epochs 20
  mlflow run . -e train -P dataset=cifar10 -P model=seed -P epochs=20""",
    "search": """\
examples:
  python -m benchmark search --dataset flowers17 --data-dir ../shared/data --dry-run
  python -m benchmark search --dataset cifar10 --strategy optuna --n-trials 20 --epochs 10
  python -m benchmark search --dataset flowers17 --data-dir ../shared/data \\
      --space search_spaces/flowers17-auto.yaml --budget-minutes 75
  mlflow run . -P dataset=flowers17 -P data_dir=../shared/data""",
    "ablate": """\
example:
  python -m benchmark ablate --dataset cifar10 --data-dir ../shared/data --seeds 3
  python -m benchmark ablate --dataset flowers17 --data-dir ../shared/data --seeds 3 --vary ema
  mlflow run . -e ablate -P dataset=cifar10""",
    "report": """\
example:
  python -m benchmark report --dataset flowers17 --out reports
  mlflow run . -e report -P dataset=all""",
    "predict": """\
examples:
  python -m benchmark predict --model models:/cnn-benchmark-flowers17@champion photos/
  python -m benchmark predict --model runs:/RUN_ID/model a.jpg b.png --output predictions.csv
  mlflow run . -e predict -P model=models:/cnn-benchmark-flowers17@champion -P path=photos""",
    "efficiency": """\
example:
  python -m benchmark efficiency --dataset flowers17 --data-dir ../shared/data --replay 20""",
}


def _add_ablate_parser(add) -> None:
    """`ablate`: the search's options (no space of its own), and the setting it varies."""
    ablate = add("ablate", help="best configuration of the latest search x one setting varied",
                 epilog=EPILOGS["ablate"])  # fmt: skip
    _add_search_options(ablate, space=False)
    ablate.add_argument(
        "--vary", type=argtypes.optional(str), default=None, metavar="SETTING",
        help="the setting varied (default augmentation: every policy); a recipe part: ema "
        "(0, 0.99), label_smoothing (0, 0.2), batch_size (the winner's and 4x, the rate "
        "scaled linearly), precision (float32, mixed_bfloat16), or any setting with --values",
    )  # fmt: skip
    ablate.add_argument("--values", type=argtypes.optional(str), default=None, metavar="V1,V2",
                        help="the values tried (the winner's own is not added)")  # fmt: skip
    ablate.set_defaults(func=cmd_ablate)


def build_parser() -> argparse.ArgumentParser:
    from benchmark.bench import options as bench_options

    parser = Parser(
        prog="python -m benchmark",
        description="Benchmark CNN image classifiers, tracked in MLflow.",
        epilog=EPILOGS["main"],
        formatter_class=FORMATTER,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = functools.partial(sub.add_parser, formatter_class=FORMATTER)

    train = add(
        "train",
        help="train and track one configuration",
        epilog=EPILOGS["train"],
        description="Train one configuration and track it as an MLflow run.\nA --model preset "
        "(seed) fixes the architecture settings it names; the flags you give win.",
    )
    add_config_options(train)
    _add_common(train)
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    train.set_defaults(func=cmd_train)

    search = add("search", help="grid or Optuna search (the main job)", epilog=EPILOGS["search"])
    _add_search_options(search)
    search.set_defaults(func=cmd_search)

    _add_ablate_parser(add)
    add_report_parser(sub)
    for more in (add_predict_parser, add_lab_parser, add_check_parser):
        more(add)

    eff = add(
        "efficiency",
        help="Optuna+pruning vs the full grid: accuracy, epochs",
        epilog=EPILOGS["efficiency"],
    )
    _add_common(eff)
    _dataset_option(eff, default="flowers17")
    eff.add_argument("--space", type=argtypes.optional(str), default=None)
    eff.add_argument("--storage", type=argtypes.optional(str), default=None)
    eff.add_argument(
        "--n-trials",
        type=argtypes.optional(argtypes.integer),
        default=None,
        help="optuna trials at most (default: 4 x the grid's points)",
    )
    eff.add_argument(
        "--budget",
        type=argtypes.number,
        default=0.4,
        help="optuna's epoch budget as a fraction of the grid's epochs",
    )
    eff.add_argument(
        "--replay",
        type=argtypes.nonneg,
        default=0,
        metavar="N",
        help="also replay optuna on the grid's curves, N sampler seeds",
    )
    eff.set_defaults(func=cmd_efficiency)

    bench = add(
        "bench", help="training throughput: seed notebook vs the suite", epilog=bench_options.EPILOG
    )
    bench_options.add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    retime = add(
        "retime",
        help="re-measure the store's configurations quietly (probe images/s)",
        epilog=bench_options.RETIME_EPILOG,
    )
    bench_options.add_retime_arguments(retime)
    retime.set_defaults(func=cmd_retime)
    parser.commands = dict(sub.choices)
    return parser
