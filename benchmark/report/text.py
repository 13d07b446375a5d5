"""How a report writes a setting's value and a long line, so that a person can read the file.

Why: a searched float is logged with all its digits (learning_rate=0.021518226328569492), and
a paragraph built from many sentences became one line of up to 1,400 characters, which no
editor, diff or terminal shows whole. `short` keeps 4 significant digits of a float and every
other value as logged; `readable` breaks a long prose line into one sentence per line (and a
sentence still too long at word boundaries). Markdown renders both as before: a line break
inside a paragraph is a space.

Imports nothing of the report, so that every report module (load.py included) may use it.
"""

from __future__ import annotations

import math
import re
import textwrap
from typing import Any

DIGITS = 4  # significant digits of a float setting: 0.02152, 0.0005, 1e-05
LONG_LINE = 250  # a prose line longer than this is broken into sentences
WIDTH = 100  # a sentence longer than LONG_LINE is wrapped at this width
_INT = re.compile(r"[+-]?\d+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_NEW_BLOCK = re.compile(r"(?:[-+*>#|]|\d+[.)])(?:\s|$)")  # a line markdown reads as a new block


def short(value: Any, digits: int = DIGITS) -> str:
    """A setting's value as text: a float to `digits` significant digits, anything else
    (an int, a name, True, None) as logged. A float already that short keeps its own
    spelling (0.0, 1e-05), so a value reads the same wherever it is shown."""
    text = str(value)
    if _INT.fullmatch(text):
        return text
    try:
        x = float(text)
    except ValueError:
        return text
    if not math.isfinite(x):
        return text
    fewer = f"{x:.{digits}g}"
    return text if float(fewer) == x else fewer


def readable(markdown: str, limit: int = LONG_LINE, width: int = WIDTH) -> str:
    """`markdown` with every prose line over `limit` characters broken into one sentence a
    line (a sentence still over `limit` wrapped at `width`); tables, headings, images and
    code blocks are left as they are. A list item's continuation lines are indented, so they
    stay in the item."""
    out, fenced = [], False
    for line in markdown.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or len(line) <= limit or line.lstrip().startswith(("|", "#", "![", "<")):
            out.append(line)
            continue
        out.extend(_broken(line, limit, width))
    return "\n".join(out)


def _broken(line: str, limit: int, width: int) -> list[str]:
    """One long prose line as several: its sentences, each wrapped when still too long."""
    item = re.match(r"\s*(?:[-*+]|\d+[.)])\s+", line)
    indent = " " * len(item.group(0)) if item else re.match(r"\s*", line).group(0)
    lines: list[str] = []
    for sentence in _sentences(line.strip()):
        parts = [sentence]
        if len(sentence) > limit:
            parts = _wrapped(sentence, width)
        for part in parts:
            if lines and _NEW_BLOCK.match(part):  # would start a list, quote or heading
                lines[-1] += " " + part
            else:
                lines.append(part)
    first = line[: len(line) - len(line.lstrip())]
    return [first + lines[0], *(indent + rest for rest in lines[1:])]


def _sentences(text: str) -> list[str]:
    """`text` split after each sentence end that is outside a code span."""
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if text.count("`", 0, m.start()) % 2 == 0:  # not inside `code`
            out.append(text[start : m.start()])
            start = m.end()
    return [*out, text[start:]]


def _wrapped(sentence: str, width: int) -> list[str]:
    """A sentence wrapped at word boundaries outside code spans (a code span never breaks:
    a name or command copied from the report must stay whole)."""
    keep = "\x00"  # stands for a space inside a code span while wrapping
    spans = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", keep), sentence)
    lines = textwrap.wrap(spans, width, break_long_words=False, break_on_hyphens=False)
    return [w.replace(keep, " ") for w in lines]
