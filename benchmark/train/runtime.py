"""Facts about where a trial runs: device, versions, commit, thread counts and cores.

Tagged on every run so a number in a report leads back to the hardware and code behind it.
Where MLflow runs go is benchmark/train/tracking.py. TensorFlow is imported only by the
functions that need it: the report uses this module too and should not pay its start-up.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path


@functools.cache
def gpu_name() -> str | None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", gpus[0].name)


@functools.cache
def device_name() -> str:
    """GPU name where there is one, else the CPU model and its core count."""
    if gpu := gpu_name():
        return f"GPU: {gpu}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model} x{os.cpu_count()}"


@functools.cache
def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (`avx512_bf16`, `amx_bf16`, ...) from /proc/cpuinfo's first
    `flags` line (x86 Linux), or `cpuinfo`'s; empty where there is none to read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def trial_threads() -> int | None:
    """The thread count this trial process was given (`--workers N`), or None: TF's default."""
    from benchmark.quiet import THREADS_ENV

    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def configure_threads() -> None:
    """Cap TensorFlow's thread pools at trial_threads(), and let trials that share a GPU
    grow their memory instead of each taking all of it. Call before TF runs an op."""
    import tensorflow as tf

    try:
        if (threads := trial_threads()) is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # TF already initialised (an op ran): its pools stay as they are
        pass


def pin_to_cores(cores: tuple[int, ...]) -> None:
    """Run every thread of this process (TensorFlow's pools were started by the warm-up)
    and the threads they start on `cores` only: N trials on one machine then share its
    cores without changing their thread counts, hence their numbers."""
    tasks = Path("/proc/self/task")
    if not hasattr(os, "sched_setaffinity") or not tasks.is_dir():
        return  # not Linux: trials share the cores as the OS schedules them
    for tid in tasks.iterdir():
        try:
            os.sched_setaffinity(int(tid.name), cores)
        except (OSError, ValueError):  # a thread that ended meanwhile
            pass


def jit_compile() -> bool | str:
    """XLA only where it pays: measured 2-3x slower on this CPU, Keras decides on a GPU."""
    return "auto" if gpu_name() else False


@functools.cache
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def version_tags() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "device": device_name(),
        "git_commit": git_commit(),
    } | ({"gpu_name": gpu} if (gpu := gpu_name()) else {})
