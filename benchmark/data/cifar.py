"""CIFAR-10 and CIFAR-100 from the upstream python-pickle archives.

Owns the two registered loaders and the reading of the pickled batches (restricted
unpickling: a pickle is a program). The 50k train images are split into train and a
seeded stratified val; the test batch is used untouched.

Imports: benchmark.errors (via upstream) and benchmark.data.{archive, cache, catalog,
images, split, upstream}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data.archive import restricted_load
from benchmark.data.cache import cache_file, cached
from benchmark.data.catalog import DATASETS, Loaded, Request
from benchmark.data.images import resize_all
from benchmark.data.split import SPLIT_SEED, stratified_split, take
from benchmark.data.upstream import Found, Upstream, layout_error, locate, upstream_folder

CIFAR10 = Upstream(
    "cifar10", "cifar-10-python.tar.gz", "cifar-10-batches-py",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
)  # fmt: skip
CIFAR100 = Upstream(
    "cifar100", "cifar-100-python.tar.gz", "cifar-100-python",
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
)  # fmt: skip
CIFAR_SIZE = 32


def _read_pickle(folder: Path, member: str, found: Found) -> dict:
    path = folder / member
    if not path.is_file():
        raise layout_error(found, f"{folder.name}/{member}")
    with open(path, "rb") as f:
        obj = restricted_load(f)
    if not isinstance(obj, dict):
        raise layout_error(found, f"a dict in {folder.name}/{member}")
    return obj


def _key(d: dict, key: bytes, member: str, found: Found):
    try:
        return d[key]
    except KeyError:
        raise layout_error(found, f"key {key!r} in {member}") from None


def _names(values, member: str, found: Found) -> list[str]:
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    except (TypeError, UnicodeDecodeError):
        raise layout_error(found, f"a list of label names in {member}") from None


def _cifar_batch(
    batch: dict, label_key: bytes, n_classes: int, member: str, found: Found
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 and int32 labels from one batch dict (N x 3072 planar rows)."""
    data = np.asarray(_key(batch, b"data", member, found))
    labels = np.asarray(_key(batch, label_key, member, found))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * CIFAR_SIZE**2:
        raise layout_error(found, f"uint8 N x 3072 b'data' in {member} (got {data.shape})")
    if labels.shape != (len(data),) or not (0 <= labels.min() and labels.max() < n_classes):
        raise layout_error(found, f"{len(data)} labels in 0..{n_classes - 1} in {member}")
    images = data.reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int32)


def decode_cifar(folder: Path, found: Found, label_mode: str) -> dict[str, np.ndarray]:
    """Read an extracted CIFAR-10 or CIFAR-100 folder (restricted unpickling)."""
    if folder.name == CIFAR100.folder:
        meta_member, train_members, test_member = "meta", ["train"], "test"
        names_key, label_key = (
            (b"fine_label_names", b"fine_labels") if label_mode == "fine"
            else (b"coarse_label_names", b"coarse_labels")
        )  # fmt: skip
    else:
        meta_member, test_member = "batches.meta", "test_batch"
        train_members = [f"data_batch_{i}" for i in range(1, 6)]
        names_key, label_key = b"label_names", b"labels"
    meta = _read_pickle(folder, meta_member, found)
    names = _names(_key(meta, names_key, meta_member, found), meta_member, found)
    parts = {}
    for part, members in (("train", train_members), ("test", [test_member])):
        batches = [
            _cifar_batch(_read_pickle(folder, m, found), label_key, len(names), m, found)
            for m in members
        ]
        parts[f"x_{part}"] = np.concatenate([b[0] for b in batches])  # contiguous NHWC
        parts[f"y_{part}"] = np.concatenate([b[1] for b in batches])
    return {**parts, "class_names": np.array(names)}


def _load_cifar(up: Upstream, req: Request) -> Loaded:
    """Locate, decode (or read from cache), then carve the seeded stratified val split."""
    found = locate(up, req.data_dir)
    size = req.image_size or CIFAR_SIZE

    def build() -> dict[str, np.ndarray]:
        arrays = decode_cifar(upstream_folder(found, up, req.cache), found, req.label_mode)
        if size != CIFAR_SIZE:
            for key in ("x_train", "x_test"):
                arrays[key] = resize_all(arrays[key], size)
        return arrays

    path = cache_file(req.cache, up.name, found.identity, size, req.label_mode)
    arrays = cached(path, build)
    names = tuple(str(n) for n in arrays["class_names"])
    x, y = arrays["x_train"], arrays["y_train"]
    train, val = stratified_split(
        y, [req.val_fraction], SPLIT_SEED, lambda c: f"{up.name} class {names[c]!r}"
    )
    splits = {
        "train": take(x, y, train),
        "val": take(x, y, val),
        "test": (arrays["x_test"], arrays["y_test"]),
    }
    return Loaded(names, splits, found.source)


@DATASETS.register(image_size=CIFAR_SIZE)
def cifar10(req: Request) -> Loaded:
    """CIFAR-10: 10 classes of 32x32 photos; val carved from the 50k train images."""
    return _load_cifar(CIFAR10, req)


@DATASETS.register(image_size=CIFAR_SIZE)
def cifar100(req: Request) -> Loaded:
    """CIFAR-100: 100 fine or 20 coarse (`label_mode`) classes of 32x32 photos."""
    return _load_cifar(CIFAR100, req)
