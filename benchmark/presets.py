"""Registered model names and the numbers each preset fixes (timm's `@register_model` habit).

A preset is settings, not layers: the config merges it under what the user gave, and the
one builder in benchmark/models.py turns any config into a Keras model. Kept free of
Keras so the config (and `--help`) can read it without importing TensorFlow.
"""

from __future__ import annotations

from typing import Any

from benchmark.registry import Registry

MODELS: Registry = Registry("model")


@MODELS.register
def cnn() -> dict[str, Any]:
    """The searchable family: every architecture field comes from the config."""
    return {}


@MODELS.register
def seed() -> dict[str, Any]:
    """The TensorFlow-tutorial net of the seed lab: Conv32-Pool-Conv64-Pool-Conv64-Dense64."""
    return dict(
        depth=3,
        kernel_size=3,
        dense_units=64,
        filters_base=32,
        filters_max=64,
        padding="valid",
        batch_norm=False,
        dropout=0.0,
        head="flatten",
        convs_per_block=1,
        block_dropout=0.0,
    )


def model_preset(name: str) -> dict[str, Any]:
    return MODELS.get(name)()
