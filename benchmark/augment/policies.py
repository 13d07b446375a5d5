"""Augmentation policies: registered functions that return Keras preprocessing layers.

A policy acts on float32 NHWC batches with values in [0, 255] and returns the same
shape and range; the pipeline maps it over batches after `.batch()` (before the
model's Rescaling(1/255)) as `aug(x, training=True)`. At inference every layer is
the identity. Policies 1 and 2 are the seed lab's; shift and grayscale are the lab's
task 2; crop, shift_flip(_cutout), mixup, cutmix, randaugment and strong are the modern
recipes' policies.
Policies with MixUp or CutMix also mix the labels: the pipeline then hands them
`{"images": x, "labels": one_hot}` and the loss takes soft targets (see `mixes_labels`).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from benchmark.augment.layers import RandomSaturationFactor, SeededRandomGrayscale
from benchmark.choices import WITH_SHIFT_GRAYSCALE
from benchmark.errors import UserError
from benchmark.registry import Registry

POLICIES = Registry("augmentation")

VALUE_RANGE = (0, 255)  # pixel values the layers see: uint8 batches cast to float32
CUTOUT_FILL = 127.5  # mid-grey: the mean pixel that a zero fill is after normalisation


def _layer_seeds(seed: int | None, n: int) -> list[int | None]:
    """n distinct seeds derived from `seed` (None stays None: a random seed per layer)."""
    if seed is None:
        return [None] * n
    state = np.random.SeedSequence(seed).generate_state(n)
    return [int(s) & 0x7FFFFFFF for s in state]  # Python ints below 2**31 for SeedGenerator


def _compose(seed: int | None, *parts) -> list[keras.layers.Layer]:
    """The parts' layers in order, each part given its own seed derived from `seed`."""
    seeds = _layer_seeds(None if seed is None else seed + 1, len(parts))
    return [layer for part, s in zip(parts, seeds, strict=True) for layer in part(s)]


# --- policies ----------------------------------------------------------------------


@POLICIES.register
def none(seed: int | None = None) -> list[keras.layers.Layer]:
    """No augmentation: build_augmentation returns None."""
    return []


@POLICIES.register(name="seed")
def seed_lab(seed: int | None = None) -> list[keras.layers.Layer]:
    """The seed lab's policy 1: horizontal flip, rotation ±18°, contrast in [0.8, 1.2]."""
    flip, rotation, contrast = _layer_seeds(seed, 3)
    return [
        keras.layers.RandomFlip("horizontal", seed=flip),
        keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=rotation),  # ±0.05 turn = ±18°
        # (0.2, 0.2), not 0.2: Keras 3 reads a single float as [1.0, 1.2] (lower bound 0)
        keras.layers.RandomContrast((0.2, 0.2), value_range=VALUE_RANGE, seed=contrast),
    ]


@POLICIES.register
def saturation(seed: int | None = None) -> list[keras.layers.Layer]:
    """The seed lab's policy 2: saturation times a factor uniform in [0.5, 2.0]."""
    (s,) = _layer_seeds(seed, 1)
    return [RandomSaturationFactor((0.5, 2.0), value_range=VALUE_RANGE, seed=s)]


@POLICIES.register
def shift(seed: int | None = None) -> list[keras.layers.Layer]:
    """Lab task 2: shift up to 10% vertically and horizontally, filled by reflection."""
    (s,) = _layer_seeds(seed, 1)
    return [keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=s)]


@POLICIES.register
def grayscale(seed: int | None = None) -> list[keras.layers.Layer]:
    """Lab task 2: each image to grayscale with probability 0.5, 3 channels kept."""
    (s,) = _layer_seeds(seed, 1)
    return [SeededRandomGrayscale(0.5, seed=s)]


@POLICIES.register
def shift_grayscale(seed: int | None = None) -> list[keras.layers.Layer]:
    """Shift, then grayscale."""
    return _compose(seed, shift, grayscale)


