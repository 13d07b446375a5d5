"""The dataset catalog: which names exist, what a loader is given and what it returns.

Owns `DATASETS` (plain names such as ``cifar10`` and families such as ``folder:PATH``,
whose argument follows the prefix), `Request`, `Loaded`, `Dataset`, and the name helpers
`parse`, `source_name`, `is_builtin` and `default_image_size`. Callers ask these instead
of testing a prefix themselves, so a new family needs no change outside its own module.

Imports: benchmark.registry only; every other data module imports
this one, never the reverse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.registry import Registry


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """One dataset, already split; arrays are uint8 NHWC images and int32 labels.

    `digest` fingerprints the exact arrays and class names (tagged on MLflow runs, so
    two runs are comparable only if their digests match); `source` says where the
    data came from, for logs.
    """

    name: str
    class_names: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    digest: str
    source: str

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.x_train.shape[1:])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {self.n_classes} classes, {self.image_shape}, "
            f"{self.sizes()}, digest={self.digest})"
        )


@dataclass(frozen=True)
class Request:
    """The settings a registered loader needs, already validated by `load_dataset`.

    `data_dir` is None for a family member (folder:PATH names its own data) and when no
    data directory was given; `image_size` None means the loader's default.
    """

    data_dir: Path | None
    image_size: int | None
    label_mode: str
    split: int
    val_fraction: float
    cache: Path


@dataclass(frozen=True)
class Loaded:
    """What a loader returns: split arrays (name -> (x, y)), class names, source.

    `splits` holds "train", "val" and "test"; `load_dataset` subsets train, fixes the
    dtypes and computes the digest. `name` is the canonical dataset name when it differs
    from the one asked for (folder:~/x becomes folder:/home/me/x), else None.
    """

    class_names: tuple[str, ...]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str
    name: str | None = None


Loader = Callable[[Request], Loaded]
FamilyLoader = Callable[[str, Request], Loaded]


@dataclass(frozen=True)
class _Family:
    load: FamilyLoader
    arg: str  # how help and messages show the argument: PATH
    image_size: int


class DatasetRegistry(Registry[Loader]):
    """Plain dataset names, plus families: a prefix ("folder:") whose loader takes the rest.

    `get` resolves both kinds, so `load_dataset` and the CLI treat folder:PATH like any
    other name; `known()` lists families as prefix + argument (folder:PATH), last.
    """

    def __init__(self) -> None:
        super().__init__("dataset")
        self._sizes: dict[str, int] = {}
        self._families: dict[str, _Family] = {}

    def register(self, fn: Loader | None = None, *, name: str | None = None, image_size: int = 64):
        """Decorator for a loader `f(Request) -> Loaded`; `image_size` is its default side."""

        def add(f: Loader) -> Loader:
            key = name or f.__name__
            Registry.register(self, f, name=key)
            self._sizes[key] = image_size
            return f

        return add(fn) if fn is not None else add

    def register_family(
        self, prefix: str, *, arg: str, image_size: int
    ) -> Callable[[FamilyLoader], FamilyLoader]:
        """Decorator for a loader `f(argument, Request) -> Loaded` of every name `prefix...`."""
        if not prefix.endswith(":"):
            raise ValueError(f"a dataset family prefix ends with ':', not {prefix!r}")

        def add(f: FamilyLoader) -> FamilyLoader:
            if prefix in self._families:
                raise ValueError(f"dataset family {prefix!r} registered twice")
            self._families[prefix] = _Family(f, arg, image_size)
            return f

        return add

    def unregister(self, name: str) -> None:
        """Remove a plain name or a family (by its prefix): for tests and plugins that clean up."""
        if name in self._items:
            del self._items[name], self._sizes[name]
        else:
            del self._families[name]

    def _family(self, name: str) -> tuple[str, _Family] | None:
        for prefix, family in self._families.items():
            if name.startswith(prefix):
                return prefix, family
        return None

    def parse(self, name: str) -> tuple[str, str | None]:
        """(source, argument): ("folder", "/x") for "folder:/x", ("cifar10", None) else."""
        found = self._family(name)
        if found is None:
            return name, None
        prefix, _ = found
        return prefix[:-1], name[len(prefix) :]

    def get(self, key: str) -> Loader:
        """The loader of `key` (a family's bound to its argument); unknown -> `UserError`."""
        found = self._family(key)
        if found is None:
            return super().get(key)
        prefix, family = found
        return functools.partial(family.load, key[len(prefix) :])

    def image_size(self, name: str) -> int:
        """The default side length of `name`'s images; unknown -> `UserError`."""
        found = self._family(name)
        if found is not None:
            return found[1].image_size
        self.get(name)  # unknown name -> UserError listing the known ones
        return self._sizes[name]

    def known(self) -> str:
        families = [prefix + f.arg for prefix, f in self._families.items()]
        return ", ".join([*self._items, *families])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._items or self._family(key) is not None)


DATASETS = DatasetRegistry()


def parse(name: str) -> tuple[str, str | None]:
    """Split a dataset name into its source and argument: "folder:/x" -> ("folder", "/x")."""
    return DATASETS.parse(name)


def source_name(name: str) -> str:
    """The registered source a dataset name belongs to: "folder:/x" -> "folder".

    What a per-source choice (the default search space file, a report's grouping) keys on;
    an unknown name comes back as it is, for the caller's own error.
    """
    return DATASETS.parse(name)[0]


def is_builtin(name: str) -> bool:
    """True for a registered plain name (cifar10), False for a family member (folder:PATH)
    or an unknown name: only plain names have a shipped space that must match them."""
    return name in DATASETS.names()


def default_image_size(name: str) -> int:
    """Side length used when `image_size` is None: native 32 for CIFAR, 64 for photos.

    For folder:PATH this is the fallback only: loading uses the images' own size when they
    all share one (see `benchmark.data.folder`), which is not known before the folder is read.
    """
    return DATASETS.image_size(name)
