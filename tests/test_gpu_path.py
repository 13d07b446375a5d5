"""The GPU path's parts, checked on the CPU (a GPU run is `bench --gpu-check`): augmentation
inside the compiled train step reaches every step and only training; label mixers get their
labels there too; a CPU fit logs no GPU metrics."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from benchmark import metrics as M
from benchmark.augment import build_augmentation
from benchmark.config import TrialConfig
from benchmark.train.gpu import AugmentInStep, gpu_usage, has_geometric_ops, on_gpu
from benchmark.train.pipeline import train_dataset
from benchmark.train.trial import compiled_model


class CountingLayer(keras.layers.Layer):
    """Counts the batches it sees in training (a variable: the count survives tf.function)."""

    def __init__(self):
        super().__init__()
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                     dtype="int32")  # fmt: skip

    def call(self, x, training=False):
        if training:
            self.calls.assign_add(1)
        return x


def _data(n=64, classes=4):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), rng.integers(0, classes, n)


def test_augmentation_in_the_train_step_runs_on_every_training_step_only():
    x, y = _data()
    cfg = TrialConfig(depth=2, filters_max=16, dense_units=16, batch_size=16,
                      steps_per_execution=2, epochs=1)  # fmt: skip
    spy = CountingLayer()
    model = compiled_model(cfg, (16, 16, 3), 4, augment_in_step=keras.Sequential([spy]))
    assert isinstance(model, AugmentInStep)
    model.fit(train_dataset(x, y, 16, 0), epochs=2, verbose=0, shuffle=False)
    assert int(spy.calls.numpy()) == 2 * 4  # 4 steps an epoch, 2 epochs
    model.predict(x, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert int(spy.calls.numpy()) == 8  # evaluation and prediction see clean images


def test_label_mixing_policies_mix_inside_the_step():
    x, y = _data()
    cfg = TrialConfig(depth=2, filters_max=16, dense_units=16, batch_size=16, epochs=1)
    mix = build_augmentation("mixup", seed=0)
    model = compiled_model(cfg, (16, 16, 3), 4, augment_in_step=mix, soft_labels=True)
    history = model.fit(train_dataset(x, y, 16, 0, None, n_classes=4), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_geometric_policies_are_told_apart_for_xla():
    assert has_geometric_ops(build_augmentation("seed", seed=0))  # rotation, shift, ...
    assert not has_geometric_ops(build_augmentation("none", seed=0))
    assert not has_geometric_ops(None)


@pytest.mark.skipif(on_gpu(), reason="checks the CPU behaviour")
def test_a_cpu_fit_logs_no_gpu_metrics():
    metrics: dict[str, float] = {}
    with gpu_usage(metrics):
        pass
    assert M.GPU_TIME not in metrics and M.GPU_MEMORY_PEAK not in metrics


@pytest.mark.skipif(on_gpu(), reason="checks the CPU behaviour")
def test_gpu_check_without_a_gpu_is_a_one_line_error(capsys):
    from benchmark.cli import main

    assert main(["bench", "--gpu-check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --gpu-check needs a GPU; TensorFlow found none (CPU:")
