"""The pytest-benchmark suite in tests/bench cannot rot: it collects (its imports resolve), and
CI, which runs the README's test command, runs it once with benchmarks disabled."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_benchmark_suite_collects():
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/bench"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert re.search(r"\b13 tests collected\b", out.stdout), out.stdout[-2000:]


def test_ci_runs_the_benchmark_suite_disabled():
    readme = (REPO / "README.md").read_text()
    test_cmd = next(b for b in re.findall(r"```bash\n(.*?)\n```", readme, re.S) if "pytest" in b)
    assert "python -m pytest -q tests/bench --benchmark-disable" in test_cmd
    assert test_cmd in (REPO / ".ci" / "run").read_text()
