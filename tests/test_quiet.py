"""TensorFlow's C++ start-up lines stay off the terminal; anything else it writes does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.quiet import is_noise

REPO = Path(__file__).resolve().parents[1]

STARTUP = [  # TF 2.21 on a machine without a GPU, before absl::InitializeLog()
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1795836073.340799    3223 port.cc:153] oneDNN custom operations are on.\n",
    "I0000 00:00:1795836073.341116    3223 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.\n",
    "W0102 12:00:01.000001    3223 some.cc:1] a warning\n",
    "E0000 00:00:1795836076.573436    3223 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow "
    "with the appropriate compiler flags.\n",
]
KEPT = [
    "E0000 00:00:1795836076.573436    3223 some_op.cc:12] a real error\n",
    "/x/keras/src/layers/core.py:12: UserWarning: Do not pass an `input_shape`\n",
    "Traceback (most recent call last):\n",
]


@pytest.mark.parametrize("line", STARTUP)
def test_startup_lines_are_noise(monkeypatch, line):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    assert is_noise(line)


@pytest.mark.parametrize("line", KEPT)
def test_errors_and_python_warnings_are_kept(monkeypatch, line):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    assert not is_noise(line)


def test_a_user_asking_for_every_log_line_gets_them(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert not is_noise(STARTUP[1]) and not is_noise(STARTUP[4])


def test_importing_tensorflow_the_projects_way_prints_nothing(tmp_path):
    """A fresh process, as the CLI and every trial process start: not one start-up line."""
    code = "from benchmark.quiet import import_tensorflow; import_tensorflow(); print('ok')"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={**env, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr[-3000:]
    assert out.stderr == ""


RETRACING = (  # as a lab's cost probes printed it
    "5 out of the last 29 calls to <function TensorFlowTrainer._make_function.<locals>."
    "multi_step_on_iterator at 0x7fc64a8d8400> triggered tf.function retracing. "
    "Tracing is expensive ..."
)


def test_the_probes_retracing_warning_is_dropped_and_other_warnings_kept(caplog):
    """The dry run's probes fit several models in one process: TensorFlow's retracing
    warning for that is not the user's problem; any other TensorFlow warning still shows,
    and after the probes the retracing warning shows again."""
    import logging

    from benchmark.quiet import no_retracing_warning

    tf_logger = logging.getLogger("tensorflow")  # what tf.get_logger() returns
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        with no_retracing_warning():
            tf_logger.warning(RETRACING)
            tf_logger.warning("a real TensorFlow warning")
        assert [r.getMessage() for r in caplog.records] == ["a real TensorFlow warning"]
        tf_logger.warning(RETRACING)
    assert caplog.records[-1].getMessage() == RETRACING
