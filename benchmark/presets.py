"""Registered model names and the numbers each preset fixes (timm's `@register_model` habit).

A preset is settings, not layers: the config merges it under what the user gave, and its
family's builder (the plain CNN for `cnn` and `seed`) turns the config into a Keras model.
Kept free of Keras so the config (and `--help`) can read it without importing TensorFlow.
"""

from __future__ import annotations

from typing import Any

from benchmark.registry import Registry

MODELS: Registry = Registry("model")
# family name -> builder(cfg, image_shape, n_classes) -> keras.Model. The builders import
# Keras: they register from their own modules (benchmark/models/cnn.py); the name of a family
# is also a model name (the config's `model`), with no preset of its own needed.
FAMILIES: Registry = Registry("model family")


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
        pool_position="end",
    )


def model_preset(name: str) -> dict[str, Any]:
    """The settings `name` fixes: a preset's numbers, or nothing for a family's own name."""
    if name not in MODELS and name in family_names():
        return {}
    return MODELS.get(name)()


def family_of(name: str) -> str:
    """The family that builds model `name`: a family's own name, else (a preset) the CNN."""
    return name if name in family_names() else "cnn"


def family_names() -> tuple[str, ...]:
    """The families' names, without importing their builders (Keras): benchmark/choices.py
    declares every model name; the ones that are not presets here are families."""
    from benchmark.choices import CHOICES

    return tuple(n for n in CHOICES["model"] if n == "cnn" or n not in MODELS)
