"""Benchmark datasets as uint8 NHWC arrays with fixed train/val/test splits.

Why it looks like this:

* Model selection must never see the test set, so every dataset comes with a
  validation split that is fixed (seed 0) and independent of trial settings such as
  `max_train_samples`: all trials of a study are compared on the same images.
* Machines may be offline, so data is looked for in a user directory first
  (`--data-dir` / ``BENCHMARK_DATA_DIR``), then in the Keras cache, and downloaded
  only as a last resort. User files are read, never written next to.
* Decoding JPEGs and unpickling batches is slow, so decoded arrays are cached as
  .npz under `cache_root()`, keyed by the identity of the source (archive md5 or a
  hash of a folder's file listing) and by the decoding settings; a repeated load only
  reads one file.
* Images stay uint8 (CIFAR-10 train is ~150 MB as uint8, 8x that as float64);
  scaling to float happens batch-wise in the input pipeline.

New datasets: a function decorated with `@DATASETS.register` that takes a `_Request`
and returns `_Loaded`; `load_dataset` does the validation, subsetting and digest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.archive import CACHE_ENV, atomic_savez, file_md5, restricted_load, safe_extract
from benchmark.errors import UserError
from benchmark.registry import Registry

log = logging.getLogger("benchmark.datasets")

DATASETS = Registry("dataset", extra_names=("folder:PATH",))

DATA_ENV = "BENCHMARK_DATA_DIR"
SPLIT_SEED = 0  # the one seed for val/test carving and subsets: same split for every trial
_CACHE_VERSION = 1  # bump when the cached array format or decoding changes
_DEFAULT_SIZE = {"cifar10": 32, "cifar100": 32, "flowers17": 64}
_FOLDER_PREFIX = "folder:"
_FOLDER_SIZE = 64  # folder images of differing sizes are resized to this by default
_FOLDER_MAX_NATIVE = 256  # a shared size above this is not kept (memory: N x size^2 x 3 bytes)

FLOWERS17_CLASSES = (
    "Daffodil", "Snowdrop", "LilyValley", "Bluebell", "Crocus", "Iris", "TigerLily",
    "Tulip", "Fritillary", "Sunflower", "Daisy", "Coltsfoot", "Dandelion", "Cowslip",
    "Buttercup", "Windflower", "Pansy",
)  # fmt: skip
_FLOWERS_PER_CLASS = 80


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
class _Request:
    """The settings a registered loader needs (validated by `load_dataset`)."""

    data_dir: Path | None
    image_size: int | None
    label_mode: str
    split: int
    val_fraction: float
    cache: Path


@dataclass(frozen=True)
class _Loaded:
    """What a loader returns: split arrays (name -> (x, y)), class names, source."""

    class_names: tuple[str, ...]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    source: str


# --------------------------------------------------------------------------- public API


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where extracted archives and decoded arrays live: the argument, else the
    ``BENCHMARK_CACHE_DIR`` environment variable, else ``~/.cache/cnn-benchmark``."""
    value = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or None
    return Path(value or "~/.cache/cnn-benchmark").expanduser().absolute()


