"""The model families beyond the plain CNN (issue 30): the residual family, Keras' own
architectures by name, and the dtype policy each model is built under (`--precision`)."""

from __future__ import annotations

import dataclasses

import keras
import mlflow
import numpy as np
import pytest

from benchmark import metrics as M
from benchmark.augment import build_augmentation
from benchmark.config import TrialConfig
from benchmark.data import load_dataset
from benchmark.errors import UserError
from benchmark.models import build_model, plan
from benchmark.models.applications import (
    INPUT_MODES,
    architectures,
    constructor,
    input_mode,
    scaling,
)
from benchmark.models.flops import walk
from benchmark.presets import ARCH_SETTINGS, unused_settings
from benchmark.train import precision
from benchmark.train.runtime import cpu_flags
from benchmark.train.trial import compiled_model, run_trial


@pytest.fixture(scope="module")
def cifar_tiny(shared_data, session_cache):
    """The real CIFAR-10 subset cut short: 100 training images, 100 validation images and
    the first 200 test images, so that a big net's evaluation takes seconds, not minutes."""
    data = load_dataset("cifar10", data_dir=shared_data, max_train_samples=100,
                        val_fraction=0.01, cache_dir=session_cache)  # fmt: skip
    return dataclasses.replace(data, x_test=data.x_test[:200], y_test=data.y_test[:200])


