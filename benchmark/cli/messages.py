"""How the CLI says no: one line on stderr, `error: ...`, exit code 2, never a traceback or
a usage block; under `mlflow run` in the `-P name=value` form the user typed.
May import: benchmark.choices, benchmark.argtypes (light: no TensorFlow, no MLflow).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

from benchmark import argtypes, choices


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
    return bool(project_run_id())


def project_run_id() -> str | None:
    """The run `mlflow run` made for this command; read once, when the command starts
    (prepare_tracking takes it out of the environment and into its Tracking object)."""
    return os.environ.get("MLFLOW_RUN_ID") or None


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


def _fail(message: str, options: set[str] = frozenset(), project_run: str | None = None) -> int:
    """Print the one error line (in the -P form under `mlflow run`); the exit code, 2.

    Under `mlflow run` (`project_run`, read when the command started; default: the
    environment now), its run is also ended FAILED with the reason, so a typo leaves
    nothing RUNNING.
    """
    project_run = project_run or project_run_id()
    if project_run:
        message = as_mlflow_parameters(message, options)
    print(f"error: {message}", file=sys.stderr, flush=True)
    if project_run:
        _lazy("benchmark.train.tracking", "end_project_run")(project_run, message)
    return 2


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


def _lazy(module: str, name: str):
    """Import optional subcommand modules by name, keeping them out of the import graph
    of train/search."""
    import importlib

    return getattr(importlib.import_module(module), name)
