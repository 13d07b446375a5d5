"""Packages whose names load their module on first use (PEP 562), so that importing a package
costs nothing until a name of it is used: `--help` and the trial process's first import stay
free of TensorFlow, and `from benchmark.search.space import ...` does not import the driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, where: dict[str, str]) -> tuple[Callable, Callable]:
    """`__getattr__` and `__dir__` for `package`: name -> the submodule that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted([*vars(importlib.import_module(package)), *where])

    return __getattr__, __dir__
