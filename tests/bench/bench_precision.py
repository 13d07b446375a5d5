"""Training throughput in float32 against mixed_bfloat16, per family (issue 30's bf16 speedup).

Run with `python -m pytest tests/bench/bench_precision.py --benchmark-only`. Each round is one
epoch of STEPS steps of the suite's training path on synthetic 32x32x3 images, augmentation
off; extra_info holds images/s and whether this CPU has bf16 instructions (without them bf16
is emulated and slower: measure on an avx512_bf16 or AMX CPU). `python -m benchmark bench
--precision` gives the same comparison interleaved in one process, the fairer reading.
CI runs this once, tiny, with --benchmark-disable (nothing timed): the path must work.
"""

from __future__ import annotations

import argparse

import pytest

from benchmark.bench.precision import FAMILIES, PRECISIONS, family_config
from benchmark.bench.throughput import suite_fit, synthetic_data
from benchmark.train.precision import BF16_FLAGS
from benchmark.train.runtime import cpu_flags

STEPS = 20  # steps per round
BATCH = 64  # issue 30 measured bf16 at batch 64


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_train_steps_by_precision(benchmark, family, precision):
    disabled = benchmark.disabled  # CI: one call, nothing timed: make it tiny
    steps, batch = (1, 2) if disabled else (STEPS, BATCH)
    x, y = synthetic_data(steps * batch)
    args = argparse.Namespace(batch_size=batch, seed=0, steps_per_execution=None)
    fit = suite_fit(family_config(family, precision, args), x, y, 10)
    benchmark.pedantic(fit, rounds=3, iterations=1, warmup_rounds=1)
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["images_per_s"] = len(x) / benchmark.stats.stats.median
        benchmark.extra_info["bf16_in_hardware"] = bool(cpu_flags() & BF16_FLAGS)
