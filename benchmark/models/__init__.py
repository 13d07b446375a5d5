"""The model stage: a TrialConfig -> a Keras model, and its plan (shapes, FLOPs, parameters)
before anything is built. Model names, presets and the FAMILIES registry are settings,
read by the config without Keras: benchmark/presets.py.

    cnn.py           the plain CNN family: its builder (registered in FAMILIES) and planner
    resnet.py        the residual family (`resnet`: the ResNet-9 / airbench layout)
    applications.py  `keras:NAME`: any keras.applications architecture, from scratch
    flops.py         FLOPs and widths of a built model (the families other than the CNN)
    build.py         build_model (under a dtype policy) and plan for any family
    batchnorm.py     Keras' BatchNormalization in one fused kernel (resnet bf16: 1.33x -> 1.65x)

A model family is one builder registered with `@FAMILIES.register` (see README "Extending").
May import: benchmark.config, benchmark.errors, benchmark.registry. The names below load
their module on first use, so that `benchmark.presets` stays free of Keras.
"""

from __future__ import annotations

from benchmark.lazy import lazy_names

_WHERE = {
    "MODELS": "build",
    "model_preset": "build",
    "FAMILIES": "build",
    "family_of": "build",
    "build_model": "build",
    "dtype_policy": "build",
    "plan": "build",
    "model_summary": "build",
    "LayerPlan": "cnn",
    "FusedBatchNormalization": "batchnorm",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
