"""The dry run: every model of a space built, none trained, and the search's wall time
estimated, the per-trial overhead included.

A trial's wall time is overhead + tracing + epochs x epoch time (halving.Costs, the one cost
model of the plan, its refits and this estimate). The epoch time is measured,
not guessed: two real epochs (with validation, as a trial runs them) of the cheapest and the
most expensive configuration of each model family (each `keras:` architecture apart),
interpolated linearly in FLOPs for the others of its family, plus each
augmentation policy's own cost per epoch. The overhead (process hand-over, data, build,
evaluation, logging) and, under early stopping, the share of epochs trials really run come
from the finished trials the tracking store already holds when there are any (a user's own
machine), else from this machine's measurements (TRIAL_OVERHEAD_S, EARLY_STOP_SHARE).

May import: benchmark.models, benchmark.augment, the train stage, benchmark.metrics,
benchmark.search.halving (Costs), .space, .summary.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import mlflow

from benchmark import metrics as M
from benchmark import quiet
from benchmark.errors import UserError
from benchmark.runfilter import literal
from benchmark.search.halving import Costs
from benchmark.search.space import SearchSpace
from benchmark.search.summary import hms
from benchmark.train.trial import load_for

# Median overhead_s of a trial (wall time the search saw minus fit_s) measured here with the
# next trial's process warmed up while one trains: flowers17, 2-core AMD EPYC (AVX-512).
TRIAL_OVERHEAD_S = 3.5
# Mean share of their epochs the trials of the default flowers17 search ran before early
# stopping (patience 10 of 40 epochs, cosine schedule) here: without it a fresh store's
# estimate counted every epoch and came out 43% long. Trials in the store replace it.
EARLY_STOP_SHARE = 0.76


@dataclass(frozen=True)
class Probe:
    """Measured seconds: one steady epoch at `flops`, and the first epoch's extra (tracing)."""

    flops: int
    epoch_s: float
    trace_s: float


@dataclass(frozen=True)
class Estimate:
    """A space's estimated wall time with one worker: per configuration (its params and
    FLOPs, or why it was rejected) and in total, with how the overhead was taken."""

    rows: list[tuple[Any, int | None, Any, float]]  # (config, params, FLOPs | reason, s)
    n_trials: int
    seeds: int
    train_images: int
    probes: int
    how: str

    @property
    def total_s(self) -> float:
        mean = statistics.fmean(r[3] for r in self.rows if r[1] is not None)
        return mean * self.n_trials

    @property
    def per_training_s(self) -> float:
        """The mean estimated seconds of one training (one configuration, one seed)."""
        return self.total_s / max(self.n_trials * self.seeds, 1)


def dry_run(space: SearchSpace, *, printer=print, **options: Any) -> float:
    """Build every model of the space (no training, no new MLflow run) and estimate the
    search's wall time with one worker, in seconds; `options` are `estimate`'s."""
    est = estimate(space, **options)
    printer(f"{'configuration':36} {'params':>10} {'MFLOPs':>9} {'est. min':>9}")
    for cfg, params, flops, seconds in est.rows:
        if params is None:
            printer(f"{cfg.run_name:36} rejected: {flops}")
        else:
            printer(f"{cfg.run_name:36} {params:>10,} {flops / 1e6:>9.1f} {seconds / 60:>9.1f}")
    printer(
        f"{est.n_trials} trial(s) x {est.seeds} seed(s) on {est.train_images} images; epochs "
        f"timed on {est.probes} configuration(s); {est.how}; estimated total "
        f"{hms(est.total_s)} with 1 worker"
    )
    return est.total_s


def estimate(
    space: SearchSpace,
    *,
    dataset: str,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: int | None = None,
    n_trials: int | None = None,
) -> Estimate:
    """Every model of the space built (none trained), two epochs timed on the cheapest and
    the dearest, and each configuration's trainings priced: what `dry_run` prints and the
    lab command plans with."""
    import keras

    from benchmark.models import build_model, plan

    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    seeds = seeds or space.seeds
    base = {"dataset": dataset, **overrides}
    points = space.grid_points() if space.strategy == "grid" else []
    if not points:  # Optuna ranges: show the corners the sampler can reach
        points = [{d.name: (d.values or (d.low,))[0] for d in space.dimensions}]
    data = load_for(space.config({}, **base), data_dir)
    rows = []
    for p in points:
        cfg = space.config(p, **base).replace(image_size=data.image_shape[0])
        try:
            flops = plan(cfg, data.image_shape, data.n_classes).flops
            params = build_model(cfg, data.image_shape, data.n_classes).count_params()
            rows.append((cfg, params, flops))
        except UserError as exc:
            rows.append((cfg, None, str(exc)))
        keras.backend.clear_session(free_memory=False)  # no full gc per model: 0.2-0.4 s each
    _release()
    ok = [r for r in rows if r[1] is not None]
    if not ok:
        raise UserError("no configuration of the space fits its images; nothing to estimate")
    probes = _probes(data, [(r[0], r[2]) for r in ok])
    aug_cost = {a: _augmentation_s(a, data, ok[0][0]) for a in {r[0].augmentation for r in ok}}
    overhead, seen = _history(M.OVERHEAD_TIME)
    overhead = overhead if overhead is not None else TRIAL_OVERHEAD_S
    priced, shares = [], []
    for cfg, params, flops in rows:
        if params is None:
            priced.append((cfg, None, flops, 0.0))
            continue
        epoch_s, trace_s = _interpolate(probes, cfg, flops)
        epochs = cfg.epochs
        if cfg.early_stopping_patience:
            share = _stop_share(cfg)
            shares.append(share)
            epochs = cfg.epochs * (EARLY_STOP_SHARE if share is None else share)
        cost = Costs(epoch_s=epoch_s + aug_cost[cfg.augmentation], overhead_s=overhead + trace_s)
        seconds = cost(epochs) * seeds
        priced.append((cfg, params, flops, seconds))
    n = len(ok) if space.strategy != "optuna" else (n_trials or space.n_trials or 1)
    timed = sum(map(len, probes.values()))
    return Estimate(priced, n, seeds, len(data.x_train), timed, _how(overhead, seen, shares))


