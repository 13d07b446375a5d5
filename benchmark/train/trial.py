"""One trial, top to bottom: seed, data, model, compile, fit, evaluate, log.

A trial is one MLflow run (nested under the search's parent run when there is one).
Model selection reads validation only; the test split is evaluated once, at the end.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import mlflow
import numpy as np

from benchmark import metrics as M
from benchmark.augment import build_augmentation, mixes_labels, save_augmentation_preview
from benchmark.config import TrialConfig
from benchmark.data import Dataset, load_dataset
from benchmark.models import build_model, model_summary, plan
from benchmark.train.cost import CostMeter
from benchmark.train.ema import EmaValidation
from benchmark.train.export import log_dataset_inputs, log_trial_outputs
from benchmark.train.gpu import (
    AugmentInStep,
    gpu_usage,
    has_geometric_ops,
    on_gpu,
)
from benchmark.train.optim import make_optimizer
from benchmark.train.outcome import run_outcome
from benchmark.train.pipeline import eval_dataset, train_dataset
from benchmark.train.plots import plot_learning_curves
from benchmark.train.precision import resolve_precision
from benchmark.train.runtime import jit_compile, version_tags
from benchmark.train.tta import flip_tta_accuracy as flip_tta_accuracy  # its old home: tests
from benchmark.train.tta import tta_accuracy

EVAL_BATCH = 256  # evaluation batch: larger is faster and does not change the result


class TrialFailed(Exception):
    """Training went wrong in a way that is the model's fault (NaN loss), not the code's."""


@dataclass
class TrialResult:
    run_id: str
    metrics: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def overfit(self) -> bool:
        return M.is_overfit(self.metrics[M.OVERFIT_GAP], self.metrics[M.VAL_LOSS_RISE])

    @property
    def objective(self) -> float:
        """What the search ranks on: validation accuracy of the weights that were tested."""
        return self.metrics.get(M.SELECTED_VAL_ACCURACY, self.history[M.OBJECTIVE][-1])


class EpochLogger(keras.callbacks.Callback):
    """Times each epoch, logs the curves with step = epoch (1-based), fails on NaN loss."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {k: [] for k in M.EPOCH_METRICS}
        self.train_times: list[float] = []  # training part of each epoch, validation excluded

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._t0 = time.perf_counter()
        self._train_end: float | None = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._train_end is None:  # validation begins: the training part of the epoch ended
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        logs = dict(logs or {})
        if not math.isfinite(logs.get(M.LOSS, 0.0)):
            raise TrialFailed(f"nan loss at epoch {epoch + 1}")
        self.train_times.append((self._train_end or now) - self._t0)
        logs[M.EPOCH_TIME] = now - self._t0
        row = {k: float(logs[k]) for k in M.EPOCH_METRICS if k in logs}
        for k, v in row.items():
            self.history[k].append(v)
        lr = getattr(self.model.optimizer, "learning_rate", None)
        if lr is not None:  # the rate as the epoch ends (schedules move it step by step)
            row[M.LEARNING_RATE] = float(keras.ops.convert_to_numpy(lr))
        mlflow.log_metrics(row, step=epoch + 1)


DATA_FIELDS = ("dataset", "image_size", "label_mode", "split", "val_fraction", "max_train_samples")


def load_for(cfg: TrialConfig, data_dir: str | None = None) -> Dataset:
    """The data a config asks for (the config fields in DATA_FIELDS decide it)."""
    return load_dataset(
        cfg.dataset,
        data_dir=data_dir,
        image_size=cfg.image_size,
        label_mode=cfg.label_mode,
        split=cfg.split,
        val_fraction=cfg.val_fraction,
        max_train_samples=cfg.max_train_samples,
    )


class DataCache:
    """Decoded datasets by data setting: in-process trials load each once, not per trial."""

    def __init__(self, data_dir: str | None) -> None:
        self.data_dir, self._loaded = data_dir, {}

    def get(self, cfg: TrialConfig) -> Dataset:
        key = tuple(getattr(cfg, f) for f in DATA_FIELDS)
        if key not in self._loaded:
            self._loaded[key] = load_for(cfg, self.data_dir)
        return self._loaded[key]

    def clear(self) -> None:
        self._loaded.clear()


