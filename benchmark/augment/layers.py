"""Custom Keras preprocessing layers, where the built-in ones do not do what we need.

Both follow the Keras pattern (`keras.layers.RandomFlip`): the layer keeps `self.seed`
and a `SeedGenerator(seed)`, draws its random parameters separately from applying them,
passes images through unchanged when not training, and returns every constructor
argument from `get_config`. They act on float NHWC images in `value_range` and are
safe inside a `tf.data` map (TF backend): only `keras.ops` / `keras.random` are used.
"""

from __future__ import annotations

import keras
from keras import ops


def _check_value_range(value_range) -> tuple[float, float]:
    """`value_range` is two numbers, low < high (shared with the Keras colour layers)."""
    if (
        not isinstance(value_range, (tuple, list))
        or len(value_range) != 2
        or not all(isinstance(v, (int, float)) for v in value_range)
        or value_range[0] >= value_range[1]
    ):
        raise ValueError(
            "`value_range` should be a tuple of two numbers, low < high. "
            f"Received: value_range={value_range}"
        )
    return float(value_range[0]), float(value_range[1])


@keras.saving.register_keras_serializable(package="cnn_benchmark")
class RandomSaturationFactor(keras.layers.Layer):
    """Multiply each image's HSV saturation by a factor drawn uniformly in `factor`.

    The seed lab's policy 2 (`tf.image.stateless_random_saturation(lower=0.5,
    upper=2.0)`), drawn per image instead of once per batch, as a serializable layer.

    Why not `keras.layers.RandomSaturation` (Keras 3.15): it samples `f` uniformly in
    its `factor` (a range inside [0, 1]) and multiplies the saturation by
    `f / (1 - f)`. A multiplier range [0.5, 2.0] therefore needs `factor=(1/3, 2/3)`,
    and the multiplier is then not uniform (mean ~1.08, median 1.0, instead of 1.25).
    It also clips the scaled saturation to `value_range` (0, 255) rather than to
    [0, 1], so a multiplier above 1 on an already saturated pixel produces negative
    RGB values. This layer clips saturation to [0, 1] like `tf.image.adjust_saturation`.

    Args:
        factor: `(lower, upper)`, 0 <= lower <= upper: the saturation multiplier is
            drawn uniformly in this range for every image. `(1.0, 1.0)` is a no-op.
        value_range: the range of the incoming (and outgoing) pixel values.
        seed: integer seed of the layer's `SeedGenerator`, or None.
    """

    def __init__(self, factor=(0.5, 2.0), value_range=(0, 255), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.factor = self._check_factor(factor)
        self.value_range = _check_value_range(value_range)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    @staticmethod
    def _check_factor(factor) -> tuple[float, float]:
        if (
            not isinstance(factor, (tuple, list))
            or len(factor) != 2
            or not all(isinstance(f, (int, float)) for f in factor)
            or not 0 <= factor[0] <= factor[1]
        ):
            raise ValueError(
                "`factor` should be a tuple of two numbers (lower, upper) with "
                f"0 <= lower <= upper. Received: factor={factor}"
            )
        return float(factor[0]), float(factor[1])

    def get_random_transformation(self, images):
        """One saturation multiplier per image, shape (batch,)."""
        return keras.random.uniform(
            (ops.shape(images)[0],),
            minval=self.factor[0],
            maxval=self.factor[1],
            dtype=self.compute_dtype,
            seed=self.generator,
        )

    def transform_images(self, images, multipliers):
        low, high = self.value_range
        unit = (images - low) / (high - low)  # HSV conversion wants [0, 1]
        hsv = ops.image.rgb_to_hsv(unit, data_format="channels_last")
        saturation = ops.clip(hsv[..., 1] * multipliers[:, None, None], 0.0, 1.0)
        hsv = ops.stack([hsv[..., 0], saturation, hsv[..., 2]], axis=-1)
        rgb = ops.image.hsv_to_rgb(hsv, data_format="channels_last")
        return ops.clip(rgb * (high - low) + low, low, high)

    def call(self, inputs, training=True):
        if not training:
            return inputs
        batched = len(inputs.shape) == 4
        images = inputs if batched else ops.expand_dims(inputs, 0)
        outputs = self.transform_images(images, self.get_random_transformation(images))
        return outputs if batched else ops.squeeze(outputs, 0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="cnn_benchmark")
class SeededRandomGrayscale(keras.layers.RandomGrayscale):
    """`keras.layers.RandomGrayscale` whose `get_config` keeps `seed`.

    Keras 3.15's `RandomGrayscale.get_config` returns only `factor` (plus the base
    config), so a saved and reloaded model loses its seed (keras issue 23657). The
    behaviour is otherwise the built-in one, which we checked and test: one uniform
    draw per image (`shape=(batch_size,)`), converted with the luminance weights
    (0.2989, 0.5870, 0.1140) and broadcast back to 3 equal channels.

    Args:
        factor: probability in [0, 1] that an image is converted to grayscale.
        data_format: "channels_last" (default) or "channels_first".
        seed: integer seed of the layer's `SeedGenerator`, or None.
    """

    def __init__(self, factor=0.5, data_format=None, seed=None, **kwargs):
        if not isinstance(factor, (int, float)) or not 0 <= factor <= 1:
            raise ValueError(f"`factor` should be between 0 and 1. Received: factor={factor}")
        super().__init__(factor=factor, data_format=data_format, seed=seed, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "data_format": self.data_format, "seed": self.seed})
        return config
