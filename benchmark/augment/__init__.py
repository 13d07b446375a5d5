"""The augmentation stage: a policy name -> Keras preprocessing layers for whole batches.

    policies.py  the registered policies (`@POLICIES.register`), their builder and preview
    layers.py    the custom layers the lab's policies need (seeded saturation, grayscale)

May import: benchmark.errors, benchmark.registry (nothing of the later stages).
"""

from __future__ import annotations

from benchmark.augment.policies import (
    LABEL_MIXERS,
    POLICIES,
    VALUE_RANGE,
    WITH_SHIFT_GRAYSCALE,
    build_augmentation,
    mixes_labels,
    policy_names,
    save_augmentation_preview,
    with_shift_grayscale,
)

__all__ = [
    "LABEL_MIXERS",
    "POLICIES",
    "VALUE_RANGE",
    "WITH_SHIFT_GRAYSCALE",
    "build_augmentation",
    "mixes_labels",
    "policy_names",
    "save_augmentation_preview",
    "with_shift_grayscale",
]
