"""Oxford 17 Category Flowers from the upstream JPEG archive (and optional datasplits.mat).

Owns the registered `flowers17` loader, its class names and its official or seeded
40/20/20 splits.

Imports: benchmark.errors and benchmark.data.{cache, catalog, images, split, upstream}.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from benchmark.data.cache import cache_file, cached
from benchmark.data.catalog import DATASETS, Loaded, Request
from benchmark.data.images import decode_images
from benchmark.data.split import stratified_split, take
from benchmark.data.upstream import (
    Found,
    Upstream,
    layout_error,
    locate,
    one_line,
    side_file,
    upstream_folder,
)
from benchmark.errors import UserError

log = logging.getLogger(__name__)

FLOWERS17_CLASSES = (
    "Daffodil", "Snowdrop", "LilyValley", "Bluebell", "Crocus", "Iris", "TigerLily",
    "Tulip", "Fritillary", "Sunflower", "Daisy", "Coltsfoot", "Dandelion", "Cowslip",
    "Buttercup", "Windflower", "Pansy",
)  # fmt: skip
_PER_CLASS = 80
_SIZE = 64  # default side length: the photos are ~500 px, 64 keeps training fast

_FLOWERS = Upstream(
    "flowers17", "17flowers.tgz", "jpg",
    "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz",
    "b59a65d8d1a99cd66944d474e1289eab",
)  # fmt: skip
_SPLITS_FILE = "datasplits.mat"
_SPLITS_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/datasplits.mat"
_SPLITS_MD5 = "4828cddfd0d803c5abbdebcb1e148a1e"


def _splits_file(found: Found) -> Path | None:
    """datasplits.mat beside the archive; downloaded only right after the archive was.

    Optional: without it a seeded split of the same shape is used.
    """
    try:
        return side_file(found, _SPLITS_FILE, _SPLITS_URL, _SPLITS_MD5)
    except Exception as exc:  # optional file: fall back to the seeded split
        log.warning("no %s (%s); using a seeded 40/20/20 split", _SPLITS_FILE, one_line(exc))
    return None


def _official_split(path: Path, split: int) -> list[np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError, OSError, TypeError, ...
        raise UserError(f"cannot read {path}: {one_line(exc)}; delete it and retry") from None
    parts = []
    n_images = len(FLOWERS17_CLASSES) * _PER_CLASS
    for prefix in ("trn", "val", "tst"):
        key = f"{prefix}{split}"
        if key not in mat:
            raise UserError(f"{path} has not the upstream layout: missing {key}")
        idx = np.asarray(mat[key]).ravel().astype(np.int64) - 1  # 1-based in the file
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n_images:
            raise UserError(f"{path}: {key} holds indices outside 1..{n_images}")
        parts.append(np.sort(idx))
    return parts


@DATASETS.register(image_size=_SIZE)
def flowers17(req: Request) -> Loaded:
    """Oxford 17 Category Flowers: 1360 photos, 80 per class, official 40/20/20 splits.

    Label of ``jpg/image_n.jpg`` is (n - 1) // 80. Images are center-cropped to a
    square and resized (see `decode_images`). With ``datasplits.mat`` (beside the
    archive) split `split` of the official three is used; without it a per-class
    40/20/20 split seeded with ``split - 1`` (seed 0 for the default split 1).
    """
    if isinstance(req.split, bool) or req.split not in (1, 2, 3):
        raise UserError(f"flowers17 has splits 1, 2 and 3, not {req.split!r}")
    found = locate(_FLOWERS, req.data_dir)
    size = req.image_size or _SIZE
    n_images = len(FLOWERS17_CLASSES) * _PER_CLASS

    def build() -> dict[str, np.ndarray]:
        folder = upstream_folder(found, _FLOWERS, req.cache)
        files = [folder / f"image_{n:04d}.jpg" for n in range(1, n_images + 1)]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise layout_error(found, f"{folder.name}/{missing[0]}{more}")
        x, ok = decode_images(files, size)
        if not ok.all():
            bad = files[int(np.flatnonzero(~ok)[0])]
            raise UserError(
                f"cannot decode {bad} from {found.described}: corrupt data; "
                "delete it and retry / re-download"
            )
        return {"x": x, "y": (np.arange(n_images) // _PER_CLASS).astype(np.int32)}

    arrays = cached(cache_file(req.cache, "flowers17", found.identity, size), build)
    x, y = arrays["x"], arrays["y"]
    splits_file = _splits_file(found)
    if splits_file is not None:
        train, val, test = _official_split(splits_file, req.split)
    else:
        share = 20 / _PER_CLASS
        train, val, test = stratified_split(
            y, [share, share], req.split - 1, lambda c: f"flowers17 class {c}"
        )
    splits = {"train": take(x, y, train), "val": take(x, y, val), "test": take(x, y, test)}
    return Loaded(FLOWERS17_CLASSES, splits, found.source)
