"""Fingerprints and the decoded-array cache.

Owns `cache_root`, the npz cache (`cache_file`, `cached`), the identity of a folder
(`listing_hash`) and the `Dataset` digest. Decoding JPEGs and unpickling batches is slow,
so decoded arrays are cached as .npz under `cache_root()`, keyed by the identity of the
source (archive md5 or listing hash) and by the decoding settings; a repeated load reads
one file. The key and digest computations are part of the on-disk format: changing them
orphans every existing cache (bump `CACHE_VERSION` when that is the intent).

Imports: benchmark.data.archive only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmark.data.archive import CACHE_ENV, atomic_savez

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the cached array format or decoding changes


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where extracted archives and decoded arrays live: the argument, else the
    ``BENCHMARK_CACHE_DIR`` environment variable, else ``~/.cache/cnn-benchmark``."""
    value = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or None
    return Path(value or "~/.cache/cnn-benchmark").expanduser().absolute()


def cache_file(cache: Path, label: str, *key: object) -> Path:
    """Cache file name: readable label plus a hash of everything the arrays depend on."""
    h = hashlib.blake2b(repr((CACHE_VERSION, *key)).encode(), digest_size=10).hexdigest()
    return cache / "arrays" / f"{label}-{h}.npz"


def cached(path: Path, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
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


def listing_hash(files: Sequence[Path], root: Path) -> str:
    """Identity of a folder without reading it: (relative path, size, mtime) of each file."""
    h = hashlib.blake2b(digest_size=16)
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def digest(arrays: dict[str, np.ndarray], class_names: Sequence[str]) -> str:
    """16 hex chars of blake2b over class names, then every array's dtype, shape, bytes."""
    h = hashlib.blake2b(digest_size=8)
    h.update("\n".join(class_names).encode())
    for key in sorted(arrays):
        a = arrays[key]
        h.update(f"|{key}:{a.dtype.str}:{a.shape}|".encode())
        h.update(a)  # arrays are C-contiguous here: hashed without a copy
    return h.hexdigest()
