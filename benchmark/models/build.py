"""A config -> its family's Keras model, and the plan (fit check, FLOPs, parameters) the
trial, the dry run and the space validation read before training.

The plain CNN family plans without building (benchmark/models/cnn.py); any other family is
planned from its built model: parameters as Keras counts them, FLOPs as 2 x multiply-adds of
its Conv2D and Dense layers, which is what the CNN planner counts too.
"""

from __future__ import annotations

import keras

from benchmark.config import TrialConfig
from benchmark.models import cnn
from benchmark.models.cnn import LayerPlan
from benchmark.presets import FAMILIES, MODELS, family_of, model_preset

__all__ = ["FAMILIES", "MODELS", "LayerPlan", "build_model", "family_of", "model_preset",
           "model_summary", "plan"]  # fmt: skip


def build_model(cfg: TrialConfig, image_shape: tuple[int, int, int], n_classes: int) -> keras.Model:
    """The model of `cfg.model`'s family (cnn and its presets: the plain CNN)."""
    return FAMILIES.get(family_of(cfg.model))(cfg, image_shape, n_classes)


def plan(cfg: TrialConfig, image_shape: tuple[int, int, int], n_classes: int) -> LayerPlan:
    """Raises UserError when the spec cannot fit the images; else its shapes and costs."""
    if family_of(cfg.model) == "cnn":
        return cnn.plan_cnn(cfg, image_shape, n_classes)
    model = build_model(cfg, image_shape, n_classes)
    flops, filters, sizes = 0, [], []
    for layer in model.layers:
        out = layer.output.shape
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, c_out = layer.kernel.shape
            flops += 2 * kh * kw * c_in * c_out * out[1] * out[2]
            filters.append(c_out)
            sizes.append(out[1])
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return LayerPlan(filters=tuple(filters), feature_sizes=tuple(sizes), flops=int(flops),
                     params=model.count_params())  # fmt: skip


def model_summary(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines) + "\n"
