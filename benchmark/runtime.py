"""Facts about where a trial runs: device, versions, commit; and the tracking store.

Tagged on every run so a number in a report leads back to the hardware and code behind it.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import keras
import mlflow
import tensorflow as tf

from benchmark.errors import UserError

DEFAULT_EXPERIMENT = "cnn-benchmark"


@functools.cache
def gpu_name() -> str | None:
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
    return {
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "device": device_name(),
        "git_commit": git_commit(),
    }


def prepare_tracking(experiment: str | None = None) -> str:
    """Point MLflow at its store and check it answers, before any training starts.

    Default store: ./mlflow.db (SQLite); MLFLOW_TRACKING_URI wins. Under `mlflow run` the
    run already exists (MLFLOW_RUN_ID) and its experiment is kept.
    """
    uri = mlflow.get_tracking_uri()
    # Fail in seconds, not after MLflow's minutes of retries with backoff.
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    saved = {k: os.environ.get(k) for k in quick}
    os.environ.update({k: v for k, v in quick.items() if saved[k] is None})
    try:
        if not os.environ.get("MLFLOW_RUN_ID"):
            mlflow.set_experiment(
                experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
            )
        else:
            mlflow.search_experiments(max_results=1)
    except Exception as exc:  # any failure here means "cannot track", whatever its type
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"MLflow tracking store {uri!r} is unreachable ({first[:160]}); "
            "check MLFLOW_TRACKING_URI"
        ) from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
    return uri
