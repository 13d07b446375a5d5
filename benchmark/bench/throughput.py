"""`python -m benchmark bench`: the seed notebook's training loop against the suite's.

Both train the seed net on the same images for the same number of steps in one process,
interleaved A, B, A, B... so that a load change on the machine hits both alike:

  (a) notebook: float32 numpy arrays into `model.fit(x, y, batch_size=32)`, augmentation
      layers inside the model before the net, `compile(optimizer="rmsprop")`, Keras defaults
      otherwise, except jit_compile=False (Keras' "auto" may turn XLA on, 3x slower on CPU).
  (b) suite: benchmark.train.pipeline.train_dataset (uint8 arrays, augmentation mapped over whole
      batches outside the model, prefetch) compiled as trial.py does (steps_per_execution,
      XLA only where runtime.jit_compile says it pays).

A warm-up fit traces each first and is not timed; each timed repeat is one epoch of
`--steps` steps (at least 5 repeats, in A B, B A, ... order); the table gives the median (and
range) of the repeats and CPU ms/image, and `speedup:` is the median of the per-repeat
speedups, printed with their range and the speedup in CPU time per image. Two more modes:
`--accuracy` trains both for `--epochs` on CIFAR-10 and prints their test accuracies, and
`--tracking` times the suite's fit with and without the MLflow logging a trial does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import mlflow
import numpy as np

from benchmark.augment import build_augmentation
from benchmark.bench.options import (  # the options' defaults: `bench --help` needs no TF
    SYNTHETIC,
    SYNTHETIC_CLASSES,
    SYNTHETIC_SHAPE,
    add_bench_arguments,  # noqa: F401  (the CLI's entry point, still importable from here)
)
from benchmark.config import TrialConfig
from benchmark.data import load_dataset
from benchmark.models import build_model
from benchmark.train.pipeline import eval_dataset, train_dataset
from benchmark.train.runtime import jit_compile, version_tags
from benchmark.train.trial import compiled_model

# --- settings ---------------------------------------------------------------------------

EVAL_BATCH = 256  # evaluation batch: larger is faster and does not change the result
NOTEBOOK = "(a) notebook: numpy fit, aug in model"
SUITE = "(b) suite: tf.data uint8, aug in map"


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: list[float]  # wall time of each timed repeat
    cpu_seconds: list[float]  # this process's CPU time (all threads) in each repeat
    images: int  # images per repeat

    @property
    def rates(self) -> list[float]:
        return [self.images / s for s in self.seconds]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def cpu_ms_per_image(self) -> float:
        """Work per image whatever the neighbours take: wall rates on a shared machine move
        with their load, this does not (it does not show overlap across cores either)."""
        return 1000 * statistics.median(self.cpu_seconds) / self.images


# --- data -------------------------------------------------------------------------------


def synthetic_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *SYNTHETIC_SHAPE), dtype=np.uint8)
    y = rng.integers(0, SYNTHETIC_CLASSES, n).astype(np.int32)
    return x, y


def bench_data(args: argparse.Namespace, n: int) -> tuple[np.ndarray, np.ndarray, int, str]:
    """n training images (cycled when the split has fewer), their class count and a label."""
    if args.dataset == SYNTHETIC:
        x, y = synthetic_data(n, args.seed)
        return x, y, SYNTHETIC_CLASSES, f"synthetic {'x'.join(map(str, SYNTHETIC_SHAPE))}"
    data = load_dataset(args.dataset, data_dir=args.data_dir)
    idx = np.arange(n) % len(data.x_train)
    shape = "x".join(map(str, data.image_shape))
    return data.x_train[idx], data.y_train[idx], data.n_classes, f"{data.name} {shape}"


def seed_config(args: argparse.Namespace) -> TrialConfig:
    return TrialConfig.from_options(
        model="seed",
        augmentation=args.augmentation,
        batch_size=args.batch_size,
        seed=args.seed,
        steps_per_execution=args.steps_per_execution,
    )


# --- the two pipelines --------------------------------------------------------------------


def notebook_model(cfg: TrialConfig, image_shape, n_classes: int) -> keras.Model:
    """The seed lab's model: its augmentation layers first, then the net, compiled with
    Keras' defaults (RMSprop, lr 0.001, one step per call); XLA off as on any CPU here."""
    keras.utils.set_random_seed(cfg.seed)
    augment = build_augmentation(cfg.augmentation, seed=cfg.seed)
    net = build_model(cfg, image_shape, n_classes)
    front = [augment] if augment is not None else []
    model = keras.Sequential([keras.Input(shape=image_shape), *front, net], name="notebook")
    model.compile(
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,  # Keras' "auto" may enable XLA on TF: 3x slower on this CPU
    )
    return model