def _how(overhead: float, seen: int, shares: list[float | None]) -> str:
    """Where the overhead and the early-stopping share came from, for the estimate's line."""
    how = f"overhead {overhead:.1f} s a trial" + (
        f" (median of {seen} finished trials in this store)" if seen else " (measured here)"
    )
    if seen_shares := [x for x in shares if x is not None]:
        share = statistics.fmean(seen_shares)
        how += f"; early stopping: {share:.0%} of the epochs, as trials here ran"
    elif shares:
        how += (
            f"; early stopping: {EARLY_STOP_SHARE:.0%} of the epochs assumed (as measured "
            f"on the default flowers17 search; no finished trials of this kind here yet)"
        )
    return how


Probes = dict[str, list[Probe]]  # by cost_group


def cost_group(cfg) -> str:
    """The configurations one line of epoch seconds against FLOPs prices: a family (cnn,
    resnet), and each `keras:` architecture alone. Why apart: seconds per FLOP differ by
    family (depthwise convolutions, squeeze-excite), so one line through a CNN and a
    MobileNet priced every other configuration wrong."""
    from benchmark.presets import family_of

    family = family_of(cfg.model)
    return cfg.model if family.startswith("keras:") else family


def _probes(data, rows: list[tuple[Any, int]]) -> Probes:
    """Two timed epochs of the cheapest and of the dearest (config, FLOPs) of each cost
    group: the line that prices the group's other configurations by their FLOPs (one probe
    when they cost the same)."""
    groups: dict[str, list[tuple[Any, int]]] = {}
    for row in rows:
        groups.setdefault(cost_group(row[0]), []).append(row)
    out: Probes = {}
    for group, members in groups.items():
        cheap, dear = min(members, key=lambda r: r[1]), max(members, key=lambda r: r[1])
        out[group] = [_probe(cheap[0], data, cheap[1])]
        if dear[1] > cheap[1]:
            out[group].append(_probe(dear[0], data, dear[1]))
    return out


def _probe(cfg, data, flops: int) -> Probe:
    """Two real epochs of `cfg` with validation, without augmentation (timed apart)."""
    import math

    import keras

    from benchmark.train.pipeline import eval_dataset, train_dataset
    from benchmark.train.trial import EVAL_BATCH, compiled_model

    n_soft = data.n_classes if cfg.label_smoothing > 0 else None
    model = compiled_model(cfg, data.image_shape, data.n_classes,
                           steps_per_epoch=math.ceil(len(data.x_train) / cfg.batch_size),
                           soft_labels=n_soft is not None)  # fmt: skip
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    train = train_dataset(data.x_train, data.y_train, cfg.batch_size, 0, None, n_soft)
    val = eval_dataset(data.x_val, data.y_val, EVAL_BATCH, n_soft)
    with quiet.no_retracing_warning():  # several models fit in this one process
        model.fit(train, validation_data=val, epochs=2, verbose=0, shuffle=False,
                  callbacks=[Clock()])  # fmt: skip
    _release()
    return Probe(flops=flops, epoch_s=times[1], trace_s=max(times[0] - times[1], 0.0))


def _interpolate(by_group: Probes, cfg, flops: int) -> tuple[float, float]:
    """Epoch and tracing seconds of `cfg` at `flops`: a line through its cost group's probes
    (one probe: a point)."""
    probes = by_group[cost_group(cfg)]
    if len(probes) == 1:
        return probes[0].epoch_s, probes[0].trace_s
    a, b = probes
    w = (flops - a.flops) / (b.flops - a.flops)
    return a.epoch_s + w * (b.epoch_s - a.epoch_s), a.trace_s + w * (b.trace_s - a.trace_s)


