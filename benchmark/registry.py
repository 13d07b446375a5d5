"""Name -> function registries (timm's `@register_model` habit).

A new dataset, augmentation policy or model family is one decorated function; the
CLI, the search space validation and the README lists all read the same registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from benchmark.errors import UserError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """A dict of named functions that fails loudly, listing what exists."""

    def __init__(self, kind: str, extra_names: tuple[str, ...] = ()) -> None:
        self.kind = kind  # "dataset", "augmentation", "model": used in error messages
        self.extra_names = extra_names  # names resolved elsewhere, shown in messages (folder:PATH)
        self._items: dict[str, F] = {}

    def register(self, fn: F | None = None, *, name: str | None = None):
        """Decorator: `@REG.register` or `@REG.register(name="x")`; returns fn unchanged."""

        def add(f: F) -> F:
            key = name or f.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} registered twice")
            self._items[key] = f
            return f

        return add(fn) if fn is not None else add

    def unregister(self, key: str) -> None:
        """Remove `key` again: for tests and plugins that clean up after themselves."""
        del self._items[key]

    def names(self) -> list[str]:
        return list(self._items)

    def known(self) -> str:
        return ", ".join([*self._items, *self.extra_names])

    def get(self, key: str) -> F:
        try:
            return self._items[key]
        except KeyError:
            raise UserError(f"unknown {self.kind} {key!r}; known: {self.known()}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._items