def notebook_fit(cfg: TrialConfig, x: np.ndarray, y: np.ndarray, n_classes: int):
    """(a): float32 arrays into fit with batch_size, shuffled by Keras each epoch."""
    model = notebook_model(cfg, x.shape[1:], n_classes)
    xf = x.astype(np.float32)  # the notebook holds float arrays; fit batches them itself

    def fit(epochs: int = 1, callbacks=()) -> keras.Model:
        model.fit(
            xf, y, batch_size=cfg.batch_size, epochs=epochs, verbose=0, callbacks=list(callbacks)
        )
        return model

    return fit


def suite_model(cfg: TrialConfig, image_shape, n_classes: int) -> keras.Model:
    """Compiled by trial.compiled_model, as every trial is."""
    keras.utils.set_random_seed(cfg.seed)
    return compiled_model(cfg, image_shape, n_classes)


def suite_fit(cfg: TrialConfig, x: np.ndarray, y: np.ndarray, n_classes: int):
    """(b): the suite's tf.data path, as run_trial builds it."""
    model = suite_model(cfg, x.shape[1:], n_classes)
    augment = build_augmentation(cfg.augmentation, seed=cfg.seed)
    train = train_dataset(x, y, cfg.batch_size, cfg.seed, augment)

    def fit(epochs: int = 1, callbacks=()) -> keras.Model:
        model.fit(train, epochs=epochs, verbose=0, shuffle=False, callbacks=list(callbacks))
        return model

    return fit


# --- timing -------------------------------------------------------------------------------


def interleaved(
    runners: dict[str, Callable[[], object]], repeats: int, images: int
) -> list[Timing]:
    """Warm each up once (tracing, first iterator), then time them in turn, `repeats` rounds:
    A B, B A, A B, ... so that neither side always runs first after the other's epoch."""
    for run in runners.values():
        run()
    wall: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(repeats):
        order = list(runners.items())
        for name, run in order[::-1] if i % 2 else order:
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return [Timing(name, wall[name], cpu[name], images) for name in runners]


def table(timings: list[Timing]) -> str:
    width = max(len(t.name) for t in timings)
    lines = [
        f"{'pipeline':<{width}}  {'images/s':>9}  {'min':>7}  {'max':>7}  {'cpu ms/img':>10}"
        "  repeats"
    ]
    for t in timings:
        lines.append(
            f"{t.name:<{width}}  {t.median:9.0f}  {min(t.rates):7.0f}  {max(t.rates):7.0f}"
            f"  {t.cpu_ms_per_image:10.2f}  {len(t.rates)}"
        )
    return "\n".join(lines)


def header(cfg: TrialConfig, label: str, n: int, args: argparse.Namespace) -> str:
    return (
        f"bench: seed net on {label} ({n} images), batch {cfg.batch_size}, "
        f"augmentation {cfg.augmentation}, {args.steps} steps x {args.repeats} repeats "
        "after a warm-up fit, interleaved\n"
        f"{_machine()}\n"
        f"(a) jit_compile=False (the notebook's default 'auto' may pick XLA, 3x slower on CPU); "
        f"(b) jit_compile={jit_compile()!r}, steps_per_execution={cfg.steps_per_execution}"
    )


def _machine() -> str:
    v = version_tags()
    return (
        f"device: {v['device']}; TF {v['tensorflow_version']}, Keras {v['keras_version']}, "
        f"commit {v['git_commit']}"
    )


# --- modes --------------------------------------------------------------------------------


def run_throughput(args: argparse.Namespace) -> float:
    cfg = seed_config(args)
    n = args.steps * cfg.batch_size
    x, y, n_classes, label = bench_data(args, n)
    print(header(cfg, label, n, args), flush=True)
    runners = {
        NOTEBOOK: notebook_fit(cfg, x, y, n_classes),
        SUITE: suite_fit(cfg, x, y, n_classes),
    }
    timings = interleaved(runners, args.repeats, n)
    print(table(timings))
    return print_speedup(*timings)


