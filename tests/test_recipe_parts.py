"""Issue 30's recipe parts, each off by default: weight EMA (validated, early-stopped and tested
on the averaged weights), flip + translate TTA, the learning rate scaled with the batch."""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import pytest

from benchmark import metrics as M
from benchmark.cli import main
from benchmark.config import LR_REFERENCE_BATCH, TrialConfig
from benchmark.data import load_dataset
from benchmark.models import build_model
from benchmark.train.ema import EmaValidation
from benchmark.train.optim import make_optimizer
from benchmark.train.precision import resolve_precision
from benchmark.train.trial import compiled_model, run_trial
from benchmark.train.tta import VIEWS, tta_accuracy, view


@pytest.fixture(scope="module")
def cifar_small(shared_data, session_cache):
    return load_dataset("cifar10", data_dir=shared_data, max_train_samples=200,
                        cache_dir=session_cache)  # fmt: skip


def test_every_part_is_off_by_default():
    cfg = TrialConfig()
    assert (cfg.ema, cfg.lr_scaling, cfg.tta, cfg.label_smoothing) == (0.0, "none", "none", 0.0)
    assert not make_optimizer(cfg).use_ema
    assert cfg.peak_learning_rate == cfg.learning_rate


# --- larger batches, scaled rate --------------------------------------------------------


def test_linear_scaling_gives_the_rate_per_reference_batch():
    cfg = TrialConfig.from_options(learning_rate=0.4, batch_size=128, lr_scaling="linear")
    assert cfg.peak_learning_rate == pytest.approx(0.4 * 128 / LR_REFERENCE_BATCH) == 0.2
    opt = make_optimizer(cfg.replace(optimizer="sgd"))
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(0.2)
    # a schedule peaks at the scaled rate too (cosine without warm-up: at its first step)
    sched = make_optimizer(cfg.replace(lr_schedule="cosine", epochs=2), steps_per_epoch=10)
    assert float(keras.ops.convert_to_numpy(sched.learning_rate)) == pytest.approx(0.2)


def test_bad_lr_scaling_and_ema_are_one_line_errors(capsys):
    assert main(["train", "--lr-scaling", "sqrt"]) == 2
    assert "lr_scaling" in capsys.readouterr().err
    assert main(["train", "--ema", "1.0"]) == 2
    err = capsys.readouterr().err
    assert "`ema` should be in [0, 1)" in err and len(err.strip().splitlines()) == 1


# --- weight EMA ---------------------------------------------------------------------------


class Snapshots(keras.callbacks.Callback):
    """The trainable weights each epoch ends with, as the callbacks at its place see them."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[list[np.ndarray]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.weights.append([keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights])


def _tiny_fit(callbacks, epochs=3):
    cfg = TrialConfig.from_options(depth=1, filters_base=4, dense_units=8, ema=0.9, epochs=epochs,
                                   optimizer="sgd", learning_rate=0.05, batch_size=16,
                                   steps_per_execution=2)  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 8, 8, 3)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int32")
    keras.utils.set_random_seed(0)
    model = compiled_model(cfg, (8, 8, 3), 2)
    history = model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=16, verbose=0,
                        shuffle=False, callbacks=callbacks)  # fmt: skip
    return model, history.history, (x, y)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.allclose(u, v) for u, v in zip(a, b, strict=True))


def test_validation_and_the_tested_weights_are_the_average():
    """Each epoch's val_loss scores the averaged weights; after fit the model holds the last
    epoch's average (what the test scores), not the raw weights training reached."""
    seen, raw = Snapshots(), Snapshots()
    model, history, (x, y) = _tiny_fit([seen, EmaValidation(), raw])
    assert not _same(seen.weights[-1], raw.weights[-1])  # the average is not the raw weights
    final = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert _same(final, seen.weights[-1])
    loss, _ = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(history["val_loss"][-1], rel=1e-5)


def test_early_stopping_restores_the_best_epochs_average_not_its_raw_weights():
    seen, raw = Snapshots(), Snapshots()
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5,
                                            restore_best_weights=True)  # fmt: skip
    model, history, (x, y) = _tiny_fit([stopper, seen, EmaValidation(), raw], epochs=4)
    best = int(np.argmin(history["val_loss"]))
    final = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert _same(final, seen.weights[best]) and not _same(final, raw.weights[best])
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(history["val_loss"][best], rel=1e-5)


