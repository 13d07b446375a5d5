"""`load_dataset`: one entry point that validates, dispatches to a loader and finishes.

Owns what is the same for every source: checking the arguments (so every loader gets
valid settings and every bad value is a `UserError`), resolving the data and cache
directories, taking the `max_train_samples` subset last (so val and test never depend
on it), fixing dtypes and layout, and the digest.

Imports: benchmark.errors, benchmark.config (the settings' rules) and
benchmark.data.{cache, catalog, split, upstream}. The loaders themselves are registered by
the package's ``__init__``, which Python always runs before this module.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from benchmark.config import check_setting
from benchmark.data.cache import cache_root, digest
from benchmark.data.catalog import DATASETS, Dataset, Loaded, Request
from benchmark.data.split import SPLIT_SEED, stratified_subset
from benchmark.data.upstream import resolve_data_dir
from benchmark.errors import UserError

log = logging.getLogger(__name__)


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    label_mode: str = "fine",
    split: int = 1,
    val_fraction: float = 0.1,
    max_train_samples: int | None = None,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Load `name` ("cifar10", "cifar100", "flowers17" or "folder:PATH") as a `Dataset`.

    `image_size` None means `default_image_size(name)`; `label_mode` "coarse" exists
    only for cifar100; `split` (1..3) picks one of the official flowers17 splits;
    `val_fraction` is carved from train where the dataset has no val split;
    `max_train_samples` keeps a stratified subset of train, chosen last so that val and
    test do not depend on it. `data_dir` applies to plain names only: a family member
    (folder:PATH) names its own data. Every bad value or missing file is a `UserError`.
    """
    loader = DATASETS.get(name)  # unknown name -> UserError listing the known ones
    _, argument = DATASETS.parse(name)
    settings = {"image_size": image_size, "label_mode": label_mode, "split": split,
                "val_fraction": val_fraction, "max_train_samples": max_train_samples}  # fmt: skip
    for key, value in settings.items():  # TrialConfig's rules, in its words
        check_setting(key, value.item() if isinstance(value, np.generic) else value)
    if label_mode == "coarse" and name != "cifar100":
        raise UserError(f"label_mode 'coarse' exists only for cifar100, not {name!r}")

    request = Request(
        data_dir=None if argument is not None else resolve_data_dir(data_dir),
        image_size=None if image_size is None else int(image_size),
        label_mode=label_mode,
        split=split,
        val_fraction=float(val_fraction),
        cache=cache_root(cache_dir),
    )
    loaded = loader(request)
    dataset = _finish(loaded.name or name, loaded, max_train_samples)
    log.info("dataset %r from %s: %s", dataset.name, dataset.source, dataset)
    return dataset


def _finish(name: str, loaded: Loaded, max_train_samples: int | None) -> Dataset:
    """Apply `max_train_samples`, enforce dtypes and layout, compute the digest."""
    x_train, y_train = loaded.splits["train"]
    if max_train_samples is not None:
        keep = stratified_subset(y_train, int(max_train_samples), SPLIT_SEED)
        if keep is not None:
            x_train, y_train = x_train[keep], y_train[keep]
    arrays: dict[str, np.ndarray] = {}
    for part, (x, y) in (
        ("train", (x_train, y_train)),
        ("val", loaded.splits["val"]),
        ("test", loaded.splits["test"]),
    ):
        arrays[f"x_{part}"] = np.ascontiguousarray(x, dtype=np.uint8)
        arrays[f"y_{part}"] = np.ascontiguousarray(y, dtype=np.int32)
    return Dataset(
        name=name,
        class_names=tuple(loaded.class_names),
        digest=digest(arrays, loaded.class_names),
        source=loaded.source,
        **arrays,
    )
