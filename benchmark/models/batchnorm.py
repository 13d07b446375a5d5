"""`FusedBatchNormalization`: Keras' BatchNormalization computed by TensorFlow's one fused
kernel (FusedBatchNormV3), as Keras 2 did by default (`fused=True`).

Why: Keras 3's layer is unfused. It casts a bf16 input up to float32, computes the moments,
normalizes and casts back, each a separate op over the whole feature map. In a residual net,
with a BN after every conv, that float32 element-wise work is much of a training step, and
mixed_bfloat16 only sped the resnet family up 1.33-1.43x (issue 30). The fused kernel reads
bf16 maps and keeps float32 statistics in one pass. Measured on the 2-core AVX-512 bf16 CPU,
default resnet, batch 64, interleaved medians: float32 274 images/s, bf16 387 (Keras' BN),
bf16 554 with this layer, float32 339 with this layer.

It is a drop-in: the same weights (gamma, beta, moving_mean, moving_variance), the same
config, and the same numbers up to float rounding. The moving variance is Keras 3's (the
population variance of the batch): the kernel returns Bessel's sample variance, which Keras
2 kept and this layer scales back by (n - 1) / n. What the kernel does not do (masks, batch
renormalization, synchronized statistics, other than a 4-D channels-last input) falls back
to Keras' own computation.

A logged model stores plain BatchNormalization layers (`as_plain_config`), so that it loads
without this project installed, as classifier.py promises.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

_FUSED_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="cnn_benchmark")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization by FusedBatchNormV3 (see the module's docstring)."""

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones((channels,), "float32")
        offset = self.beta if self.center else tf.zeros((channels,), "float32")
        if training and self.trainable:
            y, mean, sample_var = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, epsilon=self.epsilon, is_training=True
            )
            n = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, "float32")
            variance = sample_var * ((n - 1.0) / tf.maximum(n, 1.0))  # back to Keras 3's
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=False,
            )  # fmt: skip
        return tf.cast(y, self.compute_dtype)

    def _fusable(self, inputs, mask) -> bool:
        """Whether the fused kernel computes what Keras' layer would."""
        return (
            mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and inputs.shape[-1] is not None
            and tf.as_dtype(inputs.dtype).name in _FUSED_DTYPES
            and self.epsilon >= 1.001e-5  # the kernel's floor (cuDNN's): below it, it differs
        )


def with_fused_batch_norms(model: keras.Model) -> keras.Model:
    """`model` with each of Keras' BatchNormalization layers replaced by a fused one of the
    same config (a keras.applications net builds its own), every other layer shared. For a
    net trained from scratch only: the new layers start from their initializers."""

    def fused(layer: keras.layers.Layer) -> keras.layers.Layer:
        if type(layer) is keras.layers.BatchNormalization:
            return FusedBatchNormalization.from_config(layer.get_config())
        return layer

    return keras.models.clone_model(model, clone_function=fused)


def as_plain_config(config: Any) -> Any:
    """A model's `get_config()` with every FusedBatchNormalization written as Keras' own
    BatchNormalization (same config, same weights), so the saved model needs only Keras."""
    if isinstance(config, list):
        return [as_plain_config(c) for c in config]
    if not isinstance(config, dict):
        return config
    out = {k: as_plain_config(v) for k, v in config.items()}
    if out.get("class_name") == FusedBatchNormalization.__name__:
        out.update(class_name="BatchNormalization", module="keras.layers", registered_name=None)
    return out