@pytest.mark.slow
def test_a_trial_with_ema_tests_the_weights_it_selected(cifar_small, tmp_path):
    """run_trial with ema and early stopping: the logged test accuracy is that of the weights
    a user's checkpoint saw at the best epoch (the average), and `ema` is a logged param.
    The checkpoint is loaded into the model as the trial built it (its precision): in
    another policy one borderline image of 2000 can flip."""
    saver = keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.weights.h5"),
                                            save_weights_only=True)  # fmt: skip
    cfg = TrialConfig.from_options(epochs=3, ema=0.9, early_stopping_patience=2,
                                   optimizer="sgd", learning_rate=0.05, batch_size=20,
                                   steps_per_execution=2)  # fmt: skip
    result = run_trial(cfg, cifar_small, callbacks=[saver], verbose=0)
    best = int(result.metrics[M.BEST_EPOCH])
    fresh = build_model(cfg, cifar_small.image_shape, cifar_small.n_classes,
                        precision=resolve_precision(cfg.precision))  # bf16 on a bf16 CPU
    fresh.load_weights(str(tmp_path / f"e{best}.weights.h5"))
    probs = fresh.predict(cifar_small.x_test.astype("float32"), verbose=0)
    assert result.metrics[M.TEST_ACCURACY] == pytest.approx(
        float(np.mean(probs.argmax(axis=1) == cifar_small.y_test)), abs=1e-6
    )
    assert mlflow.get_run(result.run_id).data.params["ema"] == "0.9"


# --- flip + translate TTA -----------------------------------------------------------------


def test_views_move_the_image_and_reflect_the_border():
    x = np.arange(25, dtype=np.uint8).reshape(1, 5, 5, 1)
    moved = view(x, False, 2, 2)[0, :, :, 0]
    assert (moved[2:, 2:] == x[0, :3, :3, 0]).all()  # content 2 px down and right
    assert (moved[:2, 2:] == x[0, 2:0:-1, :3, 0]).all()  # the top border is reflected
    assert (view(x, True, 0, 0) == x[:, :, ::-1]).all()
    assert len(set(VIEWS["flip_translate"])) == 6 and set(VIEWS["flip"]) < set(
        VIEWS["flip_translate"]
    )


def test_flip_translate_finds_evidence_two_pixels_off():
    """Class 1 reads one pixel, (3, 3); the image is bright at (1, 1). Plain and mirror say
    class 0 (p 0.55); the view shifted 2 px down-right says class 1 (p ~1), which lifts the
    mean over the 6 views to class 1: flip TTA misses it, flip_translate finds it."""
    model = keras.Sequential([keras.Input((5, 5, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2), keras.layers.Softmax()])  # fmt: skip
    w = np.zeros((25, 2), dtype="float32")
    w[3 * 5 + 3, 1] = 1.0
    model.layers[-2].set_weights([w, np.array([np.log(0.55 / 0.45), 0.0], dtype="float32")])
    x = np.zeros((1, 5, 5, 1), dtype=np.uint8)
    x[0, 1, 1, 0] = 255
    y = np.array([1])
    assert tta_accuracy(model, x, y, "flip") == 0.0
    assert tta_accuracy(model, x, y, "flip_translate") == 1.0


@pytest.mark.slow
def test_tta_flip_translate_logs_test_accuracy_tta(cifar_small):
    cfg = TrialConfig.from_options(epochs=1, tta="flip_translate", steps_per_execution=2)
    run = mlflow.get_run(run_trial(cfg, cifar_small, verbose=0).run_id)
    assert 0.0 <= run.data.metrics[M.TEST_ACCURACY_TTA] <= 1.0
    assert run.data.params["tta"] == "flip_translate"


def test_warm_start_keeps_the_rate_an_earlier_run_trained_at(tmp_path):
    """An earlier run at 0.05, batch 64, unscaled, queued into a space that scales the rate
    with the batch: it becomes 0.2 per 256 images, the same 0.05 at its batch of 64."""
    from types import SimpleNamespace

    from benchmark.search.space import load_space
    from benchmark.search.warm import adapted

    (tmp_path / "s.yaml").write_text(
        "dataset: cifar10\nstrategy: optuna\nfixed: {batch_size: 64, lr_scaling: linear}\n"
        "space:\n  learning_rate: {low: 0.001, high: 1.0, log: true}\n"
        "  depth: {values: [3, 4]}\n"
    )
    space = load_space(tmp_path / "s.yaml")
    params = {"learning_rate": "0.05", "batch_size": "64", "depth": "3", "dataset": "cifar10"}
    point = adapted(SimpleNamespace(data=SimpleNamespace(params=params)), space)
    assert point == {"learning_rate": pytest.approx(0.2), "depth": 3}
    assert space.config(point).peak_learning_rate == pytest.approx(0.05)
