"""The command line: bad input is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_line(out: subprocess.CompletedProcess) -> str:
    lines = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert len(lines) == 1, out.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--dataset", "cifr10"], "unknown dataset 'cifr10'; known: cifar10, cifar100, flowers17"),
        (["--augmentation", "sheer"], "unknown augmentation 'sheer'; known: none, seed"),
        (["--model", "resnet"], "unknown model 'resnet'; known: cnn, seed"),
        (["--epochs", "0"], "`epochs` should be a positive integer. Received: epochs=0"),
        (["--depth", "7", "--padding", "valid"], "does not fit 32px images"),
    ],
)
def test_train_rejects_bad_input_in_one_line(tmp_path, shared_data, args, expected):
    out = cli("train", "--data-dir", str(shared_data), "--max-train-samples", "100",
              *(["--dataset", "cifar10"] if "--dataset" not in args else []), *args,
              cwd=tmp_path)  # fmt: skip
    assert expected in error_line(out)
    assert not list(tmp_path.glob("mlruns"))  # no file store appeared


def test_data_missing_offline_names_the_file(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    # KERAS_HOME is empty and the download cannot reach the host from a sandbox: a proxy that
    # refuses makes that certain even on a machine with internet.
    env = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    out = cli("train", "--dataset", "cifar100", "--data-dir", str(empty), cwd=tmp_path, env=env)
    line = error_line(out)
    assert "cifar-100-python.tar.gz" in line and "--data-dir" in line


def test_corrupt_archive_is_reported_not_raised(tmp_path, shared_data):
    data = tmp_path / "data"
    data.mkdir()
    blob = (shared_data / "cifar-10-python.tar.gz").read_bytes()[:1_000_000]
    (data / "cifar-10-python.tar.gz").write_bytes(blob)
    out = cli("train", "--dataset", "cifar10", "--data-dir", str(data), cwd=tmp_path)
    assert "cifar-10-python.tar.gz" in error_line(out)


def test_missing_data_dir(tmp_path):
    out = cli("train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nope"), cwd=tmp_path)
    assert "nope" in error_line(out)


def test_search_rejects_unknown_dataset_and_bad_space(tmp_path):
    assert "unknown dataset" in error_line(cli("search", "--dataset", "mnist", cwd=tmp_path))
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: {depth: {values: [2]}}\nfixd: {}\n")
    line = error_line(cli("search", "--dataset", "cifar10", "--space", str(bad), cwd=tmp_path))
    assert "unknown key fixd" in line
    assert not (tmp_path / "optuna.db").exists()  # nothing half-written


def test_train_end_to_end_prints_the_results(tmp_path, shared_data):
    out = cli("train", "--dataset", "cifar10", "--data-dir", str(shared_data), "--model", "seed",
              "--epochs", "1", "--max-train-samples", "200", "--quiet", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test_accuracy" in out.stdout and "overfit" in out.stdout
    assert "params 122,570" in out.stdout