def default_image_size(name: str) -> int:
    """Side length used when `image_size` is None: native 32 for CIFAR, 64 for photos.

    For folder:PATH this is the fallback only: loading uses the images' own size when they
    all share one (see `_load_folder`), which is not known before the folder is read.
    """
    if name.startswith(_FOLDER_PREFIX):
        return _FOLDER_SIZE
    DATASETS.get(name)  # unknown name -> UserError listing the known ones
    return _DEFAULT_SIZE[name]


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
    test do not depend on it. Every bad value or missing file is a `UserError`.
    """
    is_folder = name.startswith(_FOLDER_PREFIX)
    loader = None if is_folder else DATASETS.get(name)
    if label_mode not in ("fine", "coarse"):
        raise UserError(f"unknown label_mode {label_mode!r}; known: fine, coarse")
    if label_mode == "coarse" and name != "cifar100":
        raise UserError(f"label_mode 'coarse' exists only for cifar100, not {name!r}")
    if image_size is not None and (
        isinstance(image_size, bool)
        or not isinstance(image_size, int | np.integer)
        or image_size < 1
    ):
        raise UserError(f"image_size must be a positive integer, got {image_size!r}")
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if max_train_samples is not None and (
        isinstance(max_train_samples, bool)
        or not isinstance(max_train_samples, int | np.integer)
        or max_train_samples <= 0
    ):
        raise UserError(f"max_train_samples must be a positive integer, got {max_train_samples!r}")

    request = _Request(
        data_dir=None if is_folder else _data_dir(data_dir),
        image_size=None if image_size is None else int(image_size),
        label_mode=label_mode,
        split=split,
        val_fraction=float(val_fraction),
        cache=cache_root(cache_dir),
    )
    if is_folder:
        loaded = _load_folder(name[len(_FOLDER_PREFIX) :], request)
        name = f"{_FOLDER_PREFIX}{loaded.source}"
    else:
        loaded = loader(request)
    dataset = _finish(name, loaded, max_train_samples)
    log.info("dataset %r from %s: %s", dataset.name, dataset.source, dataset)
    return dataset


# ------------------------------------------------------------------ splitting and digest


def _stratified_split(
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


def _stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray | None:
    """Indices of `n` samples keeping class proportions (largest remainder); None = all."""
    if n >= len(y):
        return None
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / len(y)
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n - take.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(y == c), size=k, replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def _digest(arrays: dict[str, np.ndarray], class_names: Sequence[str]) -> str:
    """16 hex chars of blake2b over class names, then every array's dtype, shape, bytes."""
    h = hashlib.blake2b(digest_size=8)
    h.update("\n".join(class_names).encode())
    for key in sorted(arrays):
        a = arrays[key]
        h.update(f"|{key}:{a.dtype.str}:{a.shape}|".encode())
        h.update(a)  # arrays are C-contiguous here: hashed without a copy
    return h.hexdigest()


def _finish(name: str, loaded: _Loaded, max_train_samples: int | None) -> Dataset:
    """Apply `max_train_samples`, enforce dtypes and layout, compute the digest."""
    x_train, y_train = loaded.splits["train"]
    if max_train_samples is not None:
        keep = _stratified_subset(y_train, int(max_train_samples), SPLIT_SEED)
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
        digest=_digest(arrays, loaded.class_names),
        source=loaded.source,
        **arrays,
    )


def _take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x[idx], y[idx]


# ------------------------------------------------------------------------ npz array cache


def _cache_file(cache: Path, label: str, *key: object) -> Path:
    """Cache file name: readable label plus a hash of everything the arrays depend on."""
    h = hashlib.blake2b(repr((_CACHE_VERSION, *key)).encode(), digest_size=10).hexdigest()
    return cache / "arrays" / f"{label}-{h}.npz"


def _cached(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays from `path` if it holds a readable cache, else `build()` them and save."""
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            log.debug("arrays from cache %s", path)
            return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("ignoring unreadable cache file %s (%s); decoding again", path, exc)
    arrays = build()
    atomic_savez(path, arrays)
    return arrays


# ----------------------------------------------------------------------- image decoding


def _load_image(path: Path, size: int) -> np.ndarray:
    """One image as (size, size, 3) uint8: RGB, center square crop, bilinear resize."""
    with Image.open(path) as img:
        # JPEG only (a no-op otherwise): decode at 1/2..1/8 scale, never below `size`.
        img.draft("RGB", (size, size))
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # avoids Pillow's palette-transparency warning
        img = img.convert("RGB")  # L, CMYK, RGBA, P, ...: alpha is dropped, like Keras
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.resize(
            (size, size),
            Image.Resampling.BILINEAR,
            box=(left, top, left + side, top + side),
            reducing_gap=3.0,
        )
        return np.asarray(img, dtype=np.uint8)


def _decode_images(paths: Sequence[Path], image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode image files in threads (Pillow releases the GIL while decoding).

    Aspect ratio: each image is center-cropped to a square and resized to
    `image_size` x `image_size` with bilinear filtering (JPEGs are first decoded at a
    reduced scale with `Image.draft`, which is much faster and no coarser than the
    target). Returns (images of the readable files, boolean mask of which were
    readable): unreadable, truncated or non-image files are left out, not fatal here.
    """
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)

    def work(i: int) -> None:
        try:
            out[i] = _load_image(paths[i], image_size)
            ok[i] = True
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            log.debug("cannot decode %s: %s", paths[i], exc)

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(work, range(len(paths))))
    return (out if ok.all() else out[ok]), ok


