"""The plain CNN family (`cnn`, and the lab's `seed` preset of it): its builder and its
planner (shapes, FLOPs, parameters before anything is built).

The registered model names and their presets live in benchmark/models/presets.py, which the
config reads without importing Keras; benchmark/models/build.py picks the family's builder.

Every model starts with Rescaling(1/255): the pipeline feeds float32 pixels in [0, 255]
(augmentation works in that range, see augment.py), the model sees [0, 1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras
from keras import layers

from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.models.batchnorm import FusedBatchNormalization
from benchmark.presets import FAMILIES


@dataclass(frozen=True)
class LayerPlan:
    """The shapes a spec leads to, computed before any layer exists."""

    filters: tuple[int, ...]  # per conv block
    feature_sizes: tuple[int, ...]  # spatial size after each conv block (after its pool)
    flops: int  # forward FLOPs per image: 2 x multiply-adds of convs and dense layers
    params: int  # trainable + BN parameters, as keras counts them after the build


def plan_cnn(cfg: TrialConfig, image_shape: tuple[int, int, int], n_classes: int) -> LayerPlan:
    """Check that the spec fits the image and count FLOPs, without building anything.

    Raises UserError when a feature map would shrink below 1x1, naming the block.
    """
    h, w, channels = image_shape
    filters = tuple(min(cfg.filters_base * 2**i, cfg.filters_max) for i in range(cfg.depth))
    flops, sizes, c_in = 0, [], channels
    for i, f in enumerate(filters):
        for j in range(cfg.convs_per_block):
            if cfg.padding == "valid":
                h, w = h - cfg.kernel_size + 1, w - cfg.kernel_size + 1
            if h < 1 or w < 1:
                raise UserError(
                    f"model d{cfg.depth}-k{cfg.kernel_size} does not fit {image_shape[0]}px "
                    f"images: conv block {i + 1} would shrink the feature map below 1x1; use "
                    "fewer blocks, a smaller kernel_size, padding=same or a larger image_size"
                )
            flops += 2 * cfg.kernel_size * cfg.kernel_size * c_in * f * h * w
            c_in = f
            if pool_follows(cfg, i, j):
                h, w = h // 2, w // 2
                if h < 1 or w < 1:
                    raise UserError(
                        f"model d{cfg.depth}-k{cfg.kernel_size} does not fit {image_shape[0]}px "
                        f"images: the pool in conv block {i + 1} would shrink the feature map "
                        "below 1x1; use fewer blocks or a larger image_size"
                    )
        sizes.append(h)
    width = h * w * c_in if cfg.head == "flatten" else c_in  # a global pool: one per channel
    for units in ((cfg.dense_units,) if cfg.dense_units else ()) + (n_classes,):
        flops += 2 * width * units
        width = units
    return LayerPlan(
        filters=filters,
        feature_sizes=tuple(sizes),
        flops=flops,
        params=_param_count(cfg, filters, channels, h * w, n_classes),
    )


def pool_follows(cfg: TrialConfig, block: int, conv: int) -> bool:
    """Whether a 2x2 max-pool comes after conv `conv` of block `block` (both from 0).

    `end` (the lab's layout): after each block's last conv, except the last block's.
    `early` (airbench's): after each block's first conv, so the block's other convs cost a
    quarter of their FLOPs at full resolution; that buys width on a CPU budget.
    """
    if cfg.pool_position == "early":
        return conv == 0
    return conv == cfg.convs_per_block - 1 and block < cfg.depth - 1


def _param_count(cfg: TrialConfig, filters, channels: int, last_hw: int, n_classes: int) -> int:
    """What keras' count_params() will say, known before building (planner and dry run)."""
    total, c_in = 0, channels
    for f in filters:
        for _ in range(cfg.convs_per_block):
            k = cfg.kernel_size * cfg.kernel_size * c_in * f
            total += k + (4 * f if cfg.batch_norm else f)  # BN: gamma, beta, mean, variance
            c_in = f
    width = last_hw * c_in if cfg.head == "flatten" else c_in
    for units in ((cfg.dense_units,) if cfg.dense_units else ()) + (n_classes,):
        total += width * units + units
        width = units
    return total


@FAMILIES.register(name="cnn")
def build_cnn(cfg: TrialConfig, image_shape: tuple[int, int, int], n_classes: int) -> keras.Model:
    """A Sequential CNN from the config; the seed preset reproduces the tutorial net exactly."""
    p = plan_cnn(cfg, image_shape, n_classes)
    net = [keras.Input(shape=image_shape), layers.Rescaling(1.0 / 255)]
    for i, f in enumerate(p.filters):
        for j in range(cfg.convs_per_block):
            if cfg.batch_norm:  # conv -> BN -> relu, the usual order
                net += [
                    layers.Conv2D(f, cfg.kernel_size, padding=cfg.padding, use_bias=False),
                    FusedBatchNormalization(),  # Keras' BN in one kernel: batchnorm.py
                    layers.Activation("relu"),
                ]
            else:
                net.append(
                    layers.Conv2D(f, cfg.kernel_size, padding=cfg.padding, activation="relu")
                )
            if pool_follows(cfg, i, j):
                net.append(layers.MaxPooling2D(2))
        if cfg.block_dropout:
            net.append(layers.Dropout(cfg.block_dropout))
    net.append(head_layer(cfg.head))
    if cfg.dense_units:
        net.append(layers.Dense(cfg.dense_units, activation="relu"))
    if cfg.dropout:
        net.append(layers.Dropout(cfg.dropout))
    # float32 softmax: under mixed precision (GPU) float16 probabilities lose the small ones
    net += [layers.Dense(n_classes), layers.Softmax(dtype="float32")]
    return keras.Sequential(net, name=keras_name(cfg.run_name))


def head_layer(head: str) -> keras.Layer:
    """What turns the last feature map into the classifier's input (TrialConfig.head)."""
    return {"flatten": layers.Flatten, "gap": layers.GlobalAveragePooling2D,
            "gmp": layers.GlobalMaxPooling2D}[head]()  # fmt: skip


def keras_name(run_name: str) -> str:
    """TensorFlow scope names take letters, digits, "_" and ".": "lab-net-...-aug=lab" does not
    fit as it is."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", run_name)
