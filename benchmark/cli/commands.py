"""What each command does once its options are parsed: the commands import what they need
(TensorFlow, MLflow, the report) when they run, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex

from benchmark.config import TrialConfig
from benchmark.errors import UserError


def config_from_args(args: argparse.Namespace) -> TrialConfig:
    names = TrialConfig.field_names()
    return TrialConfig.from_options(**{k: v for k, v in vars(args).items() if k in names})


def cmd_train(args: argparse.Namespace) -> int:
    from benchmark.train.tracking import prepare_tracking
    from benchmark.train.trial import run_trial

    cfg = config_from_args(args)
    tracking = prepare_tracking(args.experiment, dataset=cfg.dataset)
    uri = tracking.uri
    result = run_trial(cfg, data_dir=args.data_dir, verbose=0 if args.quiet else 2,
                       run_id=tracking.project_run)  # fmt: skip
    m = result.metrics
    print(
        f"run {result.run_id} ({cfg.run_name}) tracked in {uri}\n"
        f"test_accuracy {m['test_accuracy']:.4f}  best_val_accuracy {m['best_val_accuracy']:.4f}"
        f" (epoch {m['best_epoch']})  train_time_s {m['train_time_s']:.1f}"
        f"  images_per_s {m['images_per_s']:.0f}\n"
        f"overfit_gap {m['overfit_gap']:.4f}  val_loss_rise {m['val_loss_rise']:.4f}"
        f"  overfit {'yes' if result.overfit else 'no'}"
        f"  params {m['param_count']:,}  flops {m['flops']:,}"
    )
    extra = [f"stopped_epoch {m['stopped_epoch']:.0f}"] if cfg.early_stopping_patience else []
    if "test_accuracy_tta" in m:
        extra.append(f"test_accuracy_tta {m['test_accuracy_tta']:.4f}")
    if extra:
        print("  ".join(extra))
    from mlflow import MlflowClient

    from benchmark.metrics import TAG_MODEL_URI

    if uri := MlflowClient().get_run(result.run_id).data.tags.get(TAG_MODEL_URI):
        print(f"model {uri} (python -m benchmark predict --model {uri} IMAGES...)")
    return 0


def _overrides(args: argparse.Namespace) -> dict:
    return {"epochs": args.epochs, "max_train_samples": args.max_train_samples}


def cmd_search(args: argparse.Namespace) -> int:
    from benchmark.data import DATASETS, is_builtin
    from benchmark.search import dry_run
    from benchmark.search.space import load_space, space_path
    from benchmark.train.tracking import prepare_tracking

    DATASETS.get(args.dataset)  # unknown dataset: say so before reading any file
    space = load_space(space_path(args.dataset, args.space), strategy=args.strategy)
    if space.dataset and space.dataset != args.dataset and is_builtin(args.dataset):
        raise UserError(f"{space.path} is a space for {space.dataset!r}, not {args.dataset!r}")
    if args.dry_run and space.strategy == "halving":
        from benchmark.search import plan_only

        plan_only(space, dataset=args.dataset, data_dir=args.data_dir,
                  overrides=_overrides(args), seeds=args.seeds,
                  budget_minutes=args.budget_minutes)  # fmt: skip
        return 0
    if args.dry_run:
        dry_run(space, dataset=args.dataset, data_dir=args.data_dir, overrides=_overrides(args),
                seeds=args.seeds, n_trials=args.n_trials)  # fmt: skip
        return 0
    tracking = prepare_tracking(args.experiment, dataset=args.dataset)
    return _run_search(
        space, args, tracking, n_trials=args.n_trials, timeout=args.timeout,
        max_epochs=args.max_epochs, budget_minutes=args.budget_minutes,
        warm_start=args.warm_start,
    )  # fmt: skip


def cmd_ablate(args: argparse.Namespace) -> int:
    from benchmark.augment import policy_names
    from benchmark.config import parse_param
    from benchmark.data import DATASETS
    from benchmark.search import ablation_space, best_of_latest_search
    from benchmark.search.ablation import VARY_DEFAULT, check_setting, part_values, same_step_rate
    from benchmark.train.tracking import prepare_tracking

    DATASETS.get(args.dataset)  # folder:PATH resolves too: its path is read when loading
    vary = args.vary or VARY_DEFAULT
    check_setting(vary)
    given = [parse_param(v.strip()) for v in args.values.split(",")] if args.values else None
    tracking = prepare_tracking(args.experiment, dataset=args.dataset)
    run_id, fixed = best_of_latest_search(args.dataset)
    if vary == "batch_size":
        fixed = same_step_rate(fixed)
    if vary == VARY_DEFAULT and given is None:
        values = policy_names()  # lab task 2: every policy
    else:
        values = part_values(fixed, vary, given)
    print(f"ablating the best run {run_id} of the latest {args.dataset} search, {vary} at "
          f"{', '.join(map(str, values))}: {fixed}")  # fmt: skip
    space = ablation_space(fixed, args.seeds or 1, values, vary=vary)
    from benchmark.metrics import TAG_VARY

    return _run_search(space, args, tracking, role="ablation", tags={TAG_VARY: vary})


def _run_search(space, args: argparse.Namespace, tracking, **extra) -> int:
    from benchmark.report.parent import ParentDescription
    from benchmark.search import run_search

    summary = run_search(
        space,
        dataset=args.dataset,
        data_dir=args.data_dir,
        storage=args.storage,
        study_name=args.study_name,
        seeds=args.seeds,
        overrides=_overrides(args),
        max_failures=args.max_failures,
        workers=args.workers or 1,
        describe=ParentDescription(),
        tracking=tracking,
        log_models=getattr(args, "log_models", None) or "all",
        printer=functools.partial(print, flush=True),
        **extra,
    )
    c = summary.counts
    print(
        f"study {summary.study_name} ({summary.storage}): {summary.stopped_reason}; "
        f"{c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed"
    )
    if medians := summary.median_timings():
        print("per trial, median s: " + "  ".join(f"{k} {v:.1f}" for k, v in medians.items()))
    if summary.best_params is not None:
        print(f"best {summary.best_params} val_accuracy {summary.best_value:.4f} "
              f"run {summary.best_run_id}")  # fmt: skip
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.report import write_reports
    from benchmark.train.tracking import Tracking

    # Under `mlflow run -e report` the command has a run of its own: say it is no trial.
    Tracking.from_env().mark_project_run("report")
    # The reports' headers name the command that wrote them (the tracking store left out:
    # a local path, or a database URL with its password).
    command = shlex.join(["python", "-m", "benchmark", "report", "--dataset", str(args.dataset),
                          "--out", str(args.out)])  # fmt: skip
    for path in write_reports(args.dataset, args.out, getattr(args, "tracking_uri", None),
                              command):  # fmt: skip
        print(path)
    return 0


def cmd_efficiency(args: argparse.Namespace) -> int:
    from benchmark.search.efficiency import TARGET_GAP_PP, compare
    from benchmark.train.tracking import prepare_tracking

    tracking = prepare_tracking(args.experiment, dataset=args.dataset)
    r = compare(args.dataset, args.space, args.data_dir, args.storage, args.n_trials, args.budget,
                args.replay, tracking=tracking)  # fmt: skip
    print(
        f"grid:   best val_accuracy {r['grid_best']:.4f}, {r['grid_trials']} trials, "
        f"{r['grid_epochs']} epochs\n"
        f"optuna: best val_accuracy {r['optuna_best']:.4f}, {r['optuna_trials']} trials, "
        f"{r['optuna_epochs']} epochs (pruning; budget {r['max_epochs']} epochs)\n"
        f"gap: {r['gap_pp']:+.2f} pp (target <= 1)\n"
        f"epoch ratio: {r['epoch_ratio']:.2f} (target <= 0.40)"
    )
    if args.replay:
        print(
            f"replay of optuna on the grid's curves, sampler seeds 0..{args.replay - 1} "
            f"(no training): within {TARGET_GAP_PP:g} pp in {r['replay_hits']} of "
            f"{args.replay}; median gap {r['replay_median_gap_pp']:+.2f} pp, median "
            f"{r['replay_median_epochs']:.0f} epochs"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmark.augment import build_augmentation
    from benchmark.bench import options as O
    from benchmark.bench import throughput
    from benchmark.data.upstream import DATA_ENV

    build_augmentation(args.augmentation)  # unknown policy: UserError before any work
    if args.gpu_check:
        from benchmark.bench.gpu_check import run_gpu_check

        return run_gpu_check(args)
    args.batch_size = args.batch_size or (O.PRECISION_BATCH if args.precision else O.BATCH)
    if args.dataset is None:
        has_dir = args.data_dir or os.environ.get(DATA_ENV)
        args.dataset = "cifar10" if has_dir or args.accuracy else O.SYNTHETIC
    if args.accuracy and args.dataset == O.SYNTHETIC:
        raise UserError("--accuracy needs real images: --dataset cifar10 and --data-dir")
    if args.accuracy:
        args.epochs = args.epochs or O.ACCURACY_EPOCHS
        throughput.run_accuracy(args)
    elif args.tracking:
        args.epochs = args.epochs or O.TRACKING_EPOCHS
        throughput.run_tracking(args)
    elif args.precision:
        from benchmark.bench.precision import run_precision

        run_precision(args)
    else:
        throughput.run_throughput(args)
    return 0


def cmd_retime(args: argparse.Namespace) -> int:
    from benchmark.bench.retime import retime
    from benchmark.report.load import tracking

    with tracking(args.tracking_uri):
        retime(args.dataset, args.top, args.data_dir)
    return 0
