"""The model builder: the seed net reproduced exactly, specs checked before training."""

from __future__ import annotations

import keras
import pytest

from benchmark import choices
from benchmark.config import TrialConfig
from benchmark.errors import UserError
from benchmark.models import MODELS, build_model, plan


def test_seed_net_is_the_tutorial_net():
    cfg = TrialConfig.from_options(model="seed")
    model = build_model(cfg, (32, 32, 3), 10)
    assert model.count_params() == 122_570
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Rescaling", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D",
        "Flatten", "Dense", "Dense", "Softmax",
    ]  # fmt: skip
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 64, 64]
    assert all(c.kernel_size == (3, 3) and c.padding == "valid" for c in convs)
    assert model.layers[0].scale == pytest.approx(1 / 255)
    assert model.output_shape == (None, 10)


def test_flops_count_multiply_adds_twice():
    cfg = TrialConfig.from_options(model="seed")
    p = plan(cfg, (32, 32, 3), 10)
    # conv1 30x30x32x(3*3*3), conv2 13x13x64x(3*3*32), conv3 4x4x64x(3*3*64), dense 1024x64, 64x10
    macs = 30 * 30 * 32 * 27 + 13 * 13 * 64 * 288 + 4 * 4 * 64 * 576 + 1024 * 64 + 64 * 10
    assert p.flops == 2 * macs
    assert p.filters == (32, 64, 64)


def test_family_varies_depth_kernel_and_dense_width():
    small = TrialConfig.from_options(depth=2, kernel_size=3, dense_units=32)
    big = TrialConfig.from_options(depth=4, kernel_size=5, dense_units=256, batch_norm=True,
                                   dropout=0.3)  # fmt: skip
    m_small = build_model(small, (32, 32, 3), 100)
    m_big = build_model(big, (32, 32, 3), 100)
    assert m_small.output_shape == m_big.output_shape == (None, 100)
    assert m_big.count_params() > m_small.count_params()
    names = {type(layer).__name__ for layer in m_big.layers}
    assert {"FusedBatchNormalization", "Dropout"} <= names  # Keras' BN, fused (batchnorm.py)
    assert plan(big, (32, 32, 3), 100).filters == (32, 64, 128, 128)


def test_spec_that_cannot_fit_is_rejected_with_a_reason():
    cfg = TrialConfig.from_options(depth=4, kernel_size=5, padding="valid")
    with pytest.raises(UserError, match="does not fit 32px images"):
        plan(cfg, (32, 32, 3), 10)


def test_unknown_model_lists_known_ones():
    with pytest.raises(UserError, match="unknown model 'resnt'; known: cnn, seed, resnet"):
        TrialConfig.from_options(model="resnt")
    assert "seed" in MODELS


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("epochs", 0, "`epochs` should be a positive integer. Received: epochs=0"),
        ("batch_size", -1, "batch_size"),
        ("image_size", 0, "image_size"),
        ("optimizer", "adagrad2", "one of rmsprop, adam"),
        ("dropout", 1.5, "dropout"),
    ],
)
def test_bad_settings_echo_the_value(field, value, message):
    with pytest.raises(UserError, match=message):
        TrialConfig.from_options(**{field: value})


def test_unknown_setting_is_an_error_not_ignored():
    with pytest.raises(UserError, match="unknown setting 'kernal_size'"):
        TrialConfig.from_options(kernal_size=3)


def test_explicit_fields_override_the_preset_and_name_the_run():
    cfg = TrialConfig.from_options(model="seed", dense_units=128, augmentation="shift")
    assert (cfg.depth, cfg.kernel_size, cfg.dense_units, cfg.filters_max) == (3, 3, 128, 64)
    assert cfg.run_name == "lab-net-d3-k3-w128-aug=shift"
    lab_policy = TrialConfig.from_options(depth=3, kernel_size=5, dense_units=128,
                                          augmentation="seed")  # fmt: skip
    assert lab_policy.run_name == "d3-k5-w128-aug=lab"


def test_the_lab_net_with_the_lab_policy_never_says_seed_in_its_name():
    """`--model seed --augmentation seed` keep their CLI names; the run name reads."""
    cfg = TrialConfig.from_options(model="seed", augmentation="seed")
    assert (cfg.model, cfg.augmentation) == ("seed", "seed")  # params keep the CLI values
    assert cfg.run_name == "lab-net-d3-k3-w64-aug=lab"
    assert "lab-net" in cfg.run_name and "aug=lab" in cfg.run_name
    assert "seed" not in cfg.run_name
    gap = TrialConfig.from_options(depth=4, dense_units=0, head="gap", augmentation="strong")
    assert gap.run_name == "d4-k3-w0-gap-aug=strong"
    assert TrialConfig.from_options(depth=2, kernel_size=5).run_name == "d2-k5-w64-aug=none"


def test_display_names_keep_run_names_distinct():
    """A display name is no other value's name: distinct configurations, distinct names."""
    for field, shown in choices.DISPLAY.items():
        values = choices.CHOICES[field]
        assert set(shown) <= set(values), field
        names = [choices.display(field, v) for v in values]
        assert len(set(names)) == len(values), names
    names = {
        TrialConfig.from_options(model=m, augmentation=a).run_name
        for m in choices.MODELS
        for a in choices.AUGMENTATIONS
    }
    assert len(names) == len(choices.MODELS) * len(choices.AUGMENTATIONS)


def test_a_new_model_family_is_one_registered_builder(monkeypatch):
    """The extension point: a builder registered in FAMILIES (and its name declared in
    benchmark/choices.py) is a model the config, the planner and the trial take."""
    from benchmark import choices
    from benchmark.models import FAMILIES

    @FAMILIES.register
    def tiny(cfg, image_shape, n_classes):
        L = keras.layers
        return keras.Sequential(
            [
                keras.Input(image_shape),
                L.Rescaling(1 / 255),
                L.Conv2D(4, 3),
                L.GlobalAveragePooling2D(),
                L.Dense(n_classes),
                L.Softmax(),
            ]
        )

    monkeypatch.setitem(choices.CHOICES, "model", (*choices.MODELS, "tiny"))
    try:
        cfg = TrialConfig(model="tiny")
        model = build_model(cfg, (8, 8, 3), 5)
        assert [type(layer).__name__ for layer in model.layers][1] == "Conv2D"
        p = plan(cfg, (8, 8, 3), 5)
        assert p.params == model.count_params() == (3 * 3 * 3 * 4 + 4) + (4 * 5 + 5)
        assert p.flops == 2 * 3 * 3 * 3 * 4 * 6 * 6 + 2 * 4 * 5  # conv at 6x6, then dense
    finally:
        FAMILIES.unregister("tiny")
