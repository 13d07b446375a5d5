"""The GPU path of a trial: what changes when TensorFlow finds a GPU, and what it logs.

On a CPU nothing here is used (the tf.data map augments, float32, no XLA: measured best
there). With a GPU:
- augmentation runs on the GPU inside the compiled train step (`AugmentInStep`), not in the
  CPU's tf.data map, which would starve a fast GPU;
- mixed precision (float16 compute, float32 weights and softmax) where the GPU has tensor
  cores (compute capability 7.0 and up), under `--precision auto` (benchmark/train/precision.py);
- XLA where Keras' "auto" turns it on (runtime.jit_compile), except when geometric
  augmentation runs in the step: its image-transform op has no XLA kernel;
- each trial logs `gpu_time_s` (the fit's wall time holding the GPU), `gpu_memory_peak_mb`
  (TensorFlow's allocator peak during the fit), `gpu_utilization_pct` (nvidia-smi's mean
  utilization during the fit, when nvidia-smi is there) and the `gpu_name` tag.

May import: benchmark.metrics, benchmark.train.runtime (the train stage's own helpers).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import keras

from benchmark import metrics as M
from benchmark.train.runtime import gpu_name


def on_gpu() -> bool:
    return gpu_name() is not None


@functools.cache
def mixed_precision_pays() -> bool:
    """float16 pays on tensor cores (compute capability >= 7.0), not on older GPUs or CPUs."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
    return tuple(cc) >= (7, 0)


class AugmentInStep(keras.Model):
    """`inner` trained with `augment` applied to each batch inside the compiled train step
    (on the device that trains), and used as is for evaluation and prediction."""

    def __init__(self, inner: keras.Model, augment: keras.Layer, mixes_labels: bool, **kw):
        super().__init__(**kw)
        self.inner = inner
        self.augment = augment
        self.mixes_labels = mixes_labels

    def call(self, x, training=False):
        return self.inner(x, training=training)

    def train_step(self, data):
        x, y = data[0], data[1]
        if self.mixes_labels:
            out = self.augment({"images": x, "labels": y}, training=True)
            x, y = out["images"], out["labels"]
        else:
            x = self.augment(x, training=True)
        return super().train_step((x, y))


def has_geometric_ops(augment: keras.Layer | None) -> bool:
    """Whether a policy holds layers XLA cannot compile (image transforms: flips are fine)."""
    if augment is None:
        return False
    names = {type(layer).__name__ for layer in _layers(augment)}
    return bool(names & {"RandomRotation", "RandomTranslation", "RandomZoom", "RandomCrop",
                         "RandomShear", "RandAugment", "RandomPerspective"})  # fmt: skip


def _layers(layer: keras.Layer) -> Iterator[keras.Layer]:
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        yield from _layers(sub)


@contextlib.contextmanager
def gpu_usage(metrics: dict[str, float]) -> Iterator[None]:
    """Fill `metrics` with gpu_time_s, gpu_memory_peak_mb and gpu_utilization_pct for the
    block (a fit); on a CPU it fills nothing."""
    if not on_gpu():
        yield
        return
    import tensorflow as tf

    with contextlib.suppress(ValueError, RuntimeError):
        tf.config.experimental.reset_memory_stats("GPU:0")
    busy = Utilization()
    start = time.perf_counter()
    try:
        with busy:
            yield
    finally:
        metrics[M.GPU_TIME] = time.perf_counter() - start
        if busy.mean() is not None:  # nvidia-smi found and answered at least once
            metrics[M.GPU_UTILIZATION] = busy.mean()
        with contextlib.suppress(ValueError, RuntimeError):
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
            metrics[M.GPU_MEMORY_PEAK] = peak / 2**20


class Utilization:
    """GPU utilization sampled by nvidia-smi every `every` seconds while the block runs."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Utilization:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
               "-i", "0"]  # fmt: skip
        while not self._stop.wait(self.every):
            with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.strip().splitlines()[0]))

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None
