"""String literals for MLflow search filters, quoted one way everywhere.

MLflow's filter parser strips a value's outer quotes and knows no escapes: a value holding a
single quote must be wrapped in double quotes, and one holding both kinds cannot be matched
at all. Names a user chooses (a study name, a folder dataset's path) reach filters, so every
filter built here quotes its values through `literal`.
"""

from __future__ import annotations

from benchmark.errors import UserError


def literal(value: object) -> str:
    """`value` as a filter literal: `'flowers17'`, `"it's mine"`; both quote kinds: an error."""
    text = str(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise UserError(
        f"{text!r} holds both ' and \": MLflow's search filters cannot match it; rename it"
    )
