"""The training-recipe fields reach the model and the fit: head, convs per block, block
dropout, SGD/weight decay, schedules, label smoothing, label-mixing policies, early
stopping and flip TTA."""

from __future__ import annotations

import math

import keras
import mlflow
import numpy as np
import pytest

from benchmark import metrics as M
from benchmark.augment import build_augmentation, mixes_labels, policy_names
from benchmark.config import TrialConfig
from benchmark.data import load_dataset
from benchmark.errors import UserError
from benchmark.models import build_model, plan
from benchmark.train.pipeline import train_dataset
from benchmark.train.precision import resolve_precision
from benchmark.train.schedules import EpochSchedule, lr_at
from benchmark.train.trial import compiled_model, flip_tta_accuracy, make_optimizer, run_trial


@pytest.fixture(scope="module")
def cifar_small(shared_data, session_cache):
    return load_dataset("cifar10", data_dir=shared_data, max_train_samples=200,
                        cache_dir=session_cache)  # fmt: skip


# --- architecture ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"model": "seed"},
        {"head": "gap"},
        {"head": "gap", "batch_norm": True, "convs_per_block": 2, "dense_units": 0},
        {"convs_per_block": 2, "padding": "valid", "depth": 2, "block_dropout": 0.2},
        {"convs_per_block": 2, "pool_position": "early", "filters_base": 64, "head": "gap"},
    ],
)
def test_the_planner_counts_the_parameters_keras_builds(options):
    cfg = TrialConfig.from_options(**options)
    assert plan(cfg, (32, 32, 3), 10).params == build_model(cfg, (32, 32, 3), 10).count_params()


def test_gap_head_shrinks_the_classifier_as_planned():
    flat = TrialConfig.from_options(depth=3, dense_units=64)
    gap = flat.replace(head="gap")
    # flatten: 8x8x128 features into Dense(64); gap: 128 features
    assert (
        plan(flat, (32, 32, 3), 10).params - plan(gap, (32, 32, 3), 10).params
        == (8 * 8 * 128 - 128) * 64
    )
    assert any(isinstance(x, keras.layers.GlobalAveragePooling2D)
               for x in build_model(gap, (32, 32, 3), 10).layers)  # fmt: skip


def test_two_convs_per_block_and_block_dropout_are_in_the_model():
    cfg = TrialConfig.from_options(depth=3, convs_per_block=2, block_dropout=0.25)
    model = build_model(cfg, (32, 32, 3), 10)
    convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D)]
    drops = [x for x in model.layers if isinstance(x, keras.layers.Dropout)]
    assert len(convs) == 6 and [c.filters for c in convs] == [32, 32, 64, 64, 128, 128]
    assert len(drops) == 3 and all(d.rate == 0.25 for d in drops)
    assert cfg.run_name == "d3-k3-w64-c2-aug=none"
    assert plan(cfg, (32, 32, 3), 10).flops > plan(cfg.replace(convs_per_block=1), (32, 32, 3),
                                                    10).flops  # fmt: skip


def test_early_pools_halve_the_map_after_each_blocks_first_conv():
    cfg = TrialConfig.from_options(
        depth=3, convs_per_block=2, pool_position="early", filters_base=64, filters_max=256,
        head="gap", dense_units=0,
    )  # fmt: skip
    model = build_model(cfg, (32, 32, 3), 10)
    kinds = [
        type(x).__name__ for x in model.layers if type(x).__name__ in ("Conv2D", "MaxPooling2D")
    ]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D"] * 3
    convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D)]
    # the block's second conv sees the pooled map: 32 -> 16 in block 1, ..., 8 -> 4 in block 3
    assert [c.output.shape[1] for c in convs] == [32, 16, 16, 8, 8, 4]
    assert plan(cfg, (32, 32, 3), 10).feature_sizes == (16, 8, 4)
    # twice the widths (4x the parameters) of the end-pooled 32->128 net, < 2x its FLOPs
    end = cfg.replace(pool_position="end", filters_base=32, filters_max=128)
    assert plan(cfg, (32, 32, 3), 10).flops < 2 * plan(end, (32, 32, 3), 10).flops
    assert cfg.run_name == "d3-k3-w0-c2-gap-pe-aug=none"


def test_the_lab_net_keeps_its_name_and_today_defaults_are_unchanged():
    cfg = TrialConfig.from_options(model="seed")
    assert (cfg.head, cfg.convs_per_block, cfg.block_dropout, cfg.pool_position) == (
        "flatten", 1, 0.0, "end")  # fmt: skip
    assert build_model(cfg, (32, 32, 3), 10).count_params() == 122_570
    # a gap head on the lab's numbers is not the lab's net
    assert TrialConfig.from_options(depth=3, padding="valid", filters_max=64,
                                    head="gap").model == "cnn"  # fmt: skip