@POLICIES.register
def seed_shift_grayscale(seed: int | None = None) -> list[keras.layers.Layer]:
    """Lab task 2 on top of the lab's policy 1: flip, rotation, contrast, then shift and
    grayscale (what `lab` trains when task 1's best used the lab's policy)."""
    return _compose(seed, seed_lab, shift, grayscale)


def with_shift_grayscale(policy: str) -> str:
    """The policy `policy` with shift + grayscale added (lab task 2); UserError when no such
    policy is registered."""
    if policy not in WITH_SHIFT_GRAYSCALE:
        known = ", ".join(WITH_SHIFT_GRAYSCALE)
        raise UserError(f"no policy adds shift_grayscale to {policy!r}; task 2 knows {known}")
    return WITH_SHIFT_GRAYSCALE[policy]


@POLICIES.register(name="all")
def all_policies(seed: int | None = None) -> list[keras.layers.Layer]:
    """Every augmentation above: flip, rotation, contrast, saturation, shift, grayscale."""
    return _compose(seed, seed_lab, saturation, shift, grayscale)


@POLICIES.register
def crop(seed: int | None = None) -> list[keras.layers.Layer]:
    """Random resized crop, Keras-style: flip, zoom in up to 30% and shift up to 10%
    (reflect-filled), so each epoch sees another crop of each image at full size."""
    flip, zoom, move = _layer_seeds(seed, 3)
    return [
        keras.layers.RandomFlip("horizontal", seed=flip),
        keras.layers.RandomZoom((-0.3, 0.0), fill_mode="reflect", seed=zoom),  # < 0: zoom in
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=move),
    ]


@POLICIES.register
def shift_flip(seed: int | None = None) -> list[keras.layers.Layer]:
    """Flip and shift up to 12.5% (4 px of 32), reflect-filled: CIFAR's usual pad-and-crop."""
    flip, move = _layer_seeds(seed, 2)
    return [
        keras.layers.RandomFlip("horizontal", seed=flip),
        keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=move),
    ]


@POLICIES.register
def shift_flip_cutout(seed: int | None = None) -> list[keras.layers.Layer]:
    """shift_flip, then Cutout (DeVries & Taylor 2017) via Keras' RandomErasing: on every
    image a grey box 1/4 to 1/2 of each side (8-16 px at 32 px), so the net cannot lean on
    one part of the object. The regulariser small CIFAR training sets need most."""
    (erase,) = _layer_seeds(None if seed is None else seed + 11, 1)
    return [
        *shift_flip(seed),
        # factor (1, 1): always erase (a single float would draw p in [0, f]); scale is the
        # range of each side's squared fraction: sqrt(U(1/16, 1/4)) = 1/4..1/2 of the side
        keras.layers.RandomErasing(
            factor=(1.0, 1.0), scale=(1 / 16, 1 / 4), fill_value=CUTOUT_FILL,
            value_range=VALUE_RANGE, seed=erase,
        ),
    ]  # fmt: skip


@POLICIES.register
def mixup(seed: int | None = None) -> list[keras.layers.Layer]:
    """Horizontal flip, then MixUp (alpha 0.2): pairs of images and their labels blended."""
    flip, mix = _layer_seeds(seed, 2)
    return [
        keras.layers.RandomFlip("horizontal", seed=flip),
        keras.layers.MixUp(alpha=0.2, seed=mix),
    ]


@POLICIES.register
def cutmix(seed: int | None = None) -> list[keras.layers.Layer]:
    """Horizontal flip, then CutMix: a box of another image pasted in, labels by area."""
    flip, mix = _layer_seeds(seed, 2)
    return [
        keras.layers.RandomFlip("horizontal", seed=flip),
        keras.layers.CutMix(factor=1.0, seed=mix),
    ]


