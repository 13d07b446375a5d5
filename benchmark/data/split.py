"""Fixed, seeded train/val/test splits and stratified subsets of labelled arrays.

Owns `SPLIT_SEED` and the stratified carving every loader uses. Model selection must
never see the test set, so every dataset comes with a validation split that is fixed
(seed 0) and independent of trial settings such as `max_train_samples`: all trials of a
study are compared on the same images. Results depend only on the labels and the seed.

Imports: benchmark.errors only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from benchmark.errors import UserError

SPLIT_SEED = 0  # the one seed for val/test carving and subsets: same split for every trial


def stratified_split(
    y: np.ndarray, fractions: Sequence[float], seed: int, describe: Callable[[int], str]
) -> list[np.ndarray]:
    """Per class, carve parts of `fractions` (at least 1 image each) off a shuffled copy.

    Returns [rest, part_1, ...] as sorted index arrays, so data order is preserved and
    the result depends only on the labels and the seed. A class too small to leave at
    least one image in every part is a `UserError` naming it via `describe`.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        sizes = [max(1, int(np.floor(len(idx) * f + 0.5))) for f in fractions]
        if len(idx) - sum(sizes) < 1:
            raise UserError(
                f"{describe(int(c))} has only {len(idx)} images: too few to leave at least "
                f"one in each of {'/'.join(['train', 'val', 'test'][: len(fractions) + 1])}"
            )
        start = 0
        for i, n in enumerate(sizes, start=1):
            parts[i].append(idx[start : start + n])
            start += n
        parts[0].append(idx[start:])
    return [np.sort(np.concatenate(p)) for p in parts]


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray | None:
    """Indices of `n` samples keeping class proportions (largest remainder); None = all."""
    if n >= len(y):
        return None
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / len(y)
    take_n = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take_n), kind="stable")
    take_n[order[: n - take_n.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(y == c), size=k, replace=False)
        for c, k in zip(classes, take_n, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (images, labels) pair at `idx`: one split of a dataset held as one array."""
    return x[idx], y[idx]
