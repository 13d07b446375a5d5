"""``folder:PATH``: any folder of class sub-folders as a dataset (the `folder` family).

Owns the walk of a user's folder (links that leave it or dangle are skipped and counted),
the choice of image size (the images' own when they all share one), the cache key of a
folder (its path, listing hash and settings) and the train/val/test layout rules. The
prefix is `benchmark.choices.FOLDER_PREFIX`, the one declaration the CLI validates against.

Imports: benchmark.errors, benchmark.choices and benchmark.data.{cache, catalog, images,
split}.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.choices import FOLDER_PREFIX
from benchmark.data.cache import cache_file, cached, listing_hash
from benchmark.data.catalog import DATASETS, Loaded, Request
from benchmark.data.images import decode_images, header_size, workers
from benchmark.data.split import SPLIT_SEED, stratified_split, take
from benchmark.errors import UserError

log = logging.getLogger(__name__)

FOLDER_SIZE = 64  # folder images of differing sizes are resized to this by default
_FOLDER_MAX_NATIVE = 256  # a shared size above this is not kept (memory: N x size^2 x 3 bytes)


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


def _native_size(files: Sequence[Path]) -> tuple[int | None, list[tuple[int, int]]]:
    """The side of the images' centre square when they all share one size (None if they
    differ or it exceeds _FOLDER_MAX_NATIVE), and up to 3 of the distinct sizes found."""
    with ThreadPoolExecutor(max_workers=workers()) as pool:
        sizes = [s for s in pool.map(header_size, files) if s is not None]
    distinct = sorted(set(sizes))
    if len(distinct) == 1 and min(distinct[0]) <= _FOLDER_MAX_NATIVE:
        return min(distinct[0]), distinct
    return None, distinct[:3]


@dataclass(frozen=True)
class _Tree:
    """The image files of a folder dataset, in load order, with their class and part."""

    root: Path
    parts: list[str]  # ["train", "val"?, "test"] when PATH has them, else [""]
    class_names: list[str]
    files: list[Path]
    labels: list[int]
    part_ids: list[int]  # index into `parts`


def _scan(root: Path) -> _Tree:
    """Walk `root` once: the class names, every usable file, and one error per bad layout."""
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

    tree = _Tree(root, parts, class_names, [], [], [])
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
            tree.files.extend(class_files)
            tree.labels.extend([label] * len(class_files))
            tree.part_ids.extend([part_id] * len(class_files))
    if len(skipped_links):
        log.warning(
            "skipped %d files under %s: %s", len(skipped_links), root, skipped_links.describe()
        )
    return tree


def _decode(tree: _Tree, image_size: int | None) -> dict[str, np.ndarray]:
    """The arrays cached for a folder: images, labels, part ids, what was skipped and why."""
    native, seen = (None, []) if image_size else _native_size(tree.files)
    x, ok = decode_images(tree.files, image_size or native or FOLDER_SIZE)
    skipped = [
        f.relative_to(tree.root).as_posix()
        for f, good in zip(tree.files, ok, strict=True)
        if not good
    ]
    return {
        "x": x,
        "y": np.asarray(tree.labels, dtype=np.int32)[ok],
        "part": np.asarray(tree.part_ids, dtype=np.int8)[ok],
        "skipped": np.array(skipped, dtype=str),
        "sizes_seen": np.array(seen, dtype=np.int64).reshape(-1, 2),  # (width, height)
    }


@DATASETS.register_family(FOLDER_PREFIX, arg="PATH", image_size=FOLDER_SIZE)
def folder(spec: str, req: Request) -> Loaded:
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
    tree = _scan(root)
    parts, class_names = tree.parts, tree.class_names

    size_key = req.image_size or "native"  # native: the images' own size, or 64
    key = (str(root), listing_hash(tree.files, root), size_key, tuple(class_names), tuple(parts))
    arrays = cached(cache_file(req.cache, "folder", *key), lambda: _decode(tree, req.image_size))
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
        train, val, test = stratified_split(y, _FOLDER_SPLIT, SPLIT_SEED, describe(""))
        splits = {"train": take(x, y, train), "val": take(x, y, val), "test": take(x, y, test)}
    else:
        splits = {p: take(x, y, np.flatnonzero(part_of == i)) for i, p in enumerate(parts)}
        if "val" not in splits:
            x_tr, y_tr = splits["train"]
            train, val = stratified_split(y_tr, [req.val_fraction], SPLIT_SEED, describe("train"))
            splits["train"], splits["val"] = take(x_tr, y_tr, train), take(x_tr, y_tr, val)
    return Loaded(tuple(class_names), splits, str(root), name=f"{FOLDER_PREFIX}{root}")
