"""`python -m benchmark lab`: every lab task into one store, then the reports.

The stages are benchmark/search/lab.py's; this module parses the options, binds the search
to the command's tracking, and writes the reports once the stages are done (the report is a
later stage than the search, so the search stage cannot call it).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from benchmark import argtypes, choices
from benchmark.choices import LAB_DATASETS

EPILOG = """\
examples:
  python -m benchmark lab --data-dir ../shared/data --dry-run
  python -m benchmark lab --data-dir ../shared/data
  python -m benchmark lab --datasets flowers17 --epochs 2 --max-train-samples 170 --seeds 2
  python -m benchmark lab --data-dir ../shared/data --auto --parts ema,label_smoothing,batch_size
  mlflow run . --env-manager local -e lab -P data_dir=../shared/data"""


datasets = argtypes.names("lab dataset", LAB_DATASETS)  # cifar10,flowers17
parts = argtypes.names("lab part", choices.LAB_PARTS)  # ema,label_smoothing,batch_size


def add_lab_parser(add: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`lab` on the CLI's subparsers (options named as the MLproject entry's parameters)."""
    optional_int = argtypes.optional(argtypes.integer)
    p = add("lab", help="every lab task as stages into one store, then the reports",
            epilog=EPILOG)  # fmt: skip
    p.add_argument("--datasets", type=argtypes.optional(datasets), default=None,
                   metavar="LIST", help=f"comma list of {', '.join(LAB_DATASETS)} (default: "
                   "every one whose data is found)")  # fmt: skip
    p.add_argument("--data-dir", type=argtypes.optional(str), default=None,
                   help="directory holding the upstream archives (env BENCHMARK_DATA_DIR)")
    p.add_argument("--seeds", type=argtypes.optional(argtypes.positive), default=None,
                   help="seeds of every configuration (default 3: a 95%% CI on each effect)")
    p.add_argument("--epochs", type=optional_int, default=None,
                   help="override every stage's epochs (a quick run)")
    p.add_argument("--max-train-samples", type=optional_int, default=None,
                   help="override every stage's training images (a quick run)")
    p.add_argument("--auto", type=argtypes.boolean, nargs="?", const=True, default=False,
                   metavar="BOOL", help="also run each dataset's *-auto.yaml halving search")
    p.add_argument("--budget-factor", type=argtypes.optional(float), default=None,
                   metavar="F", help="each auto search's time budget times F (default 1: "
                   "the spaces' budgets, sized on a 2-core AVX-512 CPU; an AVX2-only CPU trains "
                   "about 2x slower: 2)")  # fmt: skip
    p.add_argument("--parts", type=argtypes.optional(parts), default=None, metavar="LIST",
                   help="recipe parts to vary on each dataset's winner (auto's, else task "
                   "1's), a stage each on every seed: a comma list of ema, label_smoothing, "
                   "batch_size, precision (default: none)")  # fmt: skip
    p.add_argument("--dry-run", type=argtypes.boolean, nargs="?", const=True, default=False,
                   metavar="BOOL", help="print the stages, trainings and minutes; train nothing")
    p.add_argument("--out", default="reports", help="reports folder (default: reports)")
    p.add_argument("--spaces", type=argtypes.optional(str), default=None, metavar="DIR",
                   help="folder of the stages' spaces, <dataset>.yaml (task 1) and "
                   "<dataset>-auto.yaml (default: search_spaces)")  # fmt: skip
    p.add_argument("--experiment", default=None, help="MLflow experiment name")
    p.set_defaults(func=cmd_lab)
    return p


def cmd_lab(args: argparse.Namespace) -> int:
    import os

    from benchmark.data.upstream import DATA_ENV
    from benchmark.search import lab

    settings = lab.LabSettings(
        datasets=args.datasets or lab.LAB_DATASETS,
        data_dir=args.data_dir or os.environ.get(DATA_ENV), seeds=args.seeds or 3,
        epochs=args.epochs, max_train_samples=args.max_train_samples, auto=args.auto,
        budget_factor=1.0 if args.budget_factor is None else args.budget_factor,
        parts=args.parts or (),
        **({"spaces": Path(args.spaces)} if args.spaces else {}),
    )  # fmt: skip
    say = functools.partial(print, flush=True)
    search = None if args.dry_run else _search(args)  # the store checked before the data
    ready, skipped = lab.check_data(settings, say)
    stages = lab.plan_stages(settings, ready)
    lab.estimate_stages(stages, settings, say)
    for line in lab.plan_lines(stages, skipped):  # the plan, then (unless a dry run) the lab
        say(line)
    if args.dry_run:
        return 0
    outcome = lab.run_stages(stages, settings, search, say)
    say(_closing(outcome))
    from benchmark.report import write_reports

    for path in write_reports("all", args.out, command=command_line(), skipped=skipped):
        say(str(path))
    return 0


def _search(args: argparse.Namespace) -> Callable:
    """run_search bound to this command's tracking, parent description and printer."""
    from benchmark.report.parent import ParentDescription
    from benchmark.search import run_search
    from benchmark.train.tracking import prepare_tracking

    tracking = prepare_tracking(args.experiment)
    # Under `mlflow run` its run is the lab's, not any one stage's parent: say so, and let
    # each stage's search make its own parent in its dataset's experiment.
    tracking.mark_project_run("wrapper", note="This `mlflow run` ran the lab's stages; each "
                              "stage is a search run in its dataset's experiment.")  # fmt: skip
    stages_tracking = dataclasses.replace(tracking, project_run=None)
    return functools.partial(run_search, describe=ParentDescription(), tracking=stages_tracking,
                             printer=functools.partial(print, flush=True))  # fmt: skip


def _closing(outcome) -> str:
    from benchmark.search.summary import hms

    if not outcome.trained:
        return f"lab: every stage already complete, nothing trained ({len(outcome.stages)} stages)"
    return (f"lab: {outcome.trained} stage(s) trained in {hms(outcome.wall_s)} (estimated "
            f"{hms(outcome.estimate_s)}); writing the reports")  # fmt: skip


def command_line() -> str:
    """The command as typed, for the reports' header (`python -m benchmark lab ...`)."""
    return "python -m benchmark " + shlex.join(sys.argv[1:])
