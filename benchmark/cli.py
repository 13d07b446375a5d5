"""`python -m benchmark {train,search,ablate,report,efficiency,bench}`.

Options are generated from TrialConfig's fields, so a new setting is one dataclass line (its
end-of-line comment becomes the flag's help). Bad input becomes one line on stderr and exit
code 2, never a traceback or a usage block; under `mlflow run` the line names the
`-P name=value` form the user typed. This module and what it imports at the top stay light:
`--help` answers without TensorFlow, MLflow or the report's pandas; the commands import what
they need when they run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import logging
import os
import re
import shlex
import sys
import types
import typing
from collections.abc import Sequence
from typing import NoReturn

from benchmark import argtypes, choices
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.search.space import STRATEGIES

# Kept for callers of the old names: the types now live in benchmark/argtypes.py.
parse_bool = argtypes.boolean
_nonneg = argtypes.nonneg
_optional = argtypes.optional

# Commands whose work imports TensorFlow: it is imported first, quietly (benchmark/quiet.py).
TENSORFLOW_COMMANDS = frozenset({"train", "search", "ablate", "efficiency", "bench"})
FORMATTER = argparse.RawDescriptionHelpFormatter  # epilogs keep their example lines


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, `error: ...`, and exit code 2 (no usage block).

    A rejected value is quoted as typed: `--learning-rate abc`, or `-P learning_rate=abc`
    under `mlflow run`, whose MLproject parameters are what the user wrote; an unknown name
    lists the known ones and the nearest ("did you mean").
    """

    commands: dict[str, argparse.ArgumentParser]  # name -> subcommand parser (build_parser)

    def error(self, message: str) -> NoReturn:
        exc = sys.exc_info()[1]
        cause = exc.__context__ if isinstance(exc, argparse.ArgumentError) else None
        if isinstance(cause, argtypes.Rejected):
            typed = _typed(exc.argument_name or "", cause.text)
            message = cause.reason if cause.named else f"{typed}: {cause.reason}"
        elif isinstance(exc, argparse.ArgumentError) and "invalid choice: " in exc.message:
            value = re.search(r"invalid choice: '([^']*)'", exc.message)
            options = re.findall(r"'([^']*)'", exc.message.split("choose from", 1)[-1])
            kind = (exc.argument_name or "value").lower()  # the COMMAND metavar: "command"
            message = choices.unknown(kind, value[1] if value else "", options) or message
        else:
            message = message.removeprefix("argument ")
        sys.exit(_fail(message, _options(self)))


def _under_mlflow_run() -> bool:
    """`mlflow run` started this command (it sets MLFLOW_RUN_ID for it)."""
    return bool(os.environ.get("MLFLOW_RUN_ID"))


def _typed(flag: str, text: str) -> str:
    """An option as the user typed it: `--name value`, or `-P name=value` under mlflow run."""
    if _under_mlflow_run():
        return f"-P {flag.lstrip('-').replace('-', '_')}={text}"
    return f"{flag} {shlex.quote(text)}"


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


def as_mlflow_parameters(message: str, options: set[str]) -> str:
    """`--data-dir DIR` -> `-P data_dir=DIR`, `--dataset` -> `-P dataset=...`: the form a
    user of `mlflow run` types. Only this command's own options are rewritten (a message
    may name flags of the mlflow CLI itself, such as `--experiment-name`)."""

    def swap(m: re.Match) -> str:
        if m[1] not in options:
            return m[0]
        name = m[1][2:].replace("-", "_")
        return f"-P {name}={m[2]}" if m[2] else f"-P {name}=..."

    return re.sub(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?: ([A-Z][A-Z_]*)\b)?", swap, message)


def _fail(message: str, options: set[str] = frozenset(), mlflow: bool | None = None) -> int:
    """Print the one error line (in the -P form under `mlflow run`); the exit code, 2.

    Under `mlflow run`, its run is also ended FAILED with the reason (benchmark.runtime),
    so a typo leaves nothing RUNNING.
    """
    mlflow = _under_mlflow_run() if mlflow is None else mlflow
    if mlflow:
        message = as_mlflow_parameters(message, options)
    print(f"error: {message}", file=sys.stderr, flush=True)
    if mlflow:
        _lazy("benchmark.runtime", "end_project_run")(message)
    return 2


