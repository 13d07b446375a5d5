"""`python -m benchmark {train,search,report,bench}`.

Options are generated from TrialConfig's fields, so a new setting is one dataclass line.
Bad input becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence

from benchmark.config import TrialConfig
from benchmark.errors import UserError


def parse_bool(text: str) -> bool:
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _nonneg(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"should be 0 or more; got {text!r}")
    return value


def _optional(parse: Callable[[str], object]) -> Callable[[str], object]:
    """MLproject parameters cannot be null: "none" or "" mean "not given"."""

    def convert(text: str) -> object:
        return None if str(text).strip().lower() in ("", "none", "null") else parse(text)

    convert.__name__ = parse.__name__
    return convert


def add_config_options(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One --flag per TrialConfig field; default None = "let the preset/dataclass decide"."""
    hints = typing.get_type_hints(TrialConfig)
    for f in dataclasses.fields(TrialConfig):
        if f.name in skip:
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if isinstance(hint, types.UnionType) else hint
        parse = {bool: parse_bool, int: int, float: float, str: str}[base]
        parse = _optional(parse)  # "none" = not given: MLproject parameters need a default
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=parse,
            default=None,
            metavar=base.__name__.upper(),
            help=f"default: {f.default!r} (or the model preset's)",
        )


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    names = TrialConfig.field_names()
    return TrialConfig.from_options(**{k: v for k, v in vars(args).items() if k in names})


def cmd_train(args: argparse.Namespace) -> int:
    from benchmark.runtime import prepare_tracking
    from benchmark.trial import run_trial

    cfg = config_from_args(args)
    uri = prepare_tracking(args.experiment)
    result = run_trial(cfg, data_dir=args.data_dir, verbose=0 if args.quiet else 2)
    m = result.metrics
    print(
        f"run {result.run_id} ({cfg.run_name}) tracked in {uri}\n"
        f"test_accuracy {m['test_accuracy']:.4f}  best_val_accuracy {m['best_val_accuracy']:.4f}"
        f" (epoch {m['best_epoch']})  train_time_s {m['train_time_s']:.1f}"
        f"  images_per_s {m['images_per_s']:.0f}\n"
        f"overfit_gap {m['overfit_gap']:.4f}  val_loss_rise {m['val_loss_rise']:.4f}"
        f"  overfit {'yes' if result.overfit else 'no'}"
        f"  params {m['param_count']:,}  flops {m['flops']:,}"
    )
    return 0


def _overrides(args: argparse.Namespace) -> dict:
    return {"epochs": args.epochs, "max_train_samples": args.max_train_samples}


def cmd_search(args: argparse.Namespace) -> int:
    from benchmark.datasets import DATASETS
    from benchmark.runtime import prepare_tracking
    from benchmark.search import dry_run
    from benchmark.space import load_space, space_path

    if not args.dataset.startswith("folder:"):
        DATASETS.get(args.dataset)  # unknown dataset: say so before reading any file
    space = load_space(space_path(args.dataset, args.space), strategy=args.strategy)
    if space.dataset and space.dataset != args.dataset and not args.dataset.startswith("folder:"):
        raise UserError(f"{space.path} is a space for {space.dataset!r}, not {args.dataset!r}")
    if args.dry_run:
        dry_run(space, dataset=args.dataset, data_dir=args.data_dir, overrides=_overrides(args),
                seeds=args.seeds, n_trials=args.n_trials)  # fmt: skip
        return 0
    prepare_tracking(args.experiment)
    return _run_search(
        space, args, n_trials=args.n_trials, timeout=args.timeout, max_epochs=args.max_epochs
    )


def cmd_ablate(args: argparse.Namespace) -> int:
    from benchmark.augment import policy_names
    from benchmark.datasets import DATASETS
    from benchmark.runtime import prepare_tracking
    from benchmark.search import ablation_space, best_of_latest_search

    if not args.dataset.startswith("folder:"):
        DATASETS.get(args.dataset)
    prepare_tracking(args.experiment)
    run_id, fixed = best_of_latest_search(args.dataset)
    print(f"ablating the best run {run_id} of the latest {args.dataset} search: {fixed}")
    return _run_search(ablation_space(fixed, args.seeds or 1, policy_names()), args,
                       role="ablation")  # fmt: skip