def run_trial(
    cfg: TrialConfig,
    data: Dataset | None = None,
    *,
    data_dir: str | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    nested: bool = False,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    verbose: int = 2,
    timings: dict[str, float] | None = None,
    run_id: str | None = None,
    log_models: str = "all",
    search_pid: int | None = None,
) -> TrialResult:
    """Train and evaluate one configuration and log everything about it to MLflow.

    Pass `data` to reuse decoded arrays across trials (a search loads them once).
    `nested` puts the run under this process's active run; `parent_run_id` under a run
    of another process (a search parent, when the trial runs in its own process); `run_id`
    trains into an existing run (the one `mlflow run -e train` made for the command);
    `log_models` `none` keeps no model (`all`, `best`: the search deletes the losers' later).
    `search_pid`: the one-worker search this trial runs in, whose own processes are not
    counted as load beside the fit (cost.CostMeter).
    Raises UserError before any run is created when the spec cannot fit the images;
    any failure during training marks the MLflow run FAILED (pruned: KILLED) and re-raises.
    """
    keras.utils.set_random_seed(cfg.seed)  # python, numpy and TF: same seed, same run (CPU)
    timings = dict(timings or {})  # phases measured before this call (startup_s, data_s)
    started = time.perf_counter()
    data = data or load_for(cfg, data_dir)
    timings[M.DATA_TIME] = timings.get(M.DATA_TIME, 0.0) + time.perf_counter() - started
    cfg = cfg.replace(image_size=data.image_shape[0])  # log the size actually used
    layer_plan = plan(cfg, data.image_shape, data.n_classes)  # impossible spec: no run at all

    experiment_id = mlflow.get_run(parent_run_id).info.experiment_id if parent_run_id else None
    with mlflow.start_run(
        run_id=run_id,
        run_name=run_name or cfg.run_name,
        nested=nested,
        parent_run_id=parent_run_id,
        experiment_id=experiment_id,
        log_system_metrics=True,
    ) as run:
        sizes = dict(zip(M.SPLIT_SIZE_PARAMS, data.sizes().values(), strict=True))
        mlflow.log_params(
            cfg.to_params()
            | {"filters": "-".join(map(str, layer_plan.filters))}
            | {M.PRECISION_RESOLVED: resolve_precision(cfg.precision)}  # what `auto` became
            | sizes
        )
        mlflow.set_tags(
            version_tags()
            | {M.TAG_DIGEST: data.digest, "mlflow.runName": run_name or cfg.run_name}
            | dict.fromkeys(M.ROLE_TAGS, "trial")  # a single `train` run is a trial too
            | (tags or {})
        )
        log_dataset_inputs(data)  # MLflow inputs: train, validation and test splits
        try:
            result = _train_and_log(cfg, data, layer_plan.flops, callbacks, verbose, run.info,
                                    timings, log_models, search_pid)  # fmt: skip
        except BaseException as exc:  # record why, then let the caller decide
            state, reason, status, extra = run_outcome(exc)  # SIGTERM: KILLED, the signal
            mlflow.set_tags({M.TAG_TRIAL_STATE: state, M.TAG_STATUS_REASON: reason[:500]} | extra)
            mlflow.end_run(status=status)
            raise
        mlflow.set_tag(M.TAG_TRIAL_STATE, "complete")
    return result


def record_wall_time(result: TrialResult, wall_s: float) -> TrialResult:
    """Log the wall time the search waited for this trial and the overhead beyond fit_s.

    Called by the search process once the trial has ended (its run is already finished:
    MLflow takes metrics on finished runs), so process start-up and hand-over count too.
    """
    extra = {M.TRIAL_WALL_TIME: wall_s, M.OVERHEAD_TIME: wall_s - result.metrics[M.FIT_TIME]}
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(
        result.run_id, metrics=[mlflow.entities.Metric(k, v, now, 0) for k, v in extra.items()]
    )
    result.metrics.update(extra)
    return result