@functools.cache
def _field_notes() -> dict[str, str]:
    """Each TrialConfig field's end-of-line comment in config.py, for its flag's help."""
    try:
        source = inspect.getsource(TrialConfig)
    except (OSError, TypeError):  # no source (a frozen build): flags keep their defaults
        return {}
    found = re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+?)\s*$", source, re.M)
    return {m[1]: m[2] for m in found}


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


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    names = TrialConfig.field_names()
    return TrialConfig.from_options(**{k: v for k, v in vars(args).items() if k in names})


def cmd_train(args: argparse.Namespace) -> int:
    from benchmark.runtime import prepare_tracking
    from benchmark.trial import run_trial

    cfg = config_from_args(args)
    uri = prepare_tracking(args.experiment, dataset=cfg.dataset)
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
    extra = [f"stopped_epoch {m['stopped_epoch']:.0f}"] if cfg.early_stopping_patience else []
    if "test_accuracy_tta" in m:
        extra.append(f"test_accuracy_tta {m['test_accuracy_tta']:.4f}")
    if extra:
        print("  ".join(extra))
    return 0


def _overrides(args: argparse.Namespace) -> dict:
    return {"epochs": args.epochs, "max_train_samples": args.max_train_samples}


def cmd_search(args: argparse.Namespace) -> int:
    from benchmark.data import DATASETS, is_builtin
    from benchmark.runtime import prepare_tracking
    from benchmark.search import dry_run
    from benchmark.search.space import load_space, space_path

    DATASETS.get(args.dataset)  # unknown dataset: say so before reading any file
    space = load_space(space_path(args.dataset, args.space), strategy=args.strategy)
    if space.dataset and space.dataset != args.dataset and is_builtin(args.dataset):
        raise UserError(f"{space.path} is a space for {space.dataset!r}, not {args.dataset!r}")
    if args.dry_run:
        dry_run(space, dataset=args.dataset, data_dir=args.data_dir, overrides=_overrides(args),
                seeds=args.seeds, n_trials=args.n_trials)  # fmt: skip
        return 0
    prepare_tracking(args.experiment, dataset=args.dataset)
    return _run_search(
        space, args, n_trials=args.n_trials, timeout=args.timeout, max_epochs=args.max_epochs
    )


def cmd_ablate(args: argparse.Namespace) -> int:
    from benchmark.augment import policy_names
    from benchmark.data import DATASETS
    from benchmark.runtime import prepare_tracking
    from benchmark.search import ablation_space, best_of_latest_search

    DATASETS.get(args.dataset)  # folder:PATH resolves too: its path is read when loading
    prepare_tracking(args.experiment, dataset=args.dataset)
    run_id, fixed = best_of_latest_search(args.dataset)
    print(f"ablating the best run {run_id} of the latest {args.dataset} search: {fixed}")
    return _run_search(ablation_space(fixed, args.seeds or 1, policy_names()), args,
                       role="ablation")  # fmt: skip


def _run_search(space, args: argparse.Namespace, **extra) -> int:
    from benchmark.report.parent import ParentDescription
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
        workers=args.workers or 1,
        describe=ParentDescription(),
        printer=functools.partial(print, flush=True),
        **extra,
    )
    c = summary.counts
    print(
        f"study {summary.study_name} ({summary.storage}): {summary.stopped_reason}; "
        f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
    )
    if medians := summary.median_timings():
        print("per trial, median s: " + "  ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    if summary.best_params is not None:
        print(f"best {summary.best_params} val_accuracy {summary.best_value:.4f} "
              f"run {summary.best_run_id}")  # fmt: skip
    return 0


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
    _add_common(p)
    _dataset_option(p, required=True)
    optional_int = argtypes.optional(argtypes.integer)
    if space:
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
            "--dry-run",
            type=argtypes.boolean,
            nargs="?",
            const=True,
            default=False,
            metavar="BOOL",
            help="build every model and estimate the time; no training (true or false)",
        )
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
        "--max-failures",
        type=optional_int,
        default=None,
        help="stop after this many failed trials in a row",
    )