def _run_search(space, args: argparse.Namespace, **extra) -> int:
    from benchmark.search import run_search

    summary = run_search(
        space,
        dataset=args.dataset,
        data_dir=args.data_dir,
        storage=args.storage,
        study_name=args.study_name,
        seeds=args.seeds,
        overrides=_overrides(args),
        max_failures=args.max_failures,
        printer=functools.partial(print, flush=True),
        **extra,
    )
    c = summary.counts
    print(
        f"study {summary.study_name} ({summary.storage}): {summary.stopped_reason}; "
        f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
    )
    if summary.best_params is not None:
        print(f"best {summary.best_params} val_accuracy {summary.best_value:.4f} "
              f"run {summary.best_run_id}")  # fmt: skip
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=_optional(str),
        default=os.environ.get("BENCHMARK_DATA_DIR"),
        help="directory holding the upstream archives (env BENCHMARK_DATA_DIR)",
    )
    p.add_argument("--experiment", default=None, help="MLflow experiment name")


def _add_search_options(p: argparse.ArgumentParser, space: bool = True) -> None:
    _add_common(p)
    p.add_argument("--dataset", required=True, help="cifar10 | cifar100 | flowers17 | folder:PATH")
    if space:
        p.add_argument("--strategy", type=_optional(str), default=None, help="grid | optuna")
        p.add_argument("--space", type=_optional(str), default=None, help="a space YAML file")
        p.add_argument("--n-trials", type=_optional(int), default=None)
        p.add_argument("--timeout", type=_optional(float), default=None, help="seconds")
        p.add_argument(
            "--max-epochs",
            type=_optional(int),
            default=None,
            help="optuna: epoch budget; no trial starts that could overrun it",
        )
        p.add_argument("--dry-run", type=parse_bool, nargs="?", const=True, default=False)
    p.add_argument("--epochs", type=_optional(int), default=None)
    p.add_argument("--max-train-samples", type=_optional(int), default=None)
    p.add_argument("--seeds", type=_optional(int), default=None, help="repeats per configuration")
    p.add_argument("--storage", type=_optional(str), default=None, help="Optuna storage URL")
    p.add_argument("--study-name", type=_optional(str), default=None)
    p.add_argument("--max-failures", type=_optional(int), default=None,
                   help="stop after this many failed trials in a row")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Benchmark CNN image classifiers, tracked in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train and track one configuration")
    add_config_options(train)
    _add_common(train)
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    train.set_defaults(func=cmd_train)

    search = sub.add_parser("search", help="grid or Optuna search (the main job)")
    _add_search_options(search)
    search.set_defaults(func=cmd_search)

    ablate = sub.add_parser("ablate", help="best architecture of the latest search x policies")
    _add_search_options(ablate, space=False)
    ablate.set_defaults(func=cmd_ablate)
    _lazy("benchmark.report", "add_report_parser")(sub)

    eff = sub.add_parser("efficiency", help="Optuna+pruning vs the full grid: accuracy, epochs")
    _add_common(eff)
    eff.add_argument("--dataset", default="flowers17")
    eff.add_argument("--space", type=_optional(str), default=None)
    eff.add_argument("--storage", type=_optional(str), default=None)
    eff.add_argument("--n-trials", type=_optional(int), default=None,
                     help="optuna trials at most (default: 4 x the grid's points)")  # fmt: skip
    eff.add_argument("--budget", type=float, default=0.4,
                     help="optuna's epoch budget as a fraction of the grid's epochs")  # fmt: skip
    eff.add_argument("--replay", type=_nonneg, default=0, metavar="N",
                     help="also replay optuna on the grid's curves, N sampler seeds")  # fmt: skip
    eff.set_defaults(func=lambda args: _lazy("benchmark.efficiency", "cmd_efficiency")(args))

    bench = sub.add_parser("bench", help="training throughput: seed notebook vs the suite")
    _lazy("benchmark.bench", "add_bench_arguments")(bench)
    bench.set_defaults(func=lambda args: _lazy("benchmark.bench", "cmd_bench")(args))
    return parser


def _lazy(module: str, name: str):
    """Import optional subcommand modules by name, keeping them out of the import graph
    of train/search."""
    import importlib

    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Two INFO lines per trial about the system-metrics thread starting and stopping would
    # bury the progress lines; its warnings and errors still show.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 with one usage line on bad flags
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
