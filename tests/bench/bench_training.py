"""Training throughput of the seed notebook's loop (a) and the suite's (b), seed net, batch 32.

Run with `python -m pytest tests/bench/bench_training.py --benchmark-only`. Each round is one
epoch of STEPS steps on the same synthetic 32x32x3 images; a warm-up round (tracing) is not
timed. `python -m benchmark bench` gives the same comparison interleaved in one process,
which is the fairer reading on a loaded machine; extra_info holds images/s and the median
round's CPU ms/image (this process's CPU time: other load moves it far less than wall time).
"""

from __future__ import annotations

import statistics
import time

import pytest

from benchmark.bench.throughput import notebook_fit, suite_fit, synthetic_data
from benchmark.config import TrialConfig

STEPS = 100  # steps per round
BATCH = 32  # the notebook's default batch size
PIPELINES = {"a_notebook": notebook_fit, "b_suite": suite_fit}  # b: the trial engine's path


@pytest.mark.parametrize("augmentation", ["seed", "none"])
@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_train_steps(benchmark, pipeline, augmentation):
    x, y = synthetic_data(STEPS * BATCH)
    cfg = TrialConfig.from_options(model="seed", augmentation=augmentation, batch_size=BATCH)
    fit = PIPELINES[pipeline](cfg, x, y, 10)
    cpu: list[float] = []

    def timed_fit():
        start = time.process_time()
        fit()
        cpu.append(time.process_time() - start)

    benchmark.pedantic(timed_fit, rounds=3, iterations=1, warmup_rounds=1)
    if benchmark.stats:  # None under --benchmark-disable (CI: one call, nothing timed)
        benchmark.extra_info["images_per_s"] = len(x) / benchmark.stats.stats.median
        timed = cpu[1:]  # the warm-up round (tracing) came first
        benchmark.extra_info["cpu_ms_per_image"] = 1000 * statistics.median(timed) / len(x)
        benchmark.extra_info["steps"] = STEPS