def add_report_parser(sub) -> argparse.ArgumentParser:
    """`report` on the CLI's subparsers, bound to benchmark.report.cmd_report.

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
    p.set_defaults(func=lambda args: _lazy("benchmark.report", "cmd_report")(args))
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
  mlflow run . -P dataset=flowers17 -P data_dir=../shared/data""",
    "ablate": """\
example:
  python -m benchmark ablate --dataset cifar10 --data-dir ../shared/data --seeds 3
  mlflow run . -e ablate -P dataset=cifar10""",
    "report": """\
example:
  python -m benchmark report --dataset flowers17 --out reports
  mlflow run . -e report -P dataset=all""",
    "efficiency": """\
example:
  python -m benchmark efficiency --dataset flowers17 --data-dir ../shared/data --replay 20""",
}


def build_parser() -> argparse.ArgumentParser:
    from benchmark import bench_options

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

    ablate = add(
        "ablate", help="best architecture of the latest search x policies", epilog=EPILOGS["ablate"]
    )
    _add_search_options(ablate, space=False)
    ablate.set_defaults(func=cmd_ablate)
    add_report_parser(sub)

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
    eff.set_defaults(func=lambda args: _lazy("benchmark.search.efficiency", "cmd_efficiency")(args))

    bench = add(
        "bench", help="training throughput: seed notebook vs the suite", epilog=bench_options.EPILOG
    )
    bench_options.add_bench_arguments(bench)
    bench.set_defaults(func=lambda args: _lazy("benchmark.bench", "cmd_bench")(args))
    parser.commands = dict(sub.choices)
    return parser


def _lazy(module: str, name: str):
    """Import optional subcommand modules by name, keeping them out of the import graph
    of train/search."""
    import importlib

    return getattr(importlib.import_module(module), name)


def _dashes(argv: Sequence[str]) -> list[str]:
    """`--n_trials 3` read as `--n-trials 3`: `mlflow run` passes a -P parameter that the
    MLproject does not declare as `--name value`, spelt as the parameter is."""
    out = []
    for arg in argv:
        head, sep, tail = arg.partition("=")
        if head.startswith("--") and "_" in head:
            arg = head.replace("_", "-") + sep + tail
        out.append(arg)
    return out


def _unrecognized(extra: Sequence[str], options: set[str], mlflow: bool) -> str:
    """Arguments no option takes, with the nearest option; under `mlflow run` as the
    `-P name=value` parameters they came from (MLflow passes undeclared ones on as flags)."""
    flags = [e.partition("=")[0] for e in extra if e.startswith("--")]
    if not mlflow:
        hint = choices.did_you_mean(flags[0], sorted(options)) if flags else ""
        return f"unrecognized arguments: {' '.join(extra)}{hint}"
    typed, i = [], 0
    while i < len(extra):
        head, eq, value = extra[i].partition("=")
        if head.startswith("--") and not eq and i + 1 < len(extra):
            value, i = extra[i + 1], i + 1
        typed.append(f"-P {head.lstrip('-').replace('-', '_')}={value}" if head[:2] == "--"
                     else extra[i])  # fmt: skip
        i += 1
    names = sorted(o[2:].replace("-", "_") for o in options)
    hint = choices.did_you_mean(flags[0][2:].replace("-", "_"), names) if flags else ""
    return f"unknown parameters: {' '.join(typed)}{hint}"


def main(argv: Sequence[str] | None = None) -> int:
    from benchmark import quiet

    mlflow_route = _under_mlflow_run()  # read now: starting MLflow's run unsets MLFLOW_RUN_ID
    quiet.quiet_environment()  # before anything imports TensorFlow or MLflow
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Two INFO lines per trial about the system-metrics thread starting and stopping would
    # bury the progress lines; its warnings and errors still show.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(_dashes(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0), or Parser.error printed its one line (2)
        return exc.code if isinstance(exc.code, int) else 0
    options = _options(parser.commands[args.command])
    if extra:
        return _fail(_unrecognized(extra, options, mlflow_route), set(), mlflow_route)
    if args.command in TENSORFLOW_COMMANDS:
        quiet.import_tensorflow()  # its C++ start-up lines filtered out, real errors kept
    try:
        return args.func(args)
    except UserError as exc:
        return _fail(str(exc), options, mlflow_route)  # under `mlflow run`: its run FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        _lazy("benchmark.runtime", "end_project_run")("interrupted", "KILLED")
        return 130
