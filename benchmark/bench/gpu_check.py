"""`python -m benchmark bench --gpu-check`: does the GPU path keep a GPU busy?

The seed net trains for 20 epochs on 50,000 random CIFAR-shaped images exactly as a trial
trains it on a GPU (augmentation inside the compiled step, mixed precision where it pays, XLA
where Keras turns it on), and the check prints images/s, the epoch times and the GPU's
utilization as nvidia-smi samples it. Target on one H100: 20 epochs in <= 30 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np

from benchmark import metrics as M
from benchmark.augment import build_augmentation
from benchmark.bench.options import (
    GPU_CHECK_BATCH,
    GPU_CHECK_EPOCHS,
    GPU_CHECK_IMAGES,
    SYNTHETIC_CLASSES,
    SYNTHETIC_SHAPE,
)
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.train.gpu import Utilization, gpu_usage, has_geometric_ops, mixed_precision_pays
from benchmark.train.pipeline import train_dataset
from benchmark.train.runtime import device_name, gpu_name, jit_compile
from benchmark.train.trial import compiled_model

TARGET_S = 30.0  # 20 epochs on one H100


class EpochClock(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t0)


def run_gpu_check(args: argparse.Namespace) -> int:
    if gpu_name() is None:
        raise UserError(f"--gpu-check needs a GPU; TensorFlow found none ({device_name()})")
    epochs = args.epochs or GPU_CHECK_EPOCHS
    batch = args.batch_size or GPU_CHECK_BATCH
    rng = np.random.default_rng(args.seed)
    x = rng.integers(0, 256, (GPU_CHECK_IMAGES, *SYNTHETIC_SHAPE), dtype=np.uint8)
    y = rng.integers(0, SYNTHETIC_CLASSES, GPU_CHECK_IMAGES)
    cfg = TrialConfig(model="seed", batch_size=batch, epochs=epochs,
                      augmentation=args.augmentation, seed=args.seed,
                      steps_per_execution=args.steps_per_execution
                      or TrialConfig.steps_per_execution)  # fmt: skip
    augment = build_augmentation(cfg.augmentation, seed=cfg.seed)
    model = compiled_model(cfg, SYNTHETIC_SHAPE, SYNTHETIC_CLASSES, augment_in_step=augment)
    clock, gpu = EpochClock(), {}
    data = train_dataset(x, y, batch, cfg.seed)
    start = time.perf_counter()
    with Utilization() as util, gpu_usage(gpu):
        model.fit(data, epochs=epochs, verbose=0, shuffle=False, callbacks=[clock])
    wall = time.perf_counter() - start
    steady = statistics.median(clock.times[1:] or clock.times)
    xla = jit_compile() and not has_geometric_ops(augment)
    print(f"gpu-check on {gpu_name()}: seed net, {GPU_CHECK_IMAGES:,} images "
          f"{SYNTHETIC_SHAPE}, batch {batch}, augmentation {cfg.augmentation} in the train step, "
          f"mixed precision {'on' if mixed_precision_pays() else 'off'}, "
          f"XLA {'auto' if xla else 'off'}")  # fmt: skip
    print(f"{epochs} epochs in {wall:.1f} s (target <= {TARGET_S:.0f} s on one H100); first "
          f"epoch {clock.times[0]:.2f} s (tracing), median epoch {steady:.2f} s")  # fmt: skip
    print(f"images/s: {GPU_CHECK_IMAGES / steady:,.0f} (median epoch), "
          f"{GPU_CHECK_IMAGES * epochs / wall:,.0f} (whole fit)")  # fmt: skip
    mean = util.mean()
    print("GPU utilization: " + (f"{mean:.0f}% mean of {len(util.samples)} nvidia-smi samples"
                                 if mean is not None else "n/a (no nvidia-smi)")
          + f"; memory peak {gpu.get(M.GPU_MEMORY_PEAK, float('nan')):,.0f} MB")  # fmt: skip
    return 0
