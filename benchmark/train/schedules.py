"""Learning-rate schedules by epoch: constant, cosine and one-cycle, each with a linear warm-up.

One formula (`lr_at`) in plain Python says what the rate is at a given (fractional) epoch;
the Keras schedule evaluates the same formula per optimizer step, so a test can check the
rate the optimizer really used at known epochs against it.
"""

from __future__ import annotations

import math

import keras
from keras import ops

ONECYCLE_RISE = 0.3  # onecycle without warmup_epochs: the rise takes 30% of training
START_DIVISOR = 25.0  # warm-up and onecycle start at learning_rate / 25 (PyTorch's OneCycleLR)


def rise_epochs(kind: str, epochs: int, warmup_epochs: int) -> float:
    """Epochs spent climbing to the peak rate."""
    if kind == "onecycle" and not warmup_epochs:
        return ONECYCLE_RISE * epochs
    return float(min(warmup_epochs, epochs))


def lr_at(kind: str, peak: float, epoch: float, epochs: int, warmup_epochs: int = 0) -> float:
    """The learning rate `epoch` epochs into training (0 = first step).

    constant: warm-up then `peak`; cosine: warm-up then half a cosine from `peak` to 0 at
    the last epoch; onecycle: a linear climb from peak/25, then a linear fall to 0.
    """
    rise = rise_epochs(kind, epochs, warmup_epochs)
    if epoch < rise:
        start = peak / START_DIVISOR
        return start + (peak - start) * epoch / rise
    if kind == "constant":
        return peak
    left = max(epochs - rise, 1e-9)
    done = min((epoch - rise) / left, 1.0)
    if kind == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * done))
    if kind == "onecycle":
        return peak * (1.0 - done)
    raise ValueError(f"unknown lr_schedule {kind!r}")


@keras.saving.register_keras_serializable(package="cnn_benchmark")
class EpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`lr_at` per optimizer step: step / steps_per_epoch is the fractional epoch."""

    def __init__(
        self, kind: str, peak: float, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0
    ) -> None:
        self.kind, self.peak, self.epochs = kind, float(peak), int(epochs)
        self.steps_per_epoch, self.warmup_epochs = int(steps_per_epoch), int(warmup_epochs)
        self.rise = rise_epochs(kind, epochs, warmup_epochs)

    def __call__(self, step):
        epoch = ops.cast(step, "float32") / float(self.steps_per_epoch)
        start = self.peak / START_DIVISOR
        warm = start + (self.peak - start) * epoch / max(self.rise, 1e-9)
        done = ops.clip((epoch - self.rise) / max(self.epochs - self.rise, 1e-9), 0.0, 1.0)
        if self.kind == "constant":
            after = ops.full_like(epoch, self.peak)
        elif self.kind == "cosine":
            after = self.peak * 0.5 * (1.0 + ops.cos(math.pi * done))
        else:
            after = self.peak * (1.0 - done)
        return ops.where(epoch < self.rise, warm, after)

    def get_config(self) -> dict:
        return {
            "kind": self.kind,
            "peak": self.peak,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
        }


def learning_rate(
    kind: str, peak: float, epochs: int, steps_per_epoch: int | None, warmup_epochs: int = 0
) -> float | EpochSchedule:
    """A float for a constant rate without warm-up (today's fit, unchanged), else a schedule."""
    if kind == "constant" and not warmup_epochs:
        return peak
    if not steps_per_epoch:
        raise ValueError(f"lr_schedule {kind!r} needs steps_per_epoch")
    return EpochSchedule(kind, peak, epochs, steps_per_epoch, warmup_epochs)
