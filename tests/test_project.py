"""The project's entry points as a user meets them: MLproject, conda.yaml, README commands."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from benchmark.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _pins(lines) -> list[str]:
    return sorted(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def test_conda_yaml_carries_the_same_pins_as_requirements():
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert _pins(pip) == _pins((REPO / "requirements.txt").read_text().splitlines())
    assert "python=3.11" in conda["dependencies"]


def test_every_mlproject_parameter_is_a_cli_option():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for entry, spec in project["entry_points"].items():
        command = spec["command"].split()
        sub = subparsers[command[3]]
        flags = {o for a in sub._actions for o in a.option_strings}
        for name in spec["parameters"]:
            flag = "--" + name.replace("_", "-")
            assert flag in flags, f"{entry}: {name}"
            assert f"{flag} {{{name}}}" in spec["command"], f"{entry}: {name} not passed on"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert any("mlflow run ." in b and "dataset=flowers17" in b for b in blocks)
    test_cmd = next(b for b in blocks if "pytest" in b and "pip install" in b)
    assert test_cmd in (REPO / ".ci" / "run").read_text()