def kinds(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


# --- which settings a family reads ------------------------------------------------------

# A value other than every family's default for each architecture setting.
OTHER = dict(depth=2, kernel_size=5, dense_units=32, filters_base=16, filters_max=64,
             padding="valid", batch_norm=None, dropout=0.3, head="gap", convs_per_block=2,
             block_dropout=0.2, pool_position="early", stage_widths="32-64-128",
             residual_blocks="1-1-1", stage_pools="1-1-0")  # fmt: skip


def signature(cfg: TrialConfig) -> list[tuple]:
    model = build_model(cfg, (32, 32, 3), 10)
    return [(type(x).__name__, x.output.shape, x.count_params()) for x in model.layers]


@pytest.mark.parametrize("model", ["cnn", "resnet", "keras:MobileNetV3Small"])
def test_a_family_reads_exactly_the_settings_it_declares(model):
    """The report drops a setting the family ignores from the labels that tell same-named
    configurations apart (a resnet's `depth=3, filters_max=256` was noise there): each
    declared setting must change the built model, and each other one must not."""
    base = TrialConfig.from_options(model=model)
    before = signature(base)
    assert set(OTHER) == ARCH_SETTINGS
    for name, value in OTHER.items():
        value = (not getattr(base, name)) if value is None else value
        changed = signature(base.replace(**{name: value})) != before
        assert changed == (name not in unused_settings(model)), (model, name)


# --- resnet ------------------------------------------------------------------------------


def test_resnet_defaults_are_half_width_resnet9():
    cfg = TrialConfig.from_options(model="resnet")
    assert (cfg.head, cfg.dense_units, cfg.batch_norm) == ("gmp", 0, True)  # ResNet-9's head
    assert cfg.run_name == "resnet-w32-64-128-256-r1-0-1-gmp-aug=none"
    model = build_model(cfg, (32, 32, 3), 10)
    assert model.count_params() == 1_648_362  # issue 30's half-width net: 1.65M
    k = kinds(model)
    assert k[:2] == ["InputLayer", "Rescaling"] and k[-3:] == ["GlobalMaxPooling2D", "Dense",
                                                                "Softmax"]  # fmt: skip
    assert k.count("Conv2D") == 1 + 3 + 2 * 2 and k.count("Add") == 2
    assert k.count("MaxPooling2D") == 3 and k.count("FusedBatchNormalization") == 8
    assert model.output_shape == (None, 10)
    full = cfg.replace(filters_base=64, stage_widths="128-256-512")  # ResNet-9 itself
    p = plan(full, (32, 32, 3), 10)
    assert p.params == 6_577_610 and p.feature_sizes == (32, 16, 8, 4)
    # prep 32x32x3->64, stage convs 64->128 at 32, 128->256 at 16, 256->512 at 8; the
    # residual blocks two convs each at 16 and 4; then the classifier 512->10
    macs = (
        32 * 32 * 27 * 64
        + 32 * 32 * 576 * 128
        + 2 * 16 * 16 * 1152 * 128
        + 16 * 16 * 1152 * 256
        + 8 * 8 * 2304 * 512
        + 2 * 4 * 4 * 4608 * 512
        + 512 * 10
    )
    assert p.flops == 2 * macs


def test_resnet_settings_reach_the_model():
    cfg = TrialConfig.from_options(
        model="resnet", filters_base=16, stage_widths="16-32", residual_blocks="2-1",
        stage_pools="0-1", head="gap", dense_units=32, dropout=0.1, block_dropout=0.2,
    )  # fmt: skip
    model = build_model(cfg, (32, 32, 3), 5)
    k = kinds(model)
    assert k.count("Add") == 3 and k.count("MaxPooling2D") == 1 and k.count("Dropout") == 3
    assert "GlobalAveragePooling2D" in k and model.output_shape == (None, 5)
    assert plan(cfg, (32, 32, 3), 5).params == model.count_params()
    assert cfg.run_name == "resnet-w16-16-32-r2-1-p0-1-d32-gap-aug=none"


def test_resnet_that_cannot_fit_or_disagrees_with_itself_says_why():
    cfg = TrialConfig.from_options(model="resnet", stage_widths="8-8-8-8",
                                   residual_blocks="0-0-0-0", stage_pools="1-1-1-1")  # fmt: skip
    with pytest.raises(UserError, match="does not fit 8px images: the pool of stage 4"):
        plan(cfg, (8, 8, 3), 10)
    with pytest.raises(
        UserError,
        match=r"`residual_blocks` should give one number for each of "
        r"the 3 stages .* Received: residual_blocks='1-0'",
    ):
        TrialConfig.from_options(model="resnet", residual_blocks="1-0")
    with pytest.raises(UserError, match="`stage_widths` should be positive integers joined by"):
        TrialConfig(stage_widths="64,128")
    with pytest.raises(UserError, match="`stage_pools` should be 0s and 1s"):
        TrialConfig(stage_pools="2-1-1")


def test_a_logged_resnet_config_reads_back_even_with_one_stage():
    cfg = TrialConfig.from_options(model="resnet", stage_widths="128", residual_blocks="2",
                                   stage_pools="1", precision="mixed_bfloat16")  # fmt: skip
    params = {k: str(v) for k, v in cfg.to_params().items()}  # MLflow gives strings back
    assert TrialConfig.from_params(params) == cfg


def test_gmp_head_for_the_plain_cnn_is_planned_like_gap():
    cfg = TrialConfig.from_options(head="gmp", depth=3)
    model = build_model(cfg, (32, 32, 3), 10)
    assert "GlobalMaxPooling2D" in kinds(model) and cfg.run_name == "d3-k3-w64-gmp-aug=none"
    assert plan(cfg, (32, 32, 3), 10).params == model.count_params()
    assert plan(cfg, (32, 32, 3), 10) == plan(cfg.replace(head="gap"), (32, 32, 3), 10)


# --- keras:NAME --------------------------------------------------------------------------


def test_every_keras_application_has_a_known_input_scaling():
    names = architectures()
    assert {"ResNet50V2", "MobileNetV3Small", "EfficientNetV2B0", "VGG16"} <= set(names)
    modes = {input_mode(constructor(n)) for n in names}  # raises for an unknown module
    assert modes == set(INPUT_MODES.values())


@pytest.mark.parametrize("module,mode", [("resnet_v2", "tf"), ("densenet", "torch"),
                                         ("vgg16", "caffe")])  # fmt: skip
def test_input_scaling_is_the_modules_own_preprocess_input(module, mode):
    """What the model's first layers do to [0, 255] pixels is what the family's
    preprocess_input does (caffe also reverses the channels: RGB -> BGR)."""
    assert INPUT_MODES[module] == mode
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    ours = x
    for layer in scaling(mode):
        ours = layer(ours)
    theirs = getattr(keras.applications, module).preprocess_input(x.copy())
    theirs = theirs[..., ::-1] if mode == "caffe" else theirs
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), theirs, rtol=1e-5, atol=1e-4)


