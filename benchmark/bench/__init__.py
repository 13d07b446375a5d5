"""`python -m benchmark bench`: the measurements behind the README's Performance section.

    options.py     the CLI options and their defaults (no TensorFlow: `bench --help` is fast)
    throughput.py  the seed notebook's loop vs the suite's (throughput, accuracy, tracking)
    gpu_check.py   --gpu-check: does the GPU path keep a GPU busy?
    precision.py   --precision: float32 vs mixed_bfloat16 per family, interleaved
    retime.py      `python -m benchmark retime`: the store's configurations re-measured quietly

May import every stage before the search; nothing imports it but the CLI and tests.
"""

from __future__ import annotations

from benchmark.lazy import lazy_names

_WHERE = {
    "NOTEBOOK": "throughput",
    "SUITE": "throughput",
    "run_throughput": "throughput",
    "run_accuracy": "throughput",
    "run_tracking": "throughput",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
