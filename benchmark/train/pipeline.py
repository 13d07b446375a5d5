"""tf.data input pipelines from uint8 arrays (airbench's habit).

The arrays stay uint8 in memory; a batch becomes float32 in [0, 255] only on its way to
the model, and augmentation runs on whole batches after `.batch()`, outside the model, so
aug and no-aug models compile alike (geometric layers inside a model switch XLA off on GPU).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
PREFETCH = 4  # batches ready ahead of the model: enough to hide a map call's jitter


def _fixed(ds: tf.data.Dataset) -> tf.data.Dataset:
    """tf.data's autotuner off. On the 2-core VMs here it put some epochs into a slow
    mode (exactly 5.11 s instead of 3.1-3.6 s, threads idle): the seed net fitting one
    6,400-image epoch of this pipeline, autotuned vs prefetch 4 with autotune off,
    interleaved in one process, was slow in 6 of 10 epochs vs 0 of 10 (3.15-4.10 s)."""
    from benchmark.train.runtime import trial_threads

    options = tf.data.Options()
    options.autotune.enabled = False
    if (threads := trial_threads()) is not None:  # --workers N: set explicitly
        options.threading.private_threadpool_size = threads
    return ds.with_options(options)


def train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    augment: keras.Layer | None = None,
    n_classes: int | None = None,
) -> tf.data.Dataset:
    """Shuffled (reseeded each epoch), batched, cast and augmented; one pass = one epoch.

    `n_classes` given: labels become one-hot float32 (soft targets for label smoothing,
    MixUp and CutMix, which then mix them along with the images).
    """
    from benchmark.augment import mixes_labels

    mix = mixes_labels(augment)
    if mix and n_classes is None:
        raise ValueError("a policy that mixes labels needs n_classes (one-hot labels)")
    images = tf.constant(x)  # one uint8 copy, gathered per batch: no per-image Python
    labels = tf.constant(y)
    ds = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def load(idx: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.cast(tf.gather(images, idx), tf.float32)
        target = tf.gather(labels, idx)
        if n_classes is not None:
            target = tf.one_hot(target, n_classes)
        if mix:
            out = augment({"images": batch, "labels": target}, training=True)
            batch, target = out["images"], out["labels"]
        elif augment is not None:
            batch = augment(batch, training=True)
        return batch, target

    # Sequential map keeps the augmentation's seed stream in order: the same seed gives the
    # same run. Parallelism comes from prefetch overlapping the map with training.
    return _fixed(ds.map(load, num_parallel_calls=None).prefetch(PREFETCH))


def eval_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, n_classes: int | None = None
) -> tf.data.Dataset:
    """In order, un-augmented: for validation, test and the clean train subset.

    `n_classes` given: one-hot labels, as train_dataset gives them for the same model."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)

    def cast(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(a, tf.float32), (b if n_classes is None else tf.one_hot(b, n_classes))

    ds = ds.map(cast, num_parallel_calls=AUTOTUNE)
    return _fixed(ds.prefetch(PREFETCH))