def test_a_keras_application_is_one_flat_model_from_scratch():
    cfg = TrialConfig.from_options(model="keras:MobileNetV3Small")
    model = build_model(cfg, (32, 32, 3), 7)
    assert model.output_shape == (None, 7) and cfg.run_name == "keras-MobileNetV3Small-aug=none"
    assert kinds(model)[-1] == "Softmax" and model.layers[-1].dtype_policy.name == "float32"
    assert kinds(model)[1] == "Rescaling"  # the family's own: include_preprocessing
    p = plan(cfg, (32, 32, 3), 7)
    assert p.params == model.count_params() and p.flops > 1_000_000
    assert not any(isinstance(layer, keras.Model) for layer in model.layers[1:])


@pytest.mark.parametrize("name", ["MobileNetV3Small", "MobileNetV2", "EfficientNetV2B0"])
def test_a_keras_applications_batch_norm_keeps_at_most_0_9_of_its_statistics_a_step(name):
    """MobileNetV3Small's own 0.999 left it at chance in inference mode on 17 Flowers (train
    accuracy 0.73, its training images scored 1/17 in inference), and so did 0.99: capped at
    0.9, EfficientNetV2's own."""
    from keras import layers

    model = build_model(TrialConfig.from_options(model=f"keras:{name}"), (32, 32, 3), 7)
    norms = [lay for lay in model.layers if isinstance(lay, layers.BatchNormalization)]
    assert {lay.momentum for lay in norms} == {0.9}
    # and each is the fused kernel (bf16's speed), the net otherwise Keras' own
    assert norms and {type(lay).__name__ for lay in norms} == {"FusedBatchNormalization"}


@pytest.mark.parametrize(
    "name,message",
    [
        ("ResNet50v2", "unknown keras.applications architecture 'ResNet50v2' (model "
                       "keras:ResNet50v2); did you mean 'ResNet50V2'"),
        ("Xception", "model keras:Xception cannot take 32x32 images: Input size must be at "
                     "least 71x71"),
    ],
)  # fmt: skip
def test_a_bad_keras_name_or_a_too_small_input_is_one_line_exit_2(
    name, message, shared_data, capsys, tmp_path
):
    from benchmark.cli import main

    code = main(["train", "--dataset", "cifar10", "--data-dir", str(shared_data),
                 "--max-train-samples", "100", "--model", f"keras:{name}"])  # fmt: skip
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert len(lines) == 1 and message in lines[0], err[-3000:]
    assert not list(tmp_path.glob("mlruns"))  # no run was made


# --- precision ---------------------------------------------------------------------------

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""


def test_auto_precision_follows_the_hardware():
    assert cpu_flags(CPUINFO) == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16", "avx512_vnni"}
    assert cpu_flags("processor : 0\n") == frozenset()
    auto = precision.auto_precision
    assert auto(None, cpu_flags(CPUINFO)) == "mixed_bfloat16"  # AVX-512 BF16
    assert auto(None, frozenset({"avx2", "amx_bf16", "amx_tile"})) == "mixed_bfloat16"  # AMX
    assert auto(None, frozenset({"avx2", "avx512f"})) == "float32"  # AVX-512 without BF16
    assert auto(True, frozenset({"avx2"})) == "mixed_float16"  # tensor cores, as before
    assert auto(False, cpu_flags(CPUINFO)) == "float32"  # an old GPU trains: not the CPU's


def test_resolve_reads_this_machine_only_for_auto(monkeypatch):
    monkeypatch.setattr(precision, "on_gpu", lambda: False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: cpu_flags(CPUINFO))
    assert precision.resolve_precision("auto") == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    assert precision.resolve_precision("auto") == "float32"
    assert precision.resolve_precision("mixed_float16") == "mixed_float16"
    with pytest.raises(UserError, match="`precision` should be one of auto, float32"):
        TrialConfig(precision="bf16")


def _dtypes(model: keras.Model) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for layer in walk(model):
        out.setdefault(type(layer).__name__, set()).add(layer.compute_dtype)
    return out


