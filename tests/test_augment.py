"""Augmentation policies and custom layers: shapes, ranges, randomness, round trips."""

from __future__ import annotations

import inspect
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmark.augment import build_augmentation, policy_names, save_augmentation_preview
from benchmark.augment import layers as custom_layers
from benchmark.augment.layers import RandomSaturationFactor, SeededRandomGrayscale
from benchmark.augment.policies import seed_lab
from benchmark.errors import UserError

ACTIVE = [name for name in policy_names() if name != "none"]


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    """16 random colourful images, uint8 values cast to float32 as the pipeline does."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8).astype("float32")


def _hsv(images: np.ndarray) -> np.ndarray:
    return tf.image.rgb_to_hsv(np.asarray(images, dtype="float32") / 255.0).numpy()


def test_policy_names():
    assert policy_names() == [
        "none",
        "seed",
        "saturation",
        "shift",
        "grayscale",
        "shift_grayscale",
        "seed_shift_grayscale",
        "all",
        "crop",
        "shift_flip",
        "shift_flip_cutout",
        "mixup",
        "cutmix",
        "randaugment",
        "crop_cutmix",
        "strong",
    ]


def test_none_builds_nothing():
    assert build_augmentation("none", seed=1) is None


@pytest.mark.parametrize("name", ACTIVE)
def test_policy_shape_range_identity_and_change(name, batch):
    aug = build_augmentation(name, seed=1)
    assert isinstance(aug, keras.Sequential)

    out = keras.ops.convert_to_numpy(aug(batch, training=True))
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    assert not np.allclose(out, batch)  # training changes the batch

    still = keras.ops.convert_to_numpy(aug(batch, training=False))
    np.testing.assert_array_equal(still, batch)  # inference: exactly the input


@pytest.mark.parametrize("name", ACTIVE)
def test_policy_in_tf_data_map(name, batch):
    aug = build_augmentation(name, seed=2)
    ds = (
        tf.data.Dataset.from_tensor_slices(batch)
        .batch(8)
        .map(lambda x: aug(x, training=True), num_parallel_calls=tf.data.AUTOTUNE)
    )
    assert ds.element_spec.shape.as_list() == [None, 32, 32, 3]  # unknown batch size
    out = np.concatenate([b.numpy() for b in ds])
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    assert not np.allclose(out, batch)
    second_epoch = np.concatenate([b.numpy() for b in ds])
    assert not np.array_equal(out, second_epoch)  # the seed generator advances per batch


@pytest.mark.parametrize("name", ACTIVE)
def test_same_seed_same_batch_other_seed_other_batch(name, batch):
    def run(seed):
        return keras.ops.convert_to_numpy(build_augmentation(name, seed=seed)(batch, training=True))

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_layers_get_distinct_seeds():
    aug = build_augmentation("all", seed=0)
    seeds = [layer.seed for layer in aug.layers]
    assert len(aug.layers) == 6 and len(set(seeds)) == 6
    assert [layer.seed for layer in build_augmentation("all").layers] == [None] * 6


def test_unknown_policy_lists_known_names():
    with pytest.raises(UserError, match="unknown augmentation 'bogus'; known: none, seed, "):
        build_augmentation("bogus")


@pytest.mark.parametrize("seed", [-1, 1.5, "3"])
def test_bad_seed(seed):
    with pytest.raises(UserError, match="non-negative integer"):
        build_augmentation("seed", seed=seed)


# --- what each policy does ----------------------------------------------------------


def test_grayscale_about_half_per_image_three_channels():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(2000, 8, 8, 3)).astype("float32")  # colourful
    layer = SeededRandomGrayscale(0.5, seed=5)
    out = keras.ops.convert_to_numpy(layer(images, training=True))  # one batch of 2000

    assert out.shape == images.shape  # 3 channels kept
    gray = np.all(out == out[..., :1], axis=(1, 2, 3))
    assert 0.4 <= gray.mean() <= 0.6  # per image: a per-batch draw would give 0 or 1
    luminance = images @ np.array([0.2989, 0.5870, 0.1140], dtype="float32")
    np.testing.assert_allclose(out[gray][..., 0], luminance[gray], atol=1e-3)
    np.testing.assert_array_equal(out[~gray], images[~gray])  # the others untouched


def _hsv_images(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """n 4x4 images with random hue, saturation <= 0.45 (so x2 is not clipped), bright."""
    hsv = np.stack(
        [
            rng.uniform(0, 1, (n, 4, 4)),
            rng.uniform(0.2, 0.45, (n, 4, 4)),
            rng.uniform(0.6, 1.0, (n, 4, 4)),
        ],
        axis=-1,
    ).astype("float32")
    return tf.image.hsv_to_rgb(hsv).numpy() * 255.0, hsv


def test_saturation_multiplier_uniform_in_half_to_two():
    images, hsv = _hsv_images(4000, np.random.default_rng(2))
    layer = RandomSaturationFactor((0.5, 2.0), seed=7)
    out = _hsv(keras.ops.convert_to_numpy(layer(images, training=True)))

    ratio = out[..., 1] / hsv[..., 1]  # no pixel clipped: saturation <= 0.9 after
    per_image = ratio.mean(axis=(1, 2))
    assert np.abs(ratio - per_image[:, None, None]).max() < 1e-2  # one factor per image
    assert per_image.min() >= 0.5 - 1e-2 and per_image.max() <= 2.0 + 1e-2
    assert per_image.min() < 0.55 and per_image.max() > 1.95
    assert abs(per_image.mean() - 1.25) < 0.03  # Keras' f/(1-f) mapping gives ~1.08
    thirds = np.histogram(per_image, bins=[0.5, 1.0, 1.5, 2.0])[0] / len(per_image)
    np.testing.assert_allclose(thirds, 1 / 3, atol=0.04)  # f/(1-f) gives 0.50/0.23/0.27
    np.testing.assert_allclose(out[..., 2], hsv[..., 2], atol=1e-3)  # value unchanged


def test_saturation_clips_saturated_pixels_in_range():
    # Fully saturated colours times 2: Keras' RandomSaturation returns negative values here
    pure = np.array([[255, 0, 0], [0, 200, 0], [0, 20, 250], [255, 255, 0]], "float32")
    images = np.broadcast_to(pure[:, None, None, :], (4, 2, 2, 3)).copy()
    out = keras.ops.convert_to_numpy(RandomSaturationFactor((2.0, 2.0), seed=0)(images))
    assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_allclose(out, images, atol=1e-3)  # already at saturation 1


def test_seed_policy_flips_some_images(batch):
    flip, _, _ = seed_lab(seed=0)
    out = keras.ops.convert_to_numpy(flip(batch, training=True))
    flipped = np.all(out == batch[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(out == batch, axis=(1, 2, 3))
    assert flipped.any() and kept.any() and np.all(flipped | kept)


def test_seed_policy_contrast_in_0_8_to_1_2():
    images = np.random.default_rng(3).uniform(60, 190, (1000, 8, 8, 3)).astype("float32")
    _, _, contrast = seed_lab(seed=0)
    out = keras.ops.convert_to_numpy(contrast(images, training=True))
    centred_in = images - images.mean(axis=(1, 2), keepdims=True)
    centred_out = out - out.mean(axis=(1, 2), keepdims=True)
    factor = (centred_in * centred_out).sum(axis=(1, 2, 3)) / (centred_in**2).sum(axis=(1, 2, 3))
    assert factor.min() >= 0.8 - 1e-3 and factor.max() <= 1.2 + 1e-3
    assert factor.min() < 0.85 and factor.max() > 1.15  # both ways, not only [1.0, 1.2]


# --- serialization ------------------------------------------------------------------

# Every custom layer with non-default arguments, and an input in its value range.
CUSTOM_CASES = {
    RandomSaturationFactor: (
        dict(factor=(0.7, 1.6), value_range=(0.0, 1.0), seed=11, name="sat"),
        1 / 255,
    ),
    SeededRandomGrayscale: (dict(factor=0.3, data_format="channels_last", seed=12), 1.0),
}


def test_every_custom_layer_has_a_round_trip_case():
    defined = {
        obj
        for _, obj in inspect.getmembers(custom_layers, inspect.isclass)
        if issubclass(obj, keras.layers.Layer) and obj.__module__ == custom_layers.__name__
    }
    assert defined == set(CUSTOM_CASES)


@pytest.mark.parametrize("cls", list(CUSTOM_CASES), ids=lambda c: c.__name__)
def test_custom_layer_config_round_trip(cls, batch):
    kwargs, scale = CUSTOM_CASES[cls]
    layer = cls(**kwargs)
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value, key
    clone = cls.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config

    images = batch * scale
    out = keras.ops.convert_to_numpy(layer(images, training=True))
    np.testing.assert_array_equal(out, keras.ops.convert_to_numpy(clone(images, training=True)))
    assert not np.array_equal(out, images)


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (RandomSaturationFactor, dict(factor=1.5), r"Received: factor=1\.5"),
        (RandomSaturationFactor, dict(factor=(2.0, 0.5)), r"Received: factor=\(2\.0, 0\.5\)"),
        (RandomSaturationFactor, dict(value_range=(255, 0)), r"Received: value_range=\(255, 0\)"),
        (SeededRandomGrayscale, dict(factor=1.5), r"Received: factor=1\.5"),
    ],
)
def test_custom_layer_rejects_bad_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_sequential_serialize_round_trip(batch):
    aug = build_augmentation("all", seed=5)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(aug)))
    clone = keras.saving.deserialize_keras_object(config)

    assert [type(layer) for layer in clone.layers] == [type(layer) for layer in aug.layers]
    assert [layer.seed for layer in clone.layers] == [layer.seed for layer in aug.layers]

    def configs(model):  # through JSON: built-in layers keep tuples as given (list after load)
        return json.loads(json.dumps([layer.get_config() for layer in model.layers]))

    assert configs(clone) == configs(aug)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(aug(batch, training=True)),
        keras.ops.convert_to_numpy(clone(batch, training=True)),
    )


# --- preview ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["all", "none"])
def test_save_augmentation_preview(name, batch, tmp_path):
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    path = save_augmentation_preview(batch.astype("uint8"), name, tmp_path / "sub" / "p.png")
    assert path == tmp_path / "sub" / "p.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert plt.get_fignums() == open_before  # no figure left open


def test_preview_rejects_bad_input(batch, tmp_path):
    with pytest.raises(UserError, match="n should be between 1 and 16"):
        save_augmentation_preview(batch.astype("uint8"), "seed", tmp_path / "p.png", n=17)
    with pytest.raises(UserError, match="unknown augmentation"):
        save_augmentation_preview(batch.astype("uint8"), "bogus", tmp_path / "p.png")


def test_cutout_erases_one_grey_box_of_8_to_16_px_on_every_image():
    """shift_flip_cutout: every training image gets one mid-grey rectangle, 8-16 px a side."""
    flat = np.full((8, 32, 32, 3), 10.0, dtype="float32")  # shift/flip leave a flat image flat
    out = keras.ops.convert_to_numpy(build_augmentation("shift_flip_cutout", seed=3)(flat))
    for image in out:
        grey = np.all(image == 127.5, axis=-1)
        rows, cols = np.flatnonzero(grey.any(axis=1)), np.flatnonzero(grey.any(axis=0))
        assert grey.sum() == len(rows) * len(cols)  # one solid rectangle
        assert 7 <= len(rows) <= 16 and 7 <= len(cols) <= 16
    still = build_augmentation("shift_flip_cutout", seed=3)(flat, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(still), flat)
