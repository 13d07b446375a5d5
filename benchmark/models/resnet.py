"""The residual family (`--model resnet`): the ResNet-9 / airbench layout, which the fast
CIFAR-10 trainings of DAWNBench and airbench use.

    prep    conv-BN-ReLU, filters_base wide, full resolution
    stage   conv-BN-ReLU (stage_widths), a 2x2 max-pool where stage_pools says 1, then
            residual_blocks of x + (conv-BN-ReLU, conv-BN-ReLU)(x), an identity skip
    head    a global max or average pool (or flatten), an optional hidden dense layer
            (dense_units), dropout, the classifier, a float32 softmax

ResNet-9 is `--filters-base 64 --stage-widths 128-256-512 --residual-blocks 1-0-1`; the
defaults are its half width (1.65M parameters on CIFAR), which trained as well as the full
width on the 9,000-image subset in a third of the time (issue 30). The pool comes before a
stage's residual blocks so that they run at the lower resolution: a quarter of the FLOPs.
kernel_size, batch_norm (on by default for this family), block_dropout (after each stage),
dense_units, dropout and head mean what they mean for the plain CNN; depth, filters_max,
padding (always same: the skip adds maps of one size), convs_per_block and pool_position are
the CNN's alone.
"""

from __future__ import annotations

import keras
from keras import layers

from benchmark.config import TrialConfig, stage_numbers
from benchmark.errors import UserError
from benchmark.models.batchnorm import FusedBatchNormalization
from benchmark.models.cnn import head_layer, keras_name
from benchmark.presets import FAMILIES


def check_fit(cfg: TrialConfig, image_shape: tuple[int, int, int]) -> None:
    """UserError when the stages' pools would shrink the feature map below 1x1."""
    size = min(image_shape[:2])
    for stage, pools in enumerate(stage_numbers(cfg.stage_pools), start=1):
        size //= 2 if pools else 1
        if size < 1:
            raise UserError(
                f"model {cfg.arch_name} does not fit {image_shape[0]}px images: the pool of "
                f"stage {stage} would shrink the feature map below 1x1; pool in fewer stages "
                "(stage_pools) or use a larger image_size"
            )


def _unit(x, filters: int, cfg: TrialConfig):
    """conv-BN-ReLU (conv-ReLU with batch_norm off); the BN fused (models/batchnorm.py)."""
    if not cfg.batch_norm:
        return layers.Conv2D(filters, cfg.kernel_size, padding="same", activation="relu")(x)
    x = layers.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=False)(x)
    return layers.Activation("relu")(FusedBatchNormalization()(x))


@FAMILIES.register(name="resnet")
def build_resnet(
    cfg: TrialConfig, image_shape: tuple[int, int, int], n_classes: int
) -> keras.Model:
    """The residual net of `cfg` (Rescaling(1/255) first: the pipeline feeds [0, 255])."""
    check_fit(cfg, image_shape)
    inputs = keras.Input(shape=image_shape)
    x = _unit(layers.Rescaling(1.0 / 255)(inputs), cfg.filters_base, cfg)
    stages = zip(stage_numbers(cfg.stage_widths), stage_numbers(cfg.residual_blocks),
                 stage_numbers(cfg.stage_pools), strict=True)  # fmt: skip
    for width, blocks, pools in stages:
        x = _unit(x, width, cfg)
        if pools:
            x = layers.MaxPooling2D(2)(x)
        for _ in range(blocks):
            x = layers.Add()([x, _unit(_unit(x, width, cfg), width, cfg)])
        if cfg.block_dropout:
            x = layers.Dropout(cfg.block_dropout)(x)
    x = head_layer(cfg.head)(x)
    if cfg.dense_units:
        x = layers.Dense(cfg.dense_units, activation="relu")(x)
    if cfg.dropout:
        x = layers.Dropout(cfg.dropout)(x)
    # float32 softmax: under mixed precision low-precision probabilities lose the small ones
    outputs = layers.Softmax(dtype="float32")(layers.Dense(n_classes)(x))
    return keras.Model(inputs, outputs, name=keras_name(cfg.run_name))