def compiled_model(
    cfg: TrialConfig,
    image_shape,
    n_classes: int,
    *,
    steps_per_epoch: int | None = None,
    soft_labels: bool = False,
    augment_in_step: keras.Layer | None = None,
) -> keras.Model:
    """The model as every trial trains it (the bench times this same path).

    `soft_labels`: the data gives one-hot (or mixed) targets; label smoothing needs them.
    `augment_in_step`: a policy applied inside the compiled train step (the GPU path).
    The model is built under cfg.precision resolved for this machine (auto: mixed_float16 on
    a tensor-core GPU, mixed_bfloat16 on a bf16 CPU); the policy layers stay float32.
    """
    model = build_model(cfg, image_shape, n_classes, precision=resolve_precision(cfg.precision))
    jit = jit_compile()
    if augment_in_step is not None:  # the wrapper takes the model's policy: mixed_float16
        model = AugmentInStep(
            model, augment_in_step, mixes_labels(augment_in_step), dtype=model.dtype_policy
        )  # scales the loss, as Keras does then
        if has_geometric_ops(augment_in_step):
            jit = False  # the image-transform op has no XLA kernel
    soft = soft_labels or cfg.label_smoothing > 0
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
        if soft
        else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=cfg.steps_per_execution,
        jit_compile=jit,
    )
    return model


def _train_and_log(cfg, data, flops, callbacks, verbose, run_info, timings,
                   log_models: str = "all",
                   search_pid: int | None = None) -> TrialResult:  # fmt: skip
    """Build, fit, evaluate once on test, log: the trial's body inside its MLflow run."""
    clock = time.perf_counter()
    augment = build_augmentation(cfg.augmentation, seed=cfg.seed)
    soft = cfg.label_smoothing > 0 or mixes_labels(augment)
    n_soft = data.n_classes if soft else None  # one-hot labels in every split
    steps_per_epoch = math.ceil(len(data.x_train) / cfg.batch_size)
    in_step = on_gpu() and augment is not None  # GPU: augment inside the train step
    model = compiled_model(
        cfg, data.image_shape, data.n_classes, steps_per_epoch=steps_per_epoch, soft_labels=soft,
        augment_in_step=augment if in_step else None,
    )  # fmt: skip
    timings[M.BUILD_TIME] = time.perf_counter() - clock
    train = train_dataset(data.x_train, data.y_train, cfg.batch_size, cfg.seed,
                          None if in_step else augment, n_soft)  # fmt: skip
    val = eval_dataset(data.x_val, data.y_val, EVAL_BATCH, n_soft)
    logger, stopper = EpochLogger(), _stopper(cfg)
    ema = [EmaValidation()] if cfg.ema > 0 else []  # last: the others see the average

    gpu: dict[str, float] = {}
    cost = CostMeter(len(data.x_train), search_pid)  # CPU time, and other processes' load
    start = time.perf_counter()
    with gpu_usage(gpu):
        model.fit(
            train, validation_data=val, epochs=cfg.epochs, verbose=verbose, shuffle=False,
            callbacks=[logger, cost, *([stopper] if stopper else []), *callbacks, *ema],
        )  # fmt: skip
    train_time = time.perf_counter() - start
    mlflow.set_tag(M.TAG_TIMING, cost.timing)
    clock = time.perf_counter()
    scores = _evaluate(model, data, cfg, n_soft)
    timings[M.EVAL_TIME] = time.perf_counter() - clock
    final = _final_metrics(model, data, logger, stopper is not None, scores, flops, train_time)
    final |= gpu | cost.metrics()  # cpu_time_s, cpu_ms_per_image, host_busy_*
    if cfg.tta != "none":
        final[M.TEST_ACCURACY_TTA] = tta_accuracy(model, data.x_test, data.y_test, cfg.tta,
                                                  EVAL_BATCH)  # fmt: skip
    clock = time.perf_counter()
    mlflow.log_metrics(final)
    overfit = M.is_overfit(final[M.OVERFIT_GAP], final[M.VAL_LOSS_RISE])
    mlflow.set_tag(M.TAG_OVERFIT, "yes" if overfit else "no")
    _log_artifacts(model, data, cfg, logger.history, log_models)
    # Where the trial's time went, from inside the trial (the search adds startup_s and the
    # wall time it saw: overhead_s = wall - fit_s).
    timings[M.LOG_TIME] = time.perf_counter() - clock
    timings[M.FIT_TIME] = train_time
    mlflow.log_metrics(timings)
    return TrialResult(run_id=run_info.run_id, metrics=final | timings, history=logger.history)


