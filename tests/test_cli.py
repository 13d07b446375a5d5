"""The command line: bad input is one line on stderr and exit code 2, never a traceback.

The CLI is called in-process (`benchmark.cli.main(argv)`, what `python -m benchmark` runs);
only `--help` starts a process, because what it must not import is the point there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """`python -m benchmark ARGS` in this process: its exit code, stdout and stderr."""
    from benchmark.cli import main

    def run(*args: str) -> Outcome:
        capsys.readouterr()  # drop what came before
        code = main(list(args))
        out, err = capsys.readouterr()
        return Outcome(code, out, err)

    return run


def error_line(out: Outcome) -> str:
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
        (
            ["--model", "resnt"],
            "unknown model 'resnt'; known: cnn, seed, resnet, keras:NAME; did you mean 'resnet'?",
        ),
        (["--epochs", "0"], "`epochs` should be a positive integer. Received: epochs=0"),
        (["--depth", "7", "--padding", "valid"], "does not fit 32px images"),
    ],
)
def test_train_rejects_bad_input_in_one_line(cli, tmp_path, shared_data, args, expected):
    out = cli("train", "--data-dir", str(shared_data), "--max-train-samples", "100",
              *(["--dataset", "cifar10"] if "--dataset" not in args else []), *args)  # fmt: skip
    assert expected in error_line(out)
    assert not list(tmp_path.glob("mlruns"))  # no file store appeared


def test_data_missing_offline_names_the_file(cli, tmp_path, monkeypatch):
    import urllib.request

    empty = tmp_path / "data"
    empty.mkdir()
    # KERAS_HOME is empty and the download cannot reach the host from a sandbox: a proxy that
    # refuses makes that certain even on a machine with internet. urllib reads the proxy
    # variables when it builds its opener: no opener built earlier in this process is kept.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setattr(urllib.request, "_opener", None)
    out = cli("train", "--dataset", "cifar100", "--data-dir", str(empty))
    line = error_line(out)
    assert "cifar-100-python.tar.gz" in line and "--data-dir" in line


def test_corrupt_archive_is_reported_not_raised(cli, tmp_path, shared_data):
    data = tmp_path / "data"
    data.mkdir()
    blob = (shared_data / "cifar-10-python.tar.gz").read_bytes()[:1_000_000]
    (data / "cifar-10-python.tar.gz").write_bytes(blob)
    out = cli("train", "--dataset", "cifar10", "--data-dir", str(data))
    assert "cifar-10-python.tar.gz" in error_line(out)


def test_missing_data_dir(cli, tmp_path):
    out = cli("train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nope"))
    assert "nope" in error_line(out)


def test_search_rejects_unknown_dataset_and_bad_space(cli, tmp_path):
    assert "unknown dataset" in error_line(cli("search", "--dataset", "mnist"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: {depth: {values: [2]}}\nfixd: {}\n")
    line = error_line(cli("search", "--dataset", "cifar10", "--space", str(bad)))
    assert "unknown key fixd" in line
    assert not (tmp_path / "optuna.journal").exists()  # nothing half-written


def test_train_end_to_end_prints_the_results(cli, shared_data):
    out = cli("train", "--dataset", "cifar10", "--data-dir", str(shared_data), "--model", "seed",
              "--epochs", "1", "--max-train-samples", "200", "--quiet")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test_accuracy" in out.stdout and "overfit" in out.stdout
    assert "params 122,570" in out.stdout
    assert "model models:/m-" in out.stdout  # the trial's logged model, for predict


# --- help, value errors, the `mlflow run` form (no TensorFlow: each takes well under a second)

HELP_SCRIPT = """
import contextlib, io, json, sys
from benchmark.cli import main
out = {}
for cmd in ([], ["train"], ["search"], ["ablate"], ["report"], ["efficiency"], ["bench"],
            ["predict"], ["retime"]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main([*cmd, "--help"])
    out[" ".join(cmd) or "main"] = (code, buf.getvalue())
heavy = [m for m in ("tensorflow", "keras", "mlflow", "pandas") if m in sys.modules]
print(json.dumps({"help": out, "heavy": heavy}))
"""


def test_help_lists_allowed_values_and_an_example_without_tensorflow(tmp_path):
    import json

    from benchmark import choices
    from benchmark.search.space import STRATEGIES

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", HELP_SCRIPT], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""  # not one start-up line
    result = json.loads(out.stdout)
    assert result["heavy"] == []  # --help never imports TensorFlow (nor MLflow, pandas)
    helps = {cmd: " ".join(text.split()) for cmd, (code, text) in result["help"].items()}
    assert all(code == 0 for code, _ in result["help"].values())
    assert all("example" in text and "python -m benchmark" in text for text in helps.values())
    for field in choices.CHOICES:  # every enumerated setting lists its values
        assert f"one of: {choices.known(field)}" in helps["train"], field
    for cmd in ("search", "ablate", "efficiency", "retime"):
        assert f"one of: {choices.known('dataset')}" in helps[cmd]
    assert f"one of: {', '.join(STRATEGIES)}" in helps["search"]
    assert "one of: all, best, none" in helps["search"] and "--log-models" in helps["ablate"]
    assert "models:/cnn-benchmark-flowers17@champion" in helps["predict"]
    assert f"one of: {choices.known('dataset', ('all',))}" in helps["report"]
    assert f"one of: {', '.join(choices.AUGMENTATIONS)}" in helps["bench"]
    assert all(cmd in helps["main"] for cmd in ("train", "search", "report", "mlflow run"))


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["train", "--learning-rate", "abc"], "error: --learning-rate abc: expected a number"),
        (["train", "--epochs", "2.5"], "error: --epochs 2.5: expected an integer"),
        (["train", "--batch-norm", "maybe"], "error: --batch-norm maybe: expected true or false"),
        (["train", "--optimizer", "adm"], "did you mean 'adam'?"),
        (["train", "--padding", "smae"], "unknown padding 'smae'; known: valid, same; did you"),
        (["train", "--augmentation", "sheer"], "unknown augmentation 'sheer'; known: none, seed"),
        (["search", "--dataset", "flowers71"], "did you mean 'flowers17'?"),
        (["search", "--dataset", "cifar10", "--strategy", "optna"], "did you mean 'optuna'?"),
        (["search", "--dataset", "cifar10", "--dry-run", "maybe"], "--dry-run maybe: expected"),
        (["report", "--dataset", "cifar"], "known: all, cifar10, cifar100, flowers17"),
        (["efficiency", "--budget", "half"], "error: --budget half: expected a number"),
        (["bench", "--steps", "0"], "error: --steps 0: expected a positive integer"),
        (["serch"], "unknown command 'serch'; known: train, search"),
        (["search"], "the following arguments are required: --dataset"),
        (["train", "--lerning-rate", "0.1"], "did you mean '--learning-rate'?"),
    ],
)
def test_bad_values_are_one_line_with_did_you_mean(capsys, argv, expected):
    from benchmark.cli import main

    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0]
    assert captured.out == ""


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["train", "--learning-rate", "abc"], "error: -P learning_rate=abc: expected a number"),
        (["search"], "required: -P dataset=..."),
        (["train", "--lerning_rate", "0.1"],  # an undeclared -P as MLflow passes it on
         "error: unknown parameters: -P lerning_rate=0.1; did you mean 'learning_rate'?"),
    ],
)  # fmt: skip
def test_under_mlflow_run_messages_name_the_parameter_form(monkeypatch, capsys, argv, expected):
    from benchmark.cli import main

    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)  # what `mlflow run` sets for its command
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0]


def test_parameter_form_rewrites_only_the_commands_own_options():
    from benchmark.cli import as_mlflow_parameters

    options = {"--data-dir", "--dataset"}
    text = "put the archive in a directory and pass --data-dir DIR (--dataset; --experiment-name)"
    assert as_mlflow_parameters(text, options) == (
        "put the archive in a directory and pass -P data_dir=DIR (-P dataset=...; "
        "--experiment-name)"
    )


def test_underscored_options_as_mlflow_passes_them_are_accepted():
    from benchmark.cli import _dashes, build_parser

    args = build_parser().parse_args(_dashes(["search", "--dataset", "cifar10", "--n_trials=3"]))
    assert args.n_trials == 3
