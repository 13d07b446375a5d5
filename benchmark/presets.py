"""Registered model names and the numbers each preset fixes (timm's `@register_model` habit).

A preset is settings, not layers: the config merges it under what the user gave, and its
family's builder (the plain CNN for `cnn` and `seed`, benchmark/models/resnet.py for `resnet`,
benchmark/models/applications.py for any `keras:NAME`) turns the config into a Keras model.
Kept free of Keras so the config (and `--help`) can read it without importing TensorFlow.
"""

from __future__ import annotations

from typing import Any

from benchmark.choices import CHOICES, KERAS_PREFIX, PATTERNS, pattern_prefix, problem
from benchmark.errors import UserError
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


# What a family starts from where TrialConfig's defaults (the plain CNN's) do not fit it; the
# user's settings win, as over a preset. resnet: ResNet-9's head (global max pool straight
# into the classifier) and conv-BN-ReLU units.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "resnet": {"head": "gmp", "dense_units": 0, "batch_norm": True},
}


# The architecture settings each family's builder reads; a setting of another family is
# logged on every run (a search over families samples it) but changes nothing in this one.
# tests/test_families.py checks each claim by building the model with the setting changed.
_CNN_SETTINGS = ("depth", "kernel_size", "dense_units", "filters_base", "filters_max",
                 "padding", "batch_norm", "dropout", "head", "convs_per_block",
                 "block_dropout", "pool_position")  # fmt: skip
FAMILY_SETTINGS: dict[str, frozenset[str]] = {
    "cnn": frozenset(_CNN_SETTINGS),
    "resnet": frozenset({"kernel_size", "dense_units", "filters_base", "batch_norm", "dropout",
                         "head", "block_dropout", "stage_widths", "residual_blocks",
                         "stage_pools"}),  # fmt: skip
    KERAS_PREFIX + "NAME": frozenset(),  # keras.applications' own layout: only the name
}
ARCH_SETTINGS = frozenset().union(*FAMILY_SETTINGS.values())


def unused_settings(model: str) -> frozenset[str]:
    """The architecture settings model `model`'s family ignores: a resnet run's `depth` or
    `filters_max` is noise when a report tells two resnets apart."""
    return ARCH_SETTINGS - FAMILY_SETTINGS[family_of(model)]


def model_preset(name: str) -> dict[str, Any]:
    """The settings `name` fixes: a preset's numbers, a family's starting point, or nothing
    for an open-ended name (keras:NAME). An unknown name: UserError naming the nearest."""
    if (reason := problem("model", name)) is not None:
        raise UserError(reason)
    if name not in MODELS:
        return dict(FAMILY_DEFAULTS.get(family_of(name), {}))
    return MODELS.get(name)()


def family_of(name: str) -> str:
    """The family that builds model `name`: a family's own name, the pattern an open-ended
    name matches (keras:ResNet50V2 -> keras:NAME), else (a preset) the CNN."""
    for pattern in PATTERNS["model"]:
        if name.startswith(pattern_prefix(pattern)):
            return pattern
    return name if name in family_names() else "cnn"


def family_names() -> tuple[str, ...]:
    """The families' names, without importing their builders (Keras): benchmark/choices.py
    declares every model name; the ones that are not presets here are families, and so is
    each open-ended pattern (keras:NAME)."""
    named = tuple(n for n in CHOICES["model"] if n == "cnn" or n not in MODELS)
    return named + PATTERNS["model"]
