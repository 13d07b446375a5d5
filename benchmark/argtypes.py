"""Value types for the command line, each saying in words what was wrong with a value.

Why not argparse's own: its "invalid float value: 'abc'" comes with a usage block, and a
near miss of a name gets no hint. A Rejected keeps the text that was typed, so the CLI's one
error line (cli.Parser.error) can quote it as `--learning-rate abc`, or as
`-P learning_rate=abc` under `mlflow run`. Light: --help imports this, never TensorFlow.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from benchmark import choices

NONE_WORDS = ("", "none", "null")  # MLproject parameters cannot be null: these mean "not given"


class Rejected(argparse.ArgumentTypeError):
    """A value an option cannot take: what was typed and why not.

    `named`: the reason already names the setting and the value ("unknown model 'x'; ..."),
    so the error line is the reason alone, worded like the registries' own errors.
    """

    def __init__(self, text: str, reason: str, named: bool = False) -> None:
        super().__init__(reason)
        self.text, self.reason, self.named = text, reason, named


def boolean(text: str) -> bool:
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise Rejected(text, "expected true or false")


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise Rejected(text, "expected an integer") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise Rejected(text, "expected a number") from None


def nonneg(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise Rejected(text, "expected 0 or more")
    return value


def positive(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise Rejected(text, "expected a positive integer")
    return value


def seeds(text: str) -> tuple[int, ...]:
    """Comma-separated seeds, e.g. 0,1,2."""
    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 0:
        raise Rejected(text, "expected seeds like 0,1,2")
    return values


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse`, except that "none", "null" or "" mean "not given" (None): the MLproject
    default of every optional parameter."""

    def convert(text: str) -> Any:
        return None if str(text).strip().lower() in NONE_WORDS else parse(text)

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def choice(field: str, extra: tuple[str, ...] = ()) -> Callable[[str], str]:
    """A value of choices.CHOICES[field] (or `extra`), with "did you mean" for near misses."""
    return one_of(field, (*extra, *choices.CHOICES[field]), choices.PATTERNS.get(field, ()))


def one_of(kind: str, options: Sequence[str], patterns: Sequence[str] = ()) -> Callable[[str], str]:
    """One of `options` (or a value matching a pattern such as folder:PATH)."""

    def convert(text: str) -> str:
        reason = choices.unknown(kind, text, options, patterns)
        if reason:
            raise Rejected(text, reason, named=True)
        return text

    convert.__name__ = kind
    return convert


def names(kind: str, options: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """A comma list of `options` (cifar10,flowers17), each checked with "did you mean"."""

    def convert(text: str) -> tuple[str, ...]:
        listed = tuple(n.strip() for n in text.split(",") if n.strip())
        for name in listed or (text,):
            if reason := choices.unknown(kind, name, options):
                raise Rejected(text, reason, named=True)
        return listed

    convert.__name__ = kind
    return convert
