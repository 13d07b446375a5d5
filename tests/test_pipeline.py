"""The tf.data input pipelines: every image once an epoch, reshuffled, repeatable, fixed
buffers (tf.data's autotuner put epochs into a 5.11 s slow mode on these VMs)."""

from __future__ import annotations

import numpy as np

from benchmark.augment import build_augmentation
from benchmark.train.pipeline import PREFETCH, eval_dataset, train_dataset


def _images(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1) * np.ones((1, 4, 4, 3), np.uint8)
    return x, np.arange(n, dtype=np.int32)


def _epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_an_epoch_is_every_image_once_as_float_pixels_with_its_label():
    x, y = _images()
    images, labels = _epoch(train_dataset(x, y, batch_size=8, seed=0))
    assert images.dtype == np.float32 and images.shape == (50, 4, 4, 3)
    assert sorted(labels) == list(range(50))
    assert np.array_equal(images[:, 0, 0, 0], labels.astype(np.float32))  # 0..255, unscaled


def test_order_is_reshuffled_each_epoch_and_repeated_by_seed():
    x, y = _images()
    ds = train_dataset(x, y, batch_size=8, seed=3)
    first, second = _epoch(ds)[1], _epoch(ds)[1]
    assert not np.array_equal(first, second)
    again = train_dataset(x, y, batch_size=8, seed=3)
    assert np.array_equal(_epoch(again)[1], first) and np.array_equal(_epoch(again)[1], second)


def test_augmented_batches_repeat_with_the_seed():
    x, y = _images()

    def run() -> np.ndarray:
        aug = build_augmentation("seed", seed=1)
        return _epoch(train_dataset(x, y, batch_size=8, seed=1, augment=aug))[0]

    a, b = run(), run()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _epoch(train_dataset(x, y, batch_size=8, seed=1))[0])


def test_eval_keeps_order_and_both_pipelines_use_fixed_buffers():
    x, y = _images()
    images, labels = _epoch(eval_dataset(x, y, batch_size=16))
    assert np.array_equal(labels, y) and np.array_equal(images, x.astype(np.float32))
    for ds in (train_dataset(x, y, 8, 0), eval_dataset(x, y, 16)):
        assert ds.options().autotune.enabled is False
        # a fixed read-ahead of PREFETCH batches (>= 2: one in use, one ready), as the last
        # stage before the model: not autotuned, not dropped
        assert _prefetch_buffer(ds) == PREFETCH >= 2


def _prefetch_buffer(ds) -> int:
    """The buffer size of the prefetch nearest the model's end of `ds`; 0 when none."""
    while ds is not None:
        if type(ds).__name__ == "_PrefetchDataset":
            return int(ds._buffer_size)
        if type(ds).__name__ != "_OptionsDataset":  # with_options wraps it; nothing else may
            return 0
        ds = ds._input_dataset
    return 0