@pytest.mark.parametrize(
    "options, words",
    [
        ({"head": "pool"}, "`head` should be one of flatten, gap"),
        ({"lr_schedule": "step"}, "`lr_schedule` should be one of constant, cosine, onecycle"),
        ({"tta": "crop"}, "`tta` should be one of none, flip"),
        ({"pool_position": "first"}, "`pool_position` should be one of end, early"),
        ({"convs_per_block": 0}, "`convs_per_block` should be a positive integer"),
        ({"label_smoothing": 1.0}, "`label_smoothing` should be in [0, 1)"),
        ({"warmup_epochs": -1}, "`warmup_epochs` should be an integer >= 0"),
        ({"early_stopping_patience": -1}, "`early_stopping_patience` should be an integer >= 0"),
        ({"weight_decay": -0.1}, "`weight_decay` should be 0 or more"),
    ],
)
def test_bad_recipe_values_are_one_line_errors_naming_the_field(options, words):
    with pytest.raises(UserError, match=None) as err:
        TrialConfig.from_options(**options)
    assert words in str(err.value) and "\n" not in str(err.value)


# --- optimizer and schedules -------------------------------------------------------------


def test_sgd_is_nesterov_and_weight_decay_skips_norm_and_bias():
    cfg = TrialConfig.from_options(optimizer="sgd", weight_decay=5e-4, learning_rate=0.1)
    opt = make_optimizer(cfg)
    assert opt.nesterov and opt.momentum == pytest.approx(0.9)
    assert opt.weight_decay == pytest.approx(5e-4)
    model = build_model(cfg.replace(batch_norm=True), (8, 8, 3), 2)
    opt.build(model.trainable_variables)
    decayed = {v.name for v in model.trainable_variables if opt._use_weight_decay(v)}
    assert decayed and not any(n in ("gamma", "beta", "bias") for n in decayed)


def test_adamw_keeps_keras_default_decay_unless_given():
    assert make_optimizer(TrialConfig.from_options(optimizer="adamw")).weight_decay == 0.004
    given = TrialConfig.from_options(optimizer="adamw", weight_decay=0.05)
    assert make_optimizer(given).weight_decay == pytest.approx(0.05)


@pytest.mark.parametrize(
    "kind, epochs, warmup, expected",
    [
        ("constant", 10, 0, {0: 1.0, 5: 1.0, 10: 1.0}),
        ("constant", 10, 2, {0: 0.04, 1: 0.52, 2: 1.0, 9: 1.0}),
        ("cosine", 10, 0, {0: 1.0, 5: 0.5, 10: 0.0}),
        ("cosine", 12, 2, {0: 0.04, 2: 1.0, 7: 0.5, 12: 0.0}),
        ("onecycle", 10, 0, {0: 0.04, 3: 1.0, 6.5: 0.5, 10: 0.0}),
        ("onecycle", 10, 2, {2: 1.0, 6: 0.5}),
    ],
)
def test_schedules_give_the_rate_at_known_epochs(kind, epochs, warmup, expected):
    steps = 7
    schedule = EpochSchedule(kind, 1.0, epochs, steps, warmup)
    for epoch, rate in expected.items():
        assert lr_at(kind, 1.0, epoch, epochs, warmup) == pytest.approx(rate, abs=1e-6)
        step = round(epoch * steps)
        assert float(schedule(step)) == pytest.approx(lr_at(kind, 1.0, step / steps, epochs,
                                                             warmup), abs=1e-6)  # fmt: skip


def test_a_trial_trains_at_the_scheduled_rate_and_logs_it(cifar_small):
    cfg = TrialConfig.from_options(
        epochs=3,
        lr_schedule="cosine",
        learning_rate=0.01,
        optimizer="sgd",
        batch_size=50,
        steps_per_execution=2,
    )
    result = run_trial(cfg, cifar_small, verbose=0)
    history = mlflow.MlflowClient().get_metric_history(result.run_id, M.LEARNING_RATE)
    logged = {m.step: m.value for m in history}
    steps = math.ceil(200 / 50)
    for epoch in (1, 2, 3):  # after epoch e the optimizer sits at step e * steps
        want = lr_at("cosine", 0.01, epoch * steps / steps, 3)
        assert logged[epoch] == pytest.approx(want, abs=1e-7)
    assert logged[3] == pytest.approx(0.0, abs=1e-9)


# --- labels: smoothing and mixing --------------------------------------------------------


@pytest.mark.parametrize("policy", ["mixup", "cutmix", "crop_cutmix"])
def test_label_mixing_policies_give_soft_labels_the_loss_accepts(policy):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, 16, 16, 3), dtype=np.uint8)
    y = np.repeat(np.arange(4), 16)
    aug = build_augmentation(policy, seed=1)
    assert mixes_labels(aug)
    images, labels = next(iter(train_dataset(x, y, 32, seed=0, augment=aug, n_classes=4)))
    labels = labels.numpy()
    assert labels.shape == (32, 4)
    assert np.allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert ((labels > 0.01) & (labels < 0.99)).any()  # some targets really are mixtures
    cfg = TrialConfig.from_options(depth=2, dense_units=0, augmentation=policy)
    model = compiled_model(cfg, (16, 16, 3), 4, soft_labels=True)
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss[0] if isinstance(loss, list) else loss)


