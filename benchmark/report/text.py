"""How a report writes a setting's value, so that a person can read the file.

Why: a searched float is logged with all its digits (learning_rate=0.021518226328569492).
`short` keeps 4 significant digits of a float and every other value as logged.

Imports nothing of the report, so that every report module (load.py included) may use it.
"""

from __future__ import annotations

import math
import re
from typing import Any

DIGITS = 4  # significant digits of a float setting: 0.02152, 0.0005, 1e-05
_INT = re.compile(r"[+-]?\d+")


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
