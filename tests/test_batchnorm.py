"""The fused batch norm (benchmark/models/batchnorm.py) is Keras' BatchNormalization in one
kernel: the same outputs, gradients and moving statistics, in float32 and bf16, and a logged
model that holds it loads with Keras alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf

from benchmark.config import TrialConfig
from benchmark.models import build_model
from benchmark.models.batchnorm import FusedBatchNormalization
from benchmark.train.export import log_model


def _pair(dtype: str = "float32", **kwargs) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    """Keras' layer and the fused one, built on 6 channels with the same non-trivial weights."""
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0.5, 2.0, 6), rng.normal(0, 1, 6), rng.normal(0, 1, 6),
               rng.uniform(0.5, 2.0, 6)]  # fmt: skip
    layers = (keras.layers.BatchNormalization(dtype=dtype, **kwargs),
              FusedBatchNormalization(dtype=dtype, **kwargs))  # fmt: skip
    for layer in layers:
        layer.build((None, 5, 7, 6))
        layer.set_weights(weights)
    return layers


def _images(dtype: str = "float32") -> tf.Tensor:
    x = np.random.default_rng(1).normal(3.0, 2.0, (4, 5, 7, 6))
    return tf.constant(x, dtype=dtype)


@pytest.mark.parametrize("training", [True, False])
def test_fused_batch_norm_computes_what_keras_computes(training):
    keras_bn, fused = _pair()
    x = _images()
    weigh = tf.constant(np.random.default_rng(4).normal(size=x.shape), "float32")
    outputs = []
    for layer in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * weigh)  # per-channel weights would make d/dgamma 0 for both
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        outputs.append([y, *grads])
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-5)
    for a, b in zip(keras_bn.non_trainable_weights, fused.non_trainable_weights, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-6)  # moving statistics, Bessel's too
    moved = not np.allclose(fused.moving_mean, _pair()[1].moving_mean)
    assert moved == training  # the statistics move in training only


def test_fused_batch_norm_in_bf16_keeps_float32_statistics_and_keras_numbers():
    keras_bn, fused = _pair("mixed_bfloat16")
    x = _images("bfloat16")
    y_keras, y_fused = keras_bn(x, training=True), fused(x, training=True)
    assert y_fused.dtype == tf.bfloat16 and fused.moving_variance.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y_fused, "float32"), tf.cast(y_keras, "float32"),
                               atol=0.05)  # fmt: skip  # bf16 keeps 3 significant digits
    np.testing.assert_allclose(fused.moving_variance, keras_bn.moving_variance, rtol=1e-2)


def test_what_the_kernel_cannot_do_falls_back_to_keras():
    keras_bn, fused = (keras.layers.BatchNormalization(), FusedBatchNormalization())
    x = tf.constant(np.random.default_rng(2).normal(size=(8, 3)), "float32")  # a dense output
    np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), rtol=1e-5)
    renorm = FusedBatchNormalization(renorm=True)
    assert not renorm._fusable(_images(), None)


def test_a_logged_model_holds_keras_own_batch_norm_and_loads_without_this_project(tmp_path):
    """What export.log_model writes (the path every trial takes), read back with Keras alone."""
    cfg = TrialConfig.from_options(model="resnet", filters_base=8, stage_widths="8-8-8")
    net = build_model(cfg, (32, 32, 3), 10)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in net.layers)
    with mlflow.start_run():
        uri = log_model(net, [str(c) for c in range(10)], 32)
    model_dir = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path)))
    path = next(model_dir.rglob("*.keras"))
    assert "FusedBatchNormalization" not in zipfile.ZipFile(path).read("config.json").decode()
    x = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", net.predict(x, verbose=0))
    load = ("import sys, keras, numpy as np; sys.modules['benchmark'] = None; "  # unimportable
            f"m = keras.saving.load_model({str(path)!r}, compile=False); "
            "np.testing.assert_allclose(m.predict(np.load('x.npy'), verbose=0), "
            "np.load('want.npy'), rtol=1e-5, atol=1e-6)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", load], cwd=tmp_path, capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
