"""`python -m benchmark bench --precision`: what bf16 buys per model family on this CPU.

For each family (the CNN recipe's 4-block VGG-style net, the default `resnet`, ResNet-9's
half width, `resnet9`, its full width, and `keras:MobileNetV3Small`) the suite's training
step is timed in float32 and in mixed_bfloat16, built and fed as a trial does
(`throughput.suite_fit`), in one process, interleaved A B, B A, ... after a warm-up fit
each, so that the machine's other load hits both alike. The table gives each side's median
images/s; a family's speedup is the median of the per-repeat ratios.

Augmentation is off: the policies run in float32 either way, and the question is the
model's step. Where the CPU has no bfloat16 instructions (`avx512_bf16`, `amx_bf16` in
/proc/cpuinfo) TensorFlow emulates bf16 and it is slower than float32: the output says so,
and `--precision auto` trains such a CPU in float32 (benchmark/train/precision.py).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from benchmark.bench.throughput import (
    Timing,
    _machine,
    bench_data,
    interleaved,
    suite_fit,
    table,
)
from benchmark.config import TrialConfig
from benchmark.train.precision import BF16_FLAGS
from benchmark.train.runtime import cpu_flags

PRECISIONS = ("float32", "mixed_bfloat16")
FAMILIES: dict[str, dict[str, Any]] = {  # family -> the settings its benched net takes
    "cnn": {"depth": 4, "convs_per_block": 2, "filters_base": 32, "filters_max": 256,
            "batch_norm": True, "head": "gap", "dense_units": 0},  # the README's CIFAR best
    "resnet": {},  # its defaults: 64-128-256, residual blocks 1-0-1, head gmp (1.65M params)
    "resnet9": {"model": "resnet", "filters_base": 64,  # ResNet-9's full width (6.58M
                "stage_widths": "128-256-512"},  # params): the layout issue 30 measured
    "keras:MobileNetV3Small": {},  # the keras: family, the one the auto spaces search
}  # fmt: skip


def family_config(family: str, precision: str, args: argparse.Namespace) -> TrialConfig:
    """The benched net of `family` under `precision`, trained with SGD as the recipe does."""
    settings = {"model": family, **FAMILIES[family]}
    return TrialConfig.from_options(**settings, precision=precision,
                                    augmentation="none", optimizer="sgd", learning_rate=0.05,
                                    batch_size=args.batch_size, seed=args.seed,
                                    steps_per_execution=args.steps_per_execution)  # fmt: skip


def bf16_note(flags: frozenset[str]) -> str:
    """Whether this CPU computes bfloat16 in hardware, in one line for the output."""
    if flags & BF16_FLAGS:
        return f"CPU has {', '.join(sorted(flags & BF16_FLAGS))}: bf16 runs in hardware"
    return ("CPU lacks avx512_bf16 and amx_bf16: bf16 is emulated here and slower than "
            "float32; --precision auto trains in float32 on this CPU")  # fmt: skip


def speedup(base: Timing, other: Timing) -> tuple[float, float, float]:
    """Median, lowest and highest of the per-repeat ratios other / base of images/s."""
    pairs = sorted(b / a for a, b in zip(base.rates, other.rates, strict=True))
    return statistics.median(pairs), pairs[0], pairs[-1]


def run_precision(args: argparse.Namespace) -> dict[str, float]:
    """Print each family's float32 and mixed_bfloat16 images/s and the bf16 speedup;
    returns family -> speedup (median of the interleaved pairs)."""
    n = args.steps * args.batch_size
    x, y, n_classes, label = bench_data(args, n)
    print(
        f"bench --precision: {', '.join(PRECISIONS)} training steps per family on {label} "
        f"({n} images), batch {args.batch_size}, augmentation none, {args.steps} steps x "
        f"{args.repeats} repeats after a warm-up fit, interleaved\n{_machine()}\n"
        f"{bf16_note(cpu_flags())}",
        flush=True,
    )
    result = {}
    for family in args.families:
        runners = {
            f"{family} {p}": suite_fit(family_config(family, p, args), x, y, n_classes)
            for p in PRECISIONS
        }
        timings = interleaved(runners, args.repeats, n)
        print(table(timings))
        mid, lo, hi = speedup(*timings)
        print(f"{family}: bf16 speedup {mid:.2f} (range {lo:.2f}-{hi:.2f}, "
              f"{len(timings[0].rates)} interleaved pairs)", flush=True)  # fmt: skip
        result[family] = mid
    return result