def test_every_policy_keeps_shape_and_range_and_has_a_preview(tmp_path):
    from benchmark.augment import save_augmentation_preview

    x = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    modern = ("crop", "shift_flip", "shift_flip_cutout", "mixup", "cutmix", "randaugment",
              "crop_cutmix", "strong")  # fmt: skip
    for name in modern:
        assert name in policy_names()
        path = save_augmentation_preview(x, name, tmp_path / f"{name}.png", seed=0)
        assert path.stat().st_size > 1000
        aug = build_augmentation(name, seed=0)
        out = (aug({"images": x.astype("float32"), "labels": np.eye(6, dtype="float32")})
               if mixes_labels(aug) else {"images": aug(x.astype("float32"))})  # fmt: skip
        images = keras.ops.convert_to_numpy(out["images"])
        assert images.shape == x.shape
        assert images.min() >= -1e-3 and images.max() <= 255 + 1e-3
        assert not np.allclose(images, x), name


@pytest.mark.slow
def test_label_smoothing_and_cutmix_train_end_to_end(cifar_small):
    cfg = TrialConfig.from_options(epochs=1, label_smoothing=0.1, augmentation="cutmix",
                                   batch_norm=True, head="gap", steps_per_execution=2)  # fmt: skip
    m = run_trial(cfg, cifar_small, verbose=0).metrics
    assert 0.0 <= m[M.TEST_ACCURACY] <= 1.0 and np.isfinite(m[M.TEST_LOSS])


# --- early stopping and TTA --------------------------------------------------------------


@pytest.mark.slow
def test_early_stopping_tests_the_restored_best_weights(cifar_small, tmp_path):
    """The logged test accuracy is that of the best validation epoch's weights."""
    saver = keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.weights.h5"),
                                            save_weights_only=True)  # fmt: skip
    cfg = TrialConfig.from_options(
        epochs=6,
        early_stopping_patience=2,
        optimizer="sgd",
        learning_rate=0.3,
        batch_size=20,
        steps_per_execution=2,
    )
    result = run_trial(cfg, cifar_small, callbacks=[saver], verbose=0)
    m = result.metrics
    best = int(m[M.BEST_EPOCH])
    vals = result.history[M.VAL_ACCURACY]
    assert m[M.STOPPED_EPOCH] == len(vals) <= 6
    assert m[M.SELECTED_VAL_ACCURACY] == max(vals) == vals[best - 1]
    assert best < m[M.STOPPED_EPOCH]  # the test is about restoring: the best was not last

    fresh = build_model(cfg, cifar_small.image_shape, cifar_small.n_classes,
                        precision=resolve_precision(cfg.precision))  # the trial's policy
    fresh.load_weights(str(tmp_path / f"e{best}.weights.h5"))
    probs = fresh.predict(cifar_small.x_test.astype("float32"), verbose=0)
    assert m[M.TEST_ACCURACY] == pytest.approx(
        float(np.mean(probs.argmax(axis=1) == cifar_small.y_test)), abs=1e-6
    )
    assert mlflow.get_run(result.run_id).data.metrics[M.STOPPED_EPOCH] == m[M.STOPPED_EPOCH]


def test_flip_tta_is_the_mean_of_the_image_and_its_mirror():
    """A 1x2 'image' model: class 0 reads the left pixel, class 1 twice the right one."""
    model = keras.Sequential(
        [
            keras.Input((1, 2, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(2, use_bias=False),
            keras.layers.Softmax(),
        ]
    )
    model.layers[-2].set_weights([np.array([[1.0, 0.0], [0.0, 2.0]], dtype="float32")])
    x = np.array([[[[3], [0]]]], dtype=np.uint8)  # left bright: plain says class 0 (p=0.95)
    y = np.array([1])  # mirror says class 1 (p=0.9975): their mean says class 1
    assert float(np.mean(model.predict(x.astype("float32"), verbose=0).argmax(1) == y)) == 0.0
    assert flip_tta_accuracy(model, x, y) == 1.0


@pytest.mark.slow
def test_tta_flip_logs_test_accuracy_tta_beside_test_accuracy(cifar_small):
    cfg = TrialConfig.from_options(epochs=1, tta="flip", steps_per_execution=2)
    run = mlflow.get_run(run_trial(cfg, cifar_small, verbose=0).run_id)
    m = run.data.metrics
    assert 0.0 <= m[M.TEST_ACCURACY_TTA] <= 1.0 and M.TEST_ACCURACY in m
    plain = TrialConfig.from_options(epochs=1, steps_per_execution=2)
    assert M.TEST_ACCURACY_TTA not in run_trial(plain, cifar_small, verbose=0).metrics