@POLICIES.register
def randaugment(seed: int | None = None) -> list[keras.layers.Layer]:
    """Horizontal flip, then Keras' RandAugment: 2 random ops a batch at magnitude 0.5."""
    flip, ops = _layer_seeds(seed, 2)
    return [
        keras.layers.RandomFlip("horizontal", seed=flip),
        keras.layers.RandAugment(value_range=VALUE_RANGE, num_ops=2, factor=0.5, seed=ops),
    ]


@POLICIES.register
def crop_cutmix(seed: int | None = None) -> list[keras.layers.Layer]:
    """crop (flip, zoom, shift), then CutMix: the geometric policy plus label mixing."""
    (mix,) = _layer_seeds(None if seed is None else seed + 7, 1)
    return [*crop(seed), keras.layers.CutMix(factor=1.0, seed=mix)]


def _jitter(seed: int | None = None) -> list[keras.layers.Layer]:
    """Colour jitter: brightness and contrast ±20%, saturation x [0.6, 1.4]."""
    colour, sat = _layer_seeds(seed, 2)
    return [
        keras.layers.RandomColorJitter(
            value_range=VALUE_RANGE, brightness_factor=0.2, contrast_factor=0.2, seed=colour
        ),
        RandomSaturationFactor((0.6, 1.4), value_range=VALUE_RANGE, seed=sat),
    ]


@POLICIES.register
def strong(seed: int | None = None) -> list[keras.layers.Layer]:
    """crop (flip, zoom, shift), then colour jitter."""
    return _compose(seed, crop, _jitter)


# --- public API --------------------------------------------------------------------


def policy_names() -> list[str]:
    return POLICIES.names()


LABEL_MIXERS = (keras.layers.MixUp, keras.layers.CutMix)


def mixes_labels(augment: keras.Sequential | None) -> bool:
    """True when the policy blends images across a batch, so labels must be soft too."""
    return augment is not None and any(isinstance(x, LABEL_MIXERS) for x in augment.layers)


def build_augmentation(name: str, seed: int | None = None) -> keras.Sequential | None:
    """The policy's layers in a Sequential, each with its own seed derived from `seed`.

    None for "none"; an unknown name raises UserError listing the known policies.
    """
    policy = POLICIES.get(name)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise UserError(f"augmentation seed should be a non-negative integer; got {seed!r}")
    layers = policy(seed)
    if not layers:
        return None
    return keras.Sequential(layers, name=f"augment_{name}")


def save_augmentation_preview(
    images: np.ndarray, policy: str, path: str | Path, n: int = 5, seed: int = 0
) -> Path:
    """A PNG grid: n original uint8 NHWC images above the same images augmented.

    Like the seed lab's show_augmentation; drawn on a pyplot-free Figure with the Agg
    canvas, so no global backend is set and no figure is left open.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise UserError(f"expected uint8 NHWC images; got shape {images.shape}")
    if not 1 <= n <= len(images):
        raise UserError(f"n should be between 1 and {len(images)} (the images given); got {n}")
    originals = images[:n]
    aug = build_augmentation(policy, seed=seed)
    if aug is None:
        augmented = originals
    else:
        batch = originals.astype("float32")
        if mixes_labels(aug):  # label mixers want the labels too; the preview only shows images
            labels = np.eye(len(batch), dtype="float32")
            batch = aug({"images": batch, "labels": labels}, training=True)["images"]
        else:
            batch = aug(batch, training=True)
        out = keras.ops.convert_to_numpy(batch)
        augmented = np.clip(np.rint(out), 0, 255).astype("uint8")

    fig = Figure(figsize=(2 * n, 4.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, n, squeeze=False)
    for row, (label, batch) in enumerate((("original", originals), ("augmented", augmented))):
        for col in range(n):
            ax = axes[row][col]
            ax.imshow(batch[col].squeeze(), cmap="gray" if batch.shape[-1] == 1 else None)
            ax.set_axis_off()
            if col == 0:
                ax.set_title(label, loc="left", fontsize=9)
    fig.suptitle(f"augmentation policy: {policy}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