def _stopper(cfg: TrialConfig) -> keras.callbacks.EarlyStopping | None:
    """Early stopping on validation accuracy, restoring the best weights when fit ends."""
    if not cfg.early_stopping_patience:
        return None
    return keras.callbacks.EarlyStopping(monitor=M.VAL_ACCURACY, mode="max",
                                         patience=cfg.early_stopping_patience,
                                         restore_best_weights=True)  # fmt: skip


def _evaluate(model, data, cfg, n_soft) -> tuple[float, float, float]:
    """Test loss and accuracy, evaluated once, untouched until now; and the accuracy on a
    clean (unaugmented) train subset, which measures memorisation."""
    test_loss, test_acc = model.evaluate(
        eval_dataset(data.x_test, data.y_test, EVAL_BATCH, n_soft), verbose=0
    )
    rng = np.random.default_rng(cfg.seed)
    n_eval = min(len(data.x_train), max(len(data.x_val), 1000))
    idx = np.sort(rng.choice(len(data.x_train), n_eval, replace=False))
    _, train_eval_acc = model.evaluate(
        eval_dataset(data.x_train[idx], data.y_train[idx], EVAL_BATCH, n_soft), verbose=0
    )
    return float(test_loss), float(test_acc), float(train_eval_acc)


def _final_metrics(model, data, logger, stopped_early: bool, scores, flops,
                   train_time: float) -> dict[str, float]:  # fmt: skip
    """The run's end metrics; `tested`: the epoch whose weights were evaluated."""
    test_loss, test_acc, train_eval_acc = scores
    h = logger.history
    steady = logger.train_times[1:] or logger.train_times  # first epoch carries tracing
    best = int(np.argmax(h[M.VAL_ACCURACY]))
    tested = best if stopped_early else len(h[M.VAL_ACCURACY]) - 1
    lowest_loss = max(min(h[M.VAL_LOSS]), 1e-12)  # a perfect fit: no division by zero
    return {
        M.PARAM_COUNT: model.count_params(),
        M.FLOPS: flops,
        M.TRAIN_TIME: train_time,
        M.IMAGES_PER_S: len(data.x_train) / float(np.median(steady)),
        M.TEST_ACCURACY: test_acc,
        M.TEST_LOSS: test_loss,
        M.TRAIN_EVAL_ACCURACY: train_eval_acc,
        M.OVERFIT_GAP: train_eval_acc - h[M.VAL_ACCURACY][tested],
        M.BEST_EPOCH: best + 1,
        M.BEST_VAL_ACCURACY: max(h[M.VAL_ACCURACY]),
        M.SELECTED_VAL_ACCURACY: h[M.VAL_ACCURACY][tested],
        M.STOPPED_EPOCH: len(h[M.VAL_ACCURACY]),
        M.VAL_LOSS_RISE: h[M.VAL_LOSS][tested] / lowest_loss - 1,
    }


def _log_artifacts(model, data, cfg: TrialConfig, history: dict, log_models: str) -> None:
    """Curves, summary, config, augmentation preview; per-class results and the model."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        plot_learning_curves(history, out / "learning_curves.png", title=cfg.run_name)
        (out / "model_summary.txt").write_text(model_summary(model))
        (out / "config.json").write_text(json.dumps(cfg.to_params(), indent=2, sort_keys=True))
        if cfg.augmentation != "none":
            save_augmentation_preview(
                data.x_train[:5], cfg.augmentation, out / "augmentation_preview.png", seed=cfg.seed
            )
        mlflow.log_artifacts(tmp)
    log_trial_outputs(model, data, cfg, EVAL_BATCH, log_models)  # per-class; the tested model
