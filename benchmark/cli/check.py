"""`python -m benchmark check [--repair]`: is a tracking store whole, and does it agree with
its Optuna study storage? Declared here (argparse only) so `check --help` stays light; the
work is the search stage's (benchmark.search.checkup), since it reads Optuna and MLflow.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from benchmark import argtypes

EPILOG = """\
examples:
  python -m benchmark check
  python -m benchmark check --tracking-uri sqlite:///runs/mlflow.db --repair
  mlflow run . -e check -P repair=true

It reads the store and the journal and says in plain lines what it finds: SQLite's
integrity_check, journal lines Optuna cannot replay, complete trials without their FINISHED
run, finished trial runs missing from their study, runs left RUNNING. Exit 0: all is well
(or repaired); 1: problems left. --repair first copies the journal beside it
(<file>.bak-<time>), then keeps its readable records, restores finished trials from the
runs, reopens complete trials whose runs are gone (the next search trains them) and marks
orphan runs KILLED."""


def add_check_parser(add: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`check` on the CLI's subparsers (`add`: their add_parser), bound to cmd_check."""
    p = add("check", help="is the tracking store whole and does the study journal agree",
            epilog=EPILOG)  # fmt: skip
    p.add_argument(
        "--storage", type=argtypes.optional(str), default=None,
        help="Optuna storage as `search` takes it: a journal file path, journal:///PATH or an "
        "SQLAlchemy URL (default: optuna.journal beside mlflow.db)",
    )  # fmt: skip
    p.add_argument("--tracking-uri", type=argtypes.optional(str), default=None,
                   help="default: MLFLOW_TRACKING_URI, else ./mlflow.db")  # fmt: skip
    p.add_argument(
        "--repair", type=argtypes.boolean, nargs="?", const=True, default=False,
        metavar="BOOL", help="fix what can be fixed, after a backup (true or false)",
    )  # fmt: skip
    p.set_defaults(func=cmd_check)
    return p


def cmd_check(args: argparse.Namespace) -> int:
    from benchmark.search.checkup import check
    from benchmark.train.tracking import Tracking

    code = check(args.storage, args.tracking_uri, args.repair,
                 functools.partial(print, flush=True))  # fmt: skip
    Tracking.from_env().mark_project_run("check")  # under `mlflow run -e check`: no trial
    return code