def print_speedup(a: Timing, b: Timing) -> float:
    """The median of the per-repeat speedups (b's images/s over a's in the same round: a
    load change between rounds hits both sides of a pair alike), their range, and the
    speedup in CPU time per image, which the machine's other load moves far less."""
    pairs = sorted(rb / ra for ra, rb in zip(a.rates, b.rates, strict=True))
    speedup = statistics.median(pairs)
    print(
        f"per-repeat speedup: median {speedup:.2f}, range {pairs[0]:.2f}-{pairs[-1]:.2f} "
        f"({len(pairs)} interleaved pairs); CPU ms/image (a) {a.cpu_ms_per_image:.2f}, "
        f"(b) {b.cpu_ms_per_image:.2f}: CPU speedup {a.cpu_ms_per_image / b.cpu_ms_per_image:.2f}"
    )
    print(f"speedup: {speedup:.2f}")
    return speedup


def run_accuracy(args: argparse.Namespace) -> None:
    """Both pipelines, same epochs, same seeds, on CIFAR-10's train split; test accuracy."""
    dataset = "cifar10" if args.dataset == SYNTHETIC else args.dataset
    data = load_dataset(dataset, data_dir=args.data_dir)
    cfg0 = seed_config(args)
    print(
        f"accuracy: seed net on {data.name} (train {len(data.x_train)}, test "
        f"{len(data.x_test)}), batch {cfg0.batch_size}, augmentation {cfg0.augmentation}, "
        f"{args.epochs} epochs, seeds {list(args.seeds)}\n{_machine()}",
        flush=True,
    )
    results: dict[str, list[float]] = {NOTEBOOK: [], SUITE: []}
    for seed in args.seeds:
        cfg = cfg0.replace(seed=seed)
        for name, make in ((NOTEBOOK, notebook_fit), (SUITE, suite_fit)):
            start = time.perf_counter()
            model = make(cfg, data.x_train, data.y_train, data.n_classes)(epochs=args.epochs)
            test = eval_dataset(data.x_test, data.y_test, EVAL_BATCH)
            _, acc = model.evaluate(test, verbose=0)
            results[name].append(float(acc))
            print(
                f"  seed {seed}  {name}: test accuracy {acc:.4f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    width = max(map(len, results))
    print(f"{'pipeline':<{width}}  test accuracy, mean ± std (n seeds)")
    for name, accs in results.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"{name:<{width}}  {np.mean(accs):.4f} ± {sd:.4f} ({len(accs)})")
    gap = 100 * (np.mean(results[SUITE]) - np.mean(results[NOTEBOOK]))
    print(f"difference (b - a): {gap:+.2f} pp")


def run_tracking(args: argparse.Namespace) -> float:
    """The suite's fit alone vs inside a tracked run that logs as run_trial does (params,
    tags, per-epoch metrics through EpochLogger, system metrics), interleaved."""
    from benchmark.train.trial import EpochLogger

    cfg = seed_config(args)
    n = args.steps * cfg.batch_size
    x, y, n_classes, label = bench_data(args, n)
    fit = suite_fit(cfg, x, y, n_classes)
    with tempfile.TemporaryDirectory() as tmp:
        saved = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(f"sqlite:///{os.path.join(tmp, 'mlflow.db')}")
        try:
            mlflow.set_experiment("bench-tracking")

            def tracked() -> None:
                with mlflow.start_run(log_system_metrics=True):
                    mlflow.log_params(cfg.to_params())
                    mlflow.set_tags(version_tags())
                    fit(epochs=args.epochs, callbacks=[EpochLogger()])

            print(
                f"tracking: seed net on {label} ({n} images a epoch), {args.epochs} epochs a "
                f"fit, {args.repeats} repeats after a warm-up, interleaved; MLflow sqlite\n"
                f"{_machine()}",
                flush=True,
            )
            timings = interleaved(
                {"untracked fit": lambda: fit(epochs=args.epochs), "tracked run": tracked},
                args.repeats,
                n * args.epochs,
            )
        finally:
            mlflow.set_tracking_uri(saved)
    print(table(timings))
    untracked, tracked_t = (statistics.median(t.seconds) for t in timings)
    overhead = 100 * (tracked_t / untracked - 1)
    print(f"tracking overhead: {overhead:+.1f}%")
    return overhead