def _resize_all(x: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 NHWC batch image by image (bilinear), without float copies of it."""
    out = np.empty((len(x), size, size, x.shape[3]), dtype=np.uint8)
    for i, img in enumerate(x):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
    return out


# ----------------------------------------------------------------- finding upstream data


@dataclass(frozen=True)
class _Upstream:
    """One upstream archive: file name, top folder inside it, download origin."""

    name: str  # dataset name, for cache directory names
    archive: str
    folder: str
    url: str
    md5: str


@dataclass(frozen=True)
class _Found:
    """Where the data was found: an archive to extract, or an extracted folder."""

    archive: Path | None
    folder: Path | None
    where: Path  # the directory it was found in (side files such as datasplits.mat)
    identity: str  # archive md5, or hash of the folder listing: the cache key
    source: str  # for logs and Dataset.source
    downloaded: bool = False

    @property
    def described(self) -> str:
        return f"archive {self.archive}" if self.archive else f"folder {self.folder}"


def _data_dir(value: str | Path | None) -> Path | None:
    """The data directory from the argument, else ``BENCHMARK_DATA_DIR``; must exist."""
    origin = "--data-dir"
    if value is None:
        value, origin = os.environ.get(DATA_ENV) or None, DATA_ENV
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UserError(f"data directory {path} (from {origin}) does not exist")
    return path


def _keras_datasets_dir() -> Path:
    """Keras's download cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``.

    Read from the environment on each call (Keras itself fixes it at import time).
    """
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "datasets"


def _listing_hash(files: Sequence[Path], root: Path) -> str:
    """Identity of a folder without reading it: (relative path, size, mtime) of each file."""
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _list_files(directory: Path) -> list[Path]:
    """All non-hidden files under `directory`, recursively, in a stable order."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return files


def _find_in(directory: Path, up: _Upstream) -> _Found | None:
    """The upstream archive or its extracted folder in `directory`, if there.

    The archive wins when both exist: it is complete by construction, a folder may be
    a half-finished manual extraction. Also accepted: `directory` being the extracted
    folder itself, and Keras 3's ``<folder>-target/<folder>`` cache layout.
    """
    archive = directory / up.archive
    if archive.is_file():
        return _Found(archive, None, directory, file_md5(archive), str(archive))
    candidates = [directory / up.folder, directory / f"{up.folder}-target" / up.folder]
    if directory.name == up.folder:
        candidates.append(directory)
    for folder in candidates:
        if folder.is_dir():
            identity = _listing_hash(_list_files(folder), folder)
            return _Found(None, folder, directory, identity, str(folder))
    return None


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _download(fname: str, url: str, md5: str, keras_dir: Path) -> Path:
    """Download into the Keras cache via `keras.utils.get_file` (checks the md5).

    Keras is imported here, not at module level: it pulls in TensorFlow (seconds),
    and most loads never download.
    """
    import keras

    keras_dir.mkdir(parents=True, exist_ok=True)  # else Keras falls back to /tmp/.keras
    path = keras.utils.get_file(
        fname, origin=url, file_hash=md5, cache_subdir="datasets", cache_dir=str(keras_dir.parent)
    )
    return Path(path)


def _locate(up: _Upstream, data_dir: Path | None) -> _Found:
    """Data dir, then Keras cache, then download; a one-line `UserError` if all fail."""
    keras_dir = _keras_datasets_dir()
    searched = [d for d in (data_dir, keras_dir) if d is not None]
    for directory in searched:
        found = _find_in(directory, up)
        if found is not None:
            return found
    try:
        path = _download(up.archive, up.url, up.md5, keras_dir)
    except Exception as exc:  # network, HTTP, checksum, disk: all mean "not available"
        where = " or ".join(str(d) for d in searched)
        raise UserError(
            f"{up.archive} not found in {where} and the download from {up.url} failed "
            f"({_one_line(exc)}); put the archive in a directory and pass --data-dir DIR"
        ) from None
    return _Found(
        path, None, path.parent, file_md5(path), f"{up.url} (downloaded to {path})", downloaded=True
    )


def _upstream_folder(found: _Found, up: _Upstream, cache: Path) -> Path:
    """The extracted upstream folder: the user's, or the archive extracted in the cache."""
    if found.folder is not None:
        return found.folder
    target = cache / "extracted" / f"{up.name}-{found.identity[:12]}"
    folder = safe_extract(found.archive, target) / up.folder
    if not folder.is_dir():
        raise _layout_error(found, f"{up.folder}/")
    return folder


def _layout_error(found: _Found, missing: str) -> UserError:
    return UserError(f"{found.described} has not the upstream layout: missing {missing}")


# ------------------------------------------------------------------------------- CIFAR

_CIFAR10 = _Upstream(
    "cifar10", "cifar-10-python.tar.gz", "cifar-10-batches-py",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
)  # fmt: skip
_CIFAR100 = _Upstream(
    "cifar100", "cifar-100-python.tar.gz", "cifar-100-python",
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
)  # fmt: skip
_CIFAR_SIZE = 32


def _read_pickle(folder: Path, member: str, found: _Found) -> dict:
    path = folder / member
    if not path.is_file():
        raise _layout_error(found, f"{folder.name}/{member}")
    with open(path, "rb") as f:
        obj = restricted_load(f)
    if not isinstance(obj, dict):
        raise _layout_error(found, f"a dict in {folder.name}/{member}")
    return obj


def _key(d: dict, key: bytes, member: str, found: _Found):
    try:
        return d[key]
    except KeyError:
        raise _layout_error(found, f"key {key!r} in {member}") from None


def _names(values, member: str, found: _Found) -> list[str]:
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    except (TypeError, UnicodeDecodeError):
        raise _layout_error(found, f"a list of label names in {member}") from None


def _cifar_batch(
    batch: dict, label_key: bytes, n_classes: int, member: str, found: _Found
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 and int32 labels from one batch dict (N x 3072 planar rows)."""
    data = np.asarray(_key(batch, b"data", member, found))
    labels = np.asarray(_key(batch, label_key, member, found))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _CIFAR_SIZE**2:
        raise _layout_error(found, f"uint8 N x 3072 b'data' in {member} (got {data.shape})")
    if labels.shape != (len(data),) or not (0 <= labels.min() and labels.max() < n_classes):
        raise _layout_error(found, f"{len(data)} labels in 0..{n_classes - 1} in {member}")
    images = data.reshape(-1, 3, _CIFAR_SIZE, _CIFAR_SIZE).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int32)


def _decode_cifar(folder: Path, found: _Found, label_mode: str) -> dict[str, np.ndarray]:
    """Read an extracted CIFAR-10 or CIFAR-100 folder (restricted unpickling)."""
    if folder.name == _CIFAR100.folder:
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


def _load_cifar(up: _Upstream, req: _Request) -> _Loaded:
    """Locate, decode (or read from cache), then carve the seeded stratified val split."""
    found = _locate(up, req.data_dir)
    size = req.image_size or _CIFAR_SIZE

    def build() -> dict[str, np.ndarray]:
        arrays = _decode_cifar(_upstream_folder(found, up, req.cache), found, req.label_mode)
        if size != _CIFAR_SIZE:
            for key in ("x_train", "x_test"):
                arrays[key] = _resize_all(arrays[key], size)
        return arrays

    path = _cache_file(req.cache, up.name, found.identity, size, req.label_mode)
    arrays = _cached(path, build)
    names = tuple(str(n) for n in arrays["class_names"])
    x, y = arrays["x_train"], arrays["y_train"]
    train, val = _stratified_split(
        y, [req.val_fraction], SPLIT_SEED, lambda c: f"{up.name} class {names[c]!r}"
    )
    splits = {
        "train": _take(x, y, train),
        "val": _take(x, y, val),
        "test": (arrays["x_test"], arrays["y_test"]),
    }
    return _Loaded(names, splits, found.source)


@DATASETS.register
def cifar10(req: _Request) -> _Loaded:
    """CIFAR-10: 10 classes of 32x32 photos; val carved from the 50k train images."""
    return _load_cifar(_CIFAR10, req)


@DATASETS.register
def cifar100(req: _Request) -> _Loaded:
    """CIFAR-100: 100 fine or 20 coarse (`label_mode`) classes of 32x32 photos."""
    return _load_cifar(_CIFAR100, req)


# ---------------------------------------------------------------------------- Flowers17

_FLOWERS = _Upstream(
    "flowers17", "17flowers.tgz", "jpg",
    "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz",
    "b59a65d8d1a99cd66944d474e1289eab",
)  # fmt: skip
_SPLITS_FILE = "datasplits.mat"
_SPLITS_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/datasplits.mat"
_SPLITS_MD5 = "4828cddfd0d803c5abbdebcb1e148a1e"


def _flowers_splits_file(found: _Found) -> Path | None:
    """datasplits.mat beside the archive; downloaded only right after the archive was.

    Optional: without it a seeded split of the same shape is used. No network attempt
    for data found locally, so offline loads never wait on a timeout.
    """
    path = found.where / _SPLITS_FILE
    if path.is_file():
        return path
    if found.downloaded:
        try:
            return _download(_SPLITS_FILE, _SPLITS_URL, _SPLITS_MD5, found.where)
        except Exception as exc:  # optional file: fall back to the seeded split
            log.warning("no %s (%s); using a seeded 40/20/20 split", _SPLITS_FILE, _one_line(exc))
    return None


def _official_flowers_split(path: Path, split: int) -> list[np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError, OSError, TypeError, ...
        raise UserError(f"cannot read {path}: {_one_line(exc)}; delete it and retry") from None
    parts = []
    n_images = len(FLOWERS17_CLASSES) * _FLOWERS_PER_CLASS
    for prefix in ("trn", "val", "tst"):
        key = f"{prefix}{split}"
        if key not in mat:
            raise UserError(f"{path} has not the upstream layout: missing {key}")
        idx = np.asarray(mat[key]).ravel().astype(np.int64) - 1  # 1-based in the file
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n_images:
            raise UserError(f"{path}: {key} holds indices outside 1..{n_images}")
        parts.append(np.sort(idx))
    return parts


@DATASETS.register
def flowers17(req: _Request) -> _Loaded:
    """Oxford 17 Category Flowers: 1360 photos, 80 per class, official 40/20/20 splits.

    Label of ``jpg/image_n.jpg`` is (n - 1) // 80. Images are center-cropped to a
    square and resized (see `_decode_images`). With ``datasplits.mat`` (beside the
    archive) split `split` of the official three is used; without it a per-class
    40/20/20 split seeded with ``split - 1`` (seed 0 for the default split 1).
    """
    if isinstance(req.split, bool) or req.split not in (1, 2, 3):
        raise UserError(f"flowers17 has splits 1, 2 and 3, not {req.split!r}")
    found = _locate(_FLOWERS, req.data_dir)
    size = req.image_size or _DEFAULT_SIZE["flowers17"]
    n_images = len(FLOWERS17_CLASSES) * _FLOWERS_PER_CLASS

    def build() -> dict[str, np.ndarray]:
        folder = _upstream_folder(found, _FLOWERS, req.cache)
        files = [folder / f"image_{n:04d}.jpg" for n in range(1, n_images + 1)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise _layout_error(found, f"{folder.name}/{missing[0]}{more}")
        x, ok = _decode_images(files, size)
        if not ok.all():
            bad = files[int(np.flatnonzero(~ok)[0])]
            raise UserError(
                f"cannot decode {bad} from {found.described}: corrupt data; "
                "delete it and retry / re-download"
            )
        return {"x": x, "y": (np.arange(n_images) // _FLOWERS_PER_CLASS).astype(np.int32)}

    arrays = _cached(_cache_file(req.cache, "flowers17", found.identity, size), build)
    x, y = arrays["x"], arrays["y"]
    splits_file = _flowers_splits_file(found)
    if splits_file is not None:
        train, val, test = _official_flowers_split(splits_file, req.split)
    else:
        share = 20 / _FLOWERS_PER_CLASS
        train, val, test = _stratified_split(
            y, [share, share], req.split - 1, lambda c: f"flowers17 class {c}"
        )
    splits = {"train": _take(x, y, train), "val": _take(x, y, val), "test": _take(x, y, test)}
    return _Loaded(FLOWERS17_CLASSES, splits, found.source)


# ------------------------------------------------------------------------ folder:PATH


def _size_note(size: int, seen: np.ndarray) -> str:
    """The log line that says which default image size a folder got, and why."""
    shown = ", ".join(f"{w}x{h}" for w, h in seen.tolist())
    if len(seen) == 0:
        return f"image size {size} px: no image size could be read"
    if len(seen) == 1 and size == min(seen[0]):
        return f"image size {size} px: the images' own (all {shown})"
    if len(seen) == 1:
        return (
            f"image size {size} px: the images are all {shown}, more than "
            f"{_FOLDER_MAX_NATIVE} px; pass image_size to choose another"
        )
    return (
        f"image size {size} px: the images differ in size (e.g. {shown}); "
        "pass image_size to choose another"
    )


_FOLDER_SPLIT = (0.15, 0.15)  # val, test; the remaining 70% is train


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


@dataclass
class _Skipped:
    """Files of a folder dataset left out before decoding, by reason (relative paths)."""

    dangling: list[str]  # symlinks to nothing
    outside: list[str]  # reached through a link that leaves the dataset folder

    def __len__(self) -> int:
        return len(self.dangling) + len(self.outside)

    def describe(self) -> str:
        reasons = (
            ("dangling symlinks", self.dangling),
            ("files reached through links that leave the dataset folder", self.outside),
        )
        return "; ".join(f"{len(v)} {what} (e.g. {v[0]})" for what, v in reasons if v)


def _class_files(class_dir: Path, root: Path, skipped: _Skipped) -> list[Path]:
    """The images of one class folder, recursively, in a stable order.

    A link is followed only where it stays inside the dataset folder: a dangling one, or
    one whose target lies outside `root` (resolved), is left out and counted in `skipped`
    rather than read or allowed to end the load in a traceback. Linked sub-folders are not
    walked (os.walk's default), so a link loop cannot either.
    """
    real_root = os.path.realpath(root)
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(f for f in filenames if not f.startswith(".")):
            path = Path(dirpath) / name
            real = os.path.realpath(path)
            shown = path.relative_to(root).as_posix()
            if not os.path.exists(real):
                skipped.dangling.append(shown)
            elif os.path.commonpath([real, real_root]) != real_root:
                skipped.outside.append(shown)
            else:
                files.append(path)
    return files


def _only_subfolders(class_dir: Path) -> list[str]:
    """Names of the sub-folders of a class folder that holds no file of its own, else []:
    a tree one level deeper than expected (train/animals/cat/...) would otherwise become
    one class per top folder without a word."""
    entries = [e for e in os.scandir(class_dir) if not e.name.startswith(".")]
    if any(not e.is_dir() for e in entries):
        return []
    return sorted(e.name for e in entries)


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding; None if unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _native_size(files: Sequence[Path]) -> tuple[int | None, list[tuple[int, int]]]:
    """The side of the images' centre square when they all share one size (None if they
    differ or it exceeds _FOLDER_MAX_NATIVE), and up to 3 of the distinct sizes found."""
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        sizes = [s for s in pool.map(_image_size, files) if s is not None]
    distinct = sorted(set(sizes))
    if len(distinct) == 1 and min(distinct[0]) <= _FOLDER_MAX_NATIVE:
        return min(distinct[0]), distinct
    return None, distinct[:3]


def _load_folder(spec: str, req: _Request) -> _Loaded:
    """``folder:PATH``: one sub-folder per class (sorted names are the class names).

    With ``PATH/train`` and ``PATH/test`` those are the splits (and ``PATH/val`` if
    present; else val is carved from train with `val_fraction`); otherwise a seeded
    stratified 70/15/15 train/val/test split. Any image format Pillow reads is
    converted to RGB and center-cropped/resized like flowers17; unreadable or
    non-image files, dangling symlinks and links leaving PATH are skipped and counted
    in one warning. Without `image_size`, images that all share one size keep it (no
    upscaling of small images: same information, several times the compute); others
    are resized to 64 px, and a log line says which applied.
    """
    if not spec:
        raise UserError("the folder dataset needs a path: folder:PATH")
    root = Path(spec).expanduser().absolute()
    if not root.is_dir():
        raise UserError(f"dataset folder {root} does not exist")

    if (root / "train").is_dir() and (root / "test").is_dir():
        parts = [p for p in ("train", "val", "test") if (root / p).is_dir()]
        base = root / "train"
    else:
        parts, base = [""], root
    class_names = [p.name for p in _class_dirs(base)]
    if len(class_names) < 2:
        raise UserError(
            f"dataset folder {base} needs at least 2 class sub-folders (one per class), "
            f"found {len(class_names)}"
        )

    files: list[Path] = []
    labels: list[int] = []
    part_ids: list[int] = []
    skipped_links = _Skipped([], [])
    for part_id, part in enumerate(parts):
        part_dir = root / part
        extra = sorted(set(p.name for p in _class_dirs(part_dir)) - set(class_names))
        if extra:
            raise UserError(f"{part_dir} has class folders not in {base}: {', '.join(extra)}")
        for label, cname in enumerate(class_names):
            class_dir = part_dir / cname
            if class_dir.is_dir() and (subs := _only_subfolders(class_dir)):
                shown = ", ".join(subs[:3]) + (", ..." if len(subs) > 3 else "")
                raise UserError(
                    f"class folder {class_dir} holds only sub-folders ({shown}), no images: "
                    "each class should be one folder of images; is the tree one level too "
                    "deep?"
                )
            before = len(skipped_links)
            class_files = _class_files(class_dir, root, skipped_links) if class_dir.is_dir() else []
            if not class_files:
                lost = len(skipped_links) - before
                why = f" ({lost} unusable links skipped)" if lost else ""
                raise UserError(f"class folder {class_dir} is empty or missing{why}")
            files += class_files
            labels += [label] * len(class_files)
            part_ids += [part_id] * len(class_files)
    if len(skipped_links):
        log.warning(
            "skipped %d files under %s: %s", len(skipped_links), root, skipped_links.describe()
        )

    def build() -> dict[str, np.ndarray]:
        native, seen = (None, []) if req.image_size else _native_size(files)
        x, ok = _decode_images(files, req.image_size or native or _FOLDER_SIZE)
        skipped = [
            f.relative_to(root).as_posix() for f, good in zip(files, ok, strict=True) if not good
        ]
        return {
            "x": x,
            "y": np.asarray(labels, dtype=np.int32)[ok],
            "part": np.asarray(part_ids, dtype=np.int8)[ok],
            "skipped": np.array(skipped, dtype=str),
            "sizes_seen": np.array(seen, dtype=np.int64).reshape(-1, 2),  # (width, height)
        }

    size_key = req.image_size or "native"  # native: the images' own size, or 64
    key = (str(root), _listing_hash(files, root), size_key, tuple(class_names), tuple(parts))
    arrays = _cached(_cache_file(req.cache, "folder", *key), build)
    x, y, part_of, skipped = arrays["x"], arrays["y"], arrays["part"], arrays["skipped"]
    if req.image_size is None:
        log.info("%s", _size_note(x.shape[1], arrays["sizes_seen"]))
    if len(skipped):
        log.warning(
            "skipped %d unreadable or non-image files under %s (e.g. %s)",
            len(skipped),
            root,
            skipped[0],
        )

    for part_id, part in enumerate(parts):
        present = set(np.unique(y[part_of == part_id]).tolist())
        for label, cname in enumerate(class_names):
            if label not in present:
                raise UserError(f"class folder {root / part / cname} has no readable images")

    def describe(part: str) -> Callable[[int], str]:
        return lambda c: f"class folder {root / part / class_names[c]}"

    if parts == [""]:
        train, val, test = _stratified_split(y, _FOLDER_SPLIT, SPLIT_SEED, describe(""))
        splits = {"train": _take(x, y, train), "val": _take(x, y, val), "test": _take(x, y, test)}
    else:
        splits = {p: _take(x, y, np.flatnonzero(part_of == i)) for i, p in enumerate(parts)}
        if "val" not in splits:
            x_tr, y_tr = splits["train"]
            train, val = _stratified_split(y_tr, [req.val_fraction], SPLIT_SEED, describe("train"))
            splits["train"], splits["val"] = _take(x_tr, y_tr, train), _take(x_tr, y_tr, val)
    return _Loaded(tuple(class_names), splits, str(root))
