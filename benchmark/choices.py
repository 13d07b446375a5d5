"""The allowed values of every enumerated setting, importable without TensorFlow.

Why a module of its own: `--help` lists dataset, model and augmentation names and must come
back in well under 2 s, but the registries that own those names (benchmark/data/,
models.py, augment.py) import Keras, which takes seconds. So the names are declared here once,
in registration order, and tests/test_choices.py checks that they equal the registries' names:
a newly registered model or policy cannot be forgotten here. TrialConfig's validation can read
CHOICES too, so the CLI, the YAML spaces and the config agree on one list.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

DATASETS = ("cifar10", "cifar100", "flowers17")  # benchmark/data/ DATASETS
LAB_DATASETS = ("cifar10", "cifar100", "flowers17")  # the lab's tasks 1-2, 3 and 4 (`lab`)
# `lab --parts`: the recipe parts varied on the winner without --values (search/ablation.py)
LAB_PARTS = ("ema", "label_smoothing", "batch_size", "precision")
FOLDER_PREFIX = "folder:"  # folder:PATH, any folder of class sub-folders
KERAS_PREFIX = "keras:"  # keras:NAME, any keras.applications constructor, from scratch
MODELS = ("cnn", "seed", "resnet")  # benchmark/presets.py MODELS (+ families: benchmark/models/)
AUGMENTATIONS = (  # benchmark/augment/policies.py POLICIES
    "none", "seed", "saturation", "shift", "grayscale", "shift_grayscale", "seed_shift_grayscale",
    "all",
    "crop", "shift_flip", "shift_flip_cutout", "mixup", "cutmix", "randaugment", "crop_cutmix",
    "strong",
)  # fmt: skip
# Lab task 2, "add shift and grayscale to the best model's policy": each task-1 policy and the
# registered policy that is it plus shift + grayscale (the report reads it back the other way).
WITH_SHIFT_GRAYSCALE = {"none": "shift_grayscale", "seed": "seed_shift_grayscale"}

# TrialConfig field -> its allowed values, in the order help and messages list them.
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": DATASETS,
    "label_mode": ("fine", "coarse"),
    "model": MODELS,
    "padding": ("valid", "same"),
    "head": ("flatten", "gap", "gmp"),  # gap / gmp: global average / max pooling
    "pool_position": ("end", "early"),  # early: each block's pool right after its first conv
    "augmentation": AUGMENTATIONS,
    "optimizer": ("rmsprop", "adam", "sgd", "adamw"),  # sgd: Nesterov momentum 0.9
    "lr_schedule": ("constant", "cosine", "onecycle"),
    "lr_scaling": ("none", "linear"),  # linear: the rate scales with the batch (per 256)
    "tta": ("none", "flip", "flip_translate"),
    "precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
}

# Open-ended values a field also takes, shown as written here: any "folder:..." is a dataset,
# any "keras:..." a model (what follows the colon is checked where it is used).
PATTERNS: dict[str, tuple[str, ...]] = {
    "dataset": (FOLDER_PREFIX + "PATH",),
    "model": (KERAS_PREFIX + "NAME",),
}

# How run names and reports show a value whose CLI name would read as something else: the
# lab's net and the lab's policy are both `seed` on the command line (and in YAML, MLproject
# and MLflow params, which keep that name); a run name says `lab-net` and `aug=lab`.
DISPLAY: dict[str, dict[str, str]] = {
    "model": {"seed": "lab-net"},
    "augmentation": {"seed": "lab", "seed_shift_grayscale": "lab+shift_grayscale"},
}


def display(field: str, value: object) -> str:
    """`value` of the TrialConfig field `field` as run names and reports show it."""
    return DISPLAY.get(field, {}).get(str(value), str(value))


def known(field: str, extra: tuple[str, ...] = ()) -> str:
    """The allowed values of `field` as one comma-separated list, patterns last."""
    return ", ".join([*extra, *CHOICES[field], *PATTERNS.get(field, ())])


def did_you_mean(value: str, options: Sequence[str], n: int = 1) -> str:
    """A "; did you mean 'x'?" for a near miss (difflib's ratio >= 0.6), else "";
    with `n` > 1 up to n of the nearest: "; did you mean 'x', 'y' or 'z'?"."""
    close = [repr(c) for c in difflib.get_close_matches(str(value), list(options), n, 0.6)]
    if not close:
        return ""
    listed = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f"; did you mean {listed}?"


def pattern_prefix(pattern: str) -> str:
    """The fixed start of an open-ended value: "folder:" for "folder:PATH"."""
    return pattern[: pattern.index(":") + 1]


def unknown(
    kind: str, value: object, options: Sequence[str], patterns: Sequence[str] = ()
) -> str | None:
    """None when `value` is one of `options` or starts like a pattern ("folder:PATH" takes any
    "folder:..."), else one line naming it, listing what is allowed, and the nearest option."""
    if value in options:
        return None
    prefixes = [pattern_prefix(p) for p in patterns]
    if isinstance(value, str) and any(value.startswith(p) for p in prefixes):
        return None
    listed = ", ".join([*options, *patterns])
    return f"unknown {kind} {value!r}; known: {listed}" + did_you_mean(str(value), options)


def problem(field: str, value: object, extra: tuple[str, ...] = ()) -> str | None:
    """None when `value` is allowed for the TrialConfig field `field`, else a one-line reason.

    `extra` adds values a command accepts beyond the field's own ("all" for the report).
    The wording is the registries' own ("unknown model 'x'; known: ...").
    """
    return unknown(field, value, (*extra, *CHOICES[field]), PATTERNS.get(field, ()))