def _augmentation_s(policy: str, data, cfg) -> float:
    """What one epoch of `policy` adds to an epoch without augmentation (the pipeline only)."""
    from benchmark.augment import build_augmentation, mixes_labels
    from benchmark.train.pipeline import train_dataset

    if policy == "none":
        return 0.0

    def epoch(augment) -> float:
        n_soft = data.n_classes if mixes_labels(augment) else None
        ds = train_dataset(data.x_train, data.y_train, cfg.batch_size, 0, augment, n_soft)
        next(iter(ds))  # tracing
        t0 = time.perf_counter()
        for _ in ds:
            pass
        return time.perf_counter() - t0

    return max(epoch(build_augmentation(policy, seed=0)) - epoch(None), 0.0)


def _history(metric: str) -> tuple[float | None, int]:
    """Median of `metric` over finished trial runs already in the tracking store, and how
    many; (None, 0) when there are none, or the store is a file that does not exist yet (a
    dry run creates nothing)."""
    runs = _finished_trials(f"metrics.{metric} > 0")
    values = [r.data.metrics[metric] for r in runs if metric in r.data.metrics]
    return (statistics.median(values), len(values)) if values else (None, 0)


def _stop_share(cfg) -> float | None:
    """The mean share of the epochs trials with this dataset, epoch count and patience ran
    before early stopping ended them, from the store; None without such trials."""
    where = (
        f"params.dataset = {literal(cfg.dataset)} and params.epochs = {literal(cfg.epochs)} "
        f"and params.early_stopping_patience = {literal(cfg.early_stopping_patience)}"
    )
    runs = _finished_trials(where)
    stops = [r.data.metrics[M.STOPPED_EPOCH] for r in runs if M.STOPPED_EPOCH in r.data.metrics]
    return statistics.fmean(stops) / cfg.epochs if stops else None


def _finished_trials(where: str) -> list:
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not os.path.exists(uri.removeprefix("sqlite:///")):
        return []
    try:
        return mlflow.search_runs(
            search_all_experiments=True,
            filter_string=f"tags.`{M.TAG_ROLE}` = 'trial' and attributes.status = 'FINISHED'"
            f" and {where}",
            max_results=500,
            output_format="list",
        )
    except Exception:  # an unreachable server: estimate without history
        return []


def _release() -> None:
    """Keras keeps every model built in this process: the dry run builds them all."""
    import gc

    import keras

    keras.backend.clear_session(free_memory=True)
    gc.collect()


def chance_accuracy(space: SearchSpace, base: dict[str, Any], data_dir: str | None) -> float:
    """Validation accuracy of always guessing the validation split's commonest class: what a
    candidate that learned nothing scores (1/17 on 17 Flowers' balanced split)."""
    import numpy as np

    counts = np.bincount(load_for(space.config({}, **base), data_dir).y_val)
    return float(counts.max() / counts.sum()) if counts.sum() else 0.0


def probe_space(
    space: SearchSpace, base: dict[str, Any], data_dir: str | None, samples: int = 48
) -> tuple[float, float]:
    """Seconds of one epoch of an average candidate of the space, and a trial's overhead:
    the halving plan's costs. `samples` random points of the space are planned (FLOPs, no
    build); the cheapest and dearest are trained two epochs (as the dry run times them); the
    others are interpolated, plus each policy's own cost per epoch."""
    import random

    from benchmark.models import plan

    data = load_for(space.config({}, **base), data_dir)
    rng = random.Random(0)
    points = space.grid_points() if space.strategy == "grid" else [
        {d.name: _draw(d, rng) for d in space.dimensions} for _ in range(samples)
    ]  # fmt: skip
    if len(points) > samples:
        points = rng.sample(points, samples)
    rows = []
    for p in points:
        cfg = space.config(p, **base).replace(image_size=data.image_shape[0])
        try:
            rows.append((cfg, plan(cfg, data.image_shape, data.n_classes).flops))
        except UserError:
            continue  # a point that cannot fit its images fails at once when sampled
    if not rows:
        raise UserError("no configuration of the space fits its images; nothing to plan")
    probes = _probes(data, rows)
    policies = {cfg.augmentation for cfg, _ in rows}
    aug_cost = {a: _augmentation_s(a, data, rows[0][0]) for a in policies}
    epoch_s = statistics.fmean(
        _interpolate(probes, cfg, flops)[0] + aug_cost[cfg.augmentation] for cfg, flops in rows
    )
    trace_s = statistics.fmean(_interpolate(probes, cfg, flops)[1] for cfg, flops in rows)
    overhead, _ = _history(M.OVERHEAD_TIME)
    return epoch_s, (TRIAL_OVERHEAD_S if overhead is None else overhead) + trace_s


def _draw(dim, rng) -> Any:
    """A uniform draw of one dimension (log-uniform for log ranges), for planning only."""
    import math

    if dim.values is not None and dim.low is None:
        return rng.choice(dim.values)
    if isinstance(dim.low, int) and isinstance(dim.high, int) and not dim.log:
        return rng.randrange(dim.low, dim.high + 1, dim.step or 1)
    if dim.log:
        value = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high)))
    else:
        value = rng.uniform(dim.low, dim.high)
    return round(value) if isinstance(dim.low, int) and isinstance(dim.high, int) else value