@pytest.mark.parametrize("model", ["cnn", "resnet", "keras:MobileNetV3Small"])
def test_bf16_leaves_the_augmentation_and_the_softmax_in_float32(model):
    cfg = TrialConfig.from_options(model=model, precision="mixed_bfloat16", batch_norm=True)
    net = compiled_model(cfg, (32, 32, 3), 10)
    augment = build_augmentation("strong", seed=0)  # made after the model, as a trial does
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing left behind
    dtypes = _dtypes(net)
    assert dtypes["Conv2D"] == {"bfloat16"} and dtypes["Softmax"] == {"float32"}
    assert net.layers[-1].dtype_policy.name == "float32"
    assert {layer.compute_dtype for layer in walk(augment)} == {"float32"}
    probs = net.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_mixed_float16_with_augmentation_in_the_step_scales_the_loss():
    """The GPU path: the wrapper that augments inside the step takes the model's policy, so
    Keras wraps the optimizer in a LossScaleOptimizer; the augmentation stays float32."""
    cfg = TrialConfig.from_options(model="resnet", precision="mixed_float16")
    augment = build_augmentation("shift_flip", seed=0)
    net = compiled_model(cfg, (32, 32, 3), 10, augment_in_step=augment)
    assert isinstance(net.optimizer, keras.optimizers.LossScaleOptimizer)
    assert net.inner.layers[-1].compute_dtype == "float32"
    assert _dtypes(net.inner)["Conv2D"] == {"float16"}
    assert {layer.compute_dtype for layer in walk(augment)} == {"float32"}


# --- one epoch each on the real data -----------------------------------------------------


def _train_one_epoch(cfg: TrialConfig, data, **kwargs) -> tuple[dict, dict]:
    result = run_trial(cfg, data, verbose=0, **kwargs)
    run = mlflow.get_run(result.run_id)
    p = plan(cfg.replace(image_size=32), data.image_shape, data.n_classes)
    assert run.data.metrics[M.FLOPS] == p.flops and run.data.metrics[M.PARAM_COUNT] == p.params
    assert 0.0 <= run.data.metrics[M.TEST_ACCURACY] <= 1.0
    assert run.data.params["precision"] == cfg.precision
    assert run.data.tags["mlflow.runName"] == cfg.run_name
    return run.data.params, run.data.metrics


def test_resnet_trains_one_epoch_in_bf16_and_logs_it(cifar_tiny):
    cfg = TrialConfig.from_options(model="resnet", epochs=1, filters_base=8,
                                   stage_widths="8-16-32", precision="mixed_bfloat16",
                                   steps_per_execution=2)  # fmt: skip
    params, _ = _train_one_epoch(cfg, cifar_tiny, log_models="none")
    assert params[M.PRECISION_RESOLVED] == "mixed_bfloat16"
    assert params["stage_widths"] == "8-16-32" and params["residual_blocks"] == "1-0-1"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MobileNetV3Small", "EfficientNetV2B0", "ResNet50V2"])
def test_keras_applications_train_one_epoch_and_log_it(name, cifar_tiny):
    cfg = TrialConfig.from_options(model=f"keras:{name}", epochs=1, steps_per_execution=2)
    log_models = "all" if name == "MobileNetV3Small" else "none"  # one logged model: it loads
    params, _ = _train_one_epoch(cfg, cifar_tiny, log_models=log_models)
    assert params["model"] == f"keras:{name}" and params["precision"] == "auto"
    assert params[M.PRECISION_RESOLVED] == precision.resolve_precision("auto")


def test_a_space_may_search_across_families(tmp_path):
    from benchmark.search.space import load_space

    good = tmp_path / "families.yaml"
    good.write_text("strategy: grid\nspace: {model: {values: [cnn, resnet, "
                    "'keras:MobileNetV3Small']}}\nfixed: {dataset: cifar10}\n")  # fmt: skip
    assert len(load_space(str(good)).grid_points()) == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: grid\nspace: {model: {values: [resnet, 'keras:MobileNetV3Smal']}}\n")
    with pytest.raises(UserError, match="did you mean 'MobileNetV3Small'"):
        load_space(str(bad))
