"""Benchmark datasets as uint8 NHWC arrays with fixed train/val/test splits.

The public API is what this file exports; the modules follow the data flow:

* `catalog`   the registry `DATASETS` (names and families like folder:PATH), `Request`,
              `Loaded`, `Dataset`, and the name helpers callers use instead of testing a
              prefix: `parse`, `source_name`, `is_builtin`, `default_image_size`.
* `upstream`  find a published archive: ``--data-dir`` / ``BENCHMARK_DATA_DIR``, then the
              Keras cache, then download (machines may be offline; user files are read,
              never written next to).
* `archive`   extract and unpickle it without trusting it (hostile archives are refused).
* `images`    decode and resize photos to uint8 squares.
* `cache`     the .npz cache of decoded arrays under `cache_root()`, keyed by source
              identity and decoding settings, and the `Dataset` digest.
* `split`     the fixed seeded val/test carving and `max_train_samples` subsets, so all
              trials of a study are compared on the same images.
* `cifar`, `flowers17`, `folder`: one registered loader (or family) per source.
* `load`      `load_dataset`: validation, dispatch, subset, digest.

A new dataset is one function: ``@DATASETS.register(image_size=N)`` on a function that
takes a `Request` and returns `Loaded`; a family of names with an argument (like
folder:PATH) is ``@DATASETS.register_family(prefix, arg=..., image_size=N)`` on one that
takes (argument, `Request`). `load_dataset`, the CLI and the search spaces then know it.

This package may import only benchmark.errors, benchmark.registry, benchmark.choices,
benchmark.config and its own modules; its modules never import the package itself (this
file), so there is no import circle.
"""

from __future__ import annotations

from benchmark.data import cifar, flowers17, folder  # noqa: F401 (importing registers them)
from benchmark.data.cache import cache_root
from benchmark.data.catalog import (
    DATASETS,
    Dataset,
    Loaded,
    Request,
    default_image_size,
    is_builtin,
    parse,
    source_name,
)
from benchmark.data.flowers17 import FLOWERS17_CLASSES
from benchmark.data.load import load_dataset
from benchmark.data.upstream import DATA_ENV

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "FLOWERS17_CLASSES",
    "Dataset",
    "Loaded",
    "Request",
    "cache_root",
    "default_image_size",
    "is_builtin",
    "load_dataset",
    "parse",
    "source_name",
]
