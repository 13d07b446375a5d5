"""FLOPs and widths of a built Keras model, for the families planned from their model (every
family but the plain CNN, whose planner counts the same things without building anything).

FLOPs are 2 x multiply-adds of the convolutions and dense layers, as the CNN planner counts
them; pools, normalisation, activations and additions are left out (they are a few percent of
a conv net's work). Nested models (keras.applications' blocks) are walked into, grouped and
depthwise convolutions count their own, smaller, work, and a Dense applied to a feature map
(ConvNeXt's pointwise layers) counts once per position.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import keras
from keras import layers


def walk(layer: keras.Layer) -> Iterator[keras.Layer]:
    """`layer` and every layer inside it, depth first (a Functional model's layers, a
    Sequential block's)."""
    yield layer
    for sub in getattr(layer, "layers", None) or []:
        yield from walk(sub)


def _positions(layer: keras.Layer) -> tuple[int, tuple[int, ...]]:
    """How many output positions the layer computes (H x W for a conv), and its shape."""
    shape = tuple(layer.output.shape)
    return math.prod(d or 1 for d in shape[1:-1]), shape


def layer_flops(layer: keras.Layer) -> int:
    """Forward FLOPs per image of one layer (0 for a layer that is not a conv or dense)."""
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw, c_in, mult = layer.depthwise_kernel.shape
        out = layer.pointwise_kernel.shape[-1]
        return 2 * _positions(layer)[0] * (kh * kw * c_in * mult + c_in * mult * out)
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw, c_in, mult = layer.kernel.shape
        return 2 * _positions(layer)[0] * kh * kw * c_in * mult
    if isinstance(layer, layers.Conv2D):  # kernel: (kh, kw, c_in / groups, c_out)
        return 2 * _positions(layer)[0] * math.prod(layer.kernel.shape)
    if isinstance(layer, layers.Dense):
        return 2 * _positions(layer)[0] * math.prod(layer.kernel.shape)
    return 0


def count(model: keras.Model) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(FLOPs per image, filters, feature sizes): the widths are the last conv's filters at
    each spatial size the convs work at, largest size first, so a family with hundreds of
    convs still logs a short `filters` param that says how wide it grows."""
    flops, widths = 0, {}
    for layer in walk(model):
        if layer is model:
            continue
        flops += layer_flops(layer)
        if isinstance(layer, layers.Conv2D | layers.DepthwiseConv2D | layers.SeparableConv2D):
            _, shape = _positions(layer)
            widths[shape[1]] = shape[-1]
    sizes = tuple(sorted(widths, reverse=True))
    return int(flops), tuple(widths[s] for s in sizes), sizes
