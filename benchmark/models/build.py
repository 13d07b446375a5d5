"""A config -> its family's Keras model, and the plan (fit check, FLOPs, parameters) the
trial, the dry run and the space validation read before training.

The plain CNN family plans without building (benchmark/models/cnn.py); any other family is
planned from its built model (benchmark/models/flops.py): parameters as Keras counts them,
FLOPs as 2 x multiply-adds of its convolutions and dense layers, which is what the CNN
planner counts too.

Precision is chosen per build: `build_model(..., precision="mixed_bfloat16")` builds the
model's layers under that dtype policy and puts the previous global policy back, so nothing
built afterwards (the augmentation layers, the next trial's model) inherits it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from benchmark.config import TrialConfig
from benchmark.models import applications, cnn, flops, resnet  # noqa: F401 (they register)
from benchmark.models.cnn import LayerPlan
from benchmark.presets import FAMILIES, MODELS, family_of, model_preset

__all__ = ["FAMILIES", "MODELS", "LayerPlan", "build_model", "dtype_policy", "family_of",
           "model_preset", "model_summary", "plan"]  # fmt: skip


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers made inside take the policy `name` (Keras reads the global policy when a layer
    is made, and the layer keeps it); the global policy before is restored on the way out."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def build_model(cfg: TrialConfig, image_shape: tuple[int, int, int], n_classes: int,
                precision: str = "float32") -> keras.Model:  # fmt: skip
    """The model of `cfg.model`'s family (cnn and its presets: the plain CNN), its layers
    under the dtype policy `precision` (a resolved one: float32, mixed_bfloat16, ...)."""
    with dtype_policy(precision):
        return FAMILIES.get(family_of(cfg.model))(cfg, image_shape, n_classes)


def plan(cfg: TrialConfig, image_shape: tuple[int, int, int], n_classes: int) -> LayerPlan:
    """Raises UserError when the spec cannot fit the images; else its shapes and costs."""
    if family_of(cfg.model) == "cnn":
        return cnn.plan_cnn(cfg, image_shape, n_classes)
    model = build_model(cfg, image_shape, n_classes)
    total, filters, sizes = flops.count(model)
    return LayerPlan(filters=filters, feature_sizes=sizes, flops=total,
                     params=model.count_params())  # fmt: skip


def model_summary(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines) + "\n"
