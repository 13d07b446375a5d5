"""Image files to uint8 arrays: decoding, centre-cropping and resizing.

Owns how every photo becomes (size, size, 3) uint8 (RGB, centre square crop, bilinear),
so flowers17 and folder datasets agree. Images stay uint8 (CIFAR-10 train is ~150 MB as
uint8, 8x that as float64); scaling to float happens batch-wise in the input pipeline.

Imports: nothing from benchmark.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

# What a file that is not a readable image raises in Pillow: skipped, never fatal here.
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def workers() -> int:
    """Threads for image I/O: Pillow releases the GIL while decoding."""
    return min(16, os.cpu_count() or 1)


def load_image(path: Path, size: int) -> np.ndarray:
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


def decode_images(paths: Sequence[Path], image_size: int) -> tuple[np.ndarray, np.ndarray]:
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
            out[i] = load_image(paths[i], image_size)
            ok[i] = True
        except UNREADABLE as exc:
            log.debug("cannot decode %s: %s", paths[i], exc)

    with ThreadPoolExecutor(max_workers=workers()) as pool:
        list(pool.map(work, range(len(paths))))
    return (out if ok.all() else out[ok]), ok


def resize_all(x: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 NHWC batch image by image (bilinear), without float copies of it."""
    out = np.empty((len(x), size, size, x.shape[3]), dtype=np.uint8)
    for i, img in enumerate(x):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
    return out


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, without decoding; None if unreadable."""
    try:
        with Image.open(path) as img:
            return img.size
    except UNREADABLE:
        return None
