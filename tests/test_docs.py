"""README.md and docs/*.md say only what is true of this repository: every path they name
exists, every `python -m benchmark` command they show parses with the CLI's own parser (parsed,
never run), every `mlflow run .` command names an entry point and parameters MLproject has
(and the command MLproject builds from it parses too), the README stays short, every docs page
is linked from it, and its test command is the one CI runs (`.ci/run`).

Fast: no training, no MLflow, no TensorFlow (the parser imports neither).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from benchmark.cli.options import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 250
# Commands being built on other branches: shown in the docs as what comes next. Skipped while
# the parser lacks them, parsed like any other once it has them.
PENDING = {"predict"}

# A repository path: one of the project's top-level folders followed by a path, or a top-level
# file; never part of a longer word (`cnn-benchmark/flowers17` is an experiment name).
TOP_FOLDERS = ("benchmark", "tests", "search_spaces", "reports", "docs", ".ci")
TOP_FILES = ("MLproject", "conda.yaml", "requirements.txt", "pyproject.toml", "README.md")
PATH = re.compile(
    r"(?<![\w./~:-])("
    + "|".join(re.escape(f) + r"/(?:[\w./-]*[\w/])?" for f in TOP_FOLDERS)
    + "|"
    + "|".join(re.escape(f) for f in TOP_FILES)
    + r")(?:::(\w+))?(?![\w-])"
)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# mlflow run's own options that take a value (the rest of its options are not shown).
MLFLOW_RUN_VALUED = {"--env-manager", "--experiment-name", "--experiment-id", "--run-name"}


def rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def code_of(text: str) -> list[str]:
    """The fenced blocks (line continuations joined) and the inline code spans of `text`."""
    blocks = [b.replace("\\\n", " ") for b in FENCE.findall(text)]
    prose = FENCE.sub("", text)
    return blocks + [m.group(2).strip() for m in SPAN.finditer(prose)]


def commands_in(code: str) -> list[list[str]]:
    """Each shell command in a piece of code, as argv: lines split, comments dropped, chains
    (`&&`, `||`, `;`, `|`) cut apart, leading `VAR=value` assignments dropped."""
    out = []
    for line in code.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # prose in a code span, not a command
            continue
        cmd: list[str] = []
        for w in [*words, "&&"]:
            if w in ("&&", "||", ";", "|"):
                while cmd and re.fullmatch(r"[A-Za-z_]\w*=.*", cmd[0]):
                    cmd.pop(0)
                if cmd:
                    out.append(cmd)
                cmd = []
            else:
                cmd.append(w)
    return out


def shown(kind: str) -> list[tuple[str, list[str]]]:
    """(page, argv) of every command of `kind` ("benchmark" or "mlflow") the pages show."""
    found = []
    for page in PAGES:
        for code in code_of(page.read_text()):
            for argv in commands_in(code):
                if kind == "benchmark" and argv[:3] in (
                    ["python", "-m", "benchmark"],
                    ["python3", "-m", "benchmark"],
                ):
                    found.append((rel(page), argv[3:]))
                elif kind == "mlflow" and argv[:3] == ["mlflow", "run", "."]:
                    found.append((rel(page), argv[2:]))  # `mlflow run` alone names the tool
    return found


def named_paths() -> list[tuple[str, str, str | None]]:
    """(page, path, test function or None) for every repository path in a code span or block."""
    found = []
    for page in PAGES:
        for code in code_of(page.read_text()):
            for m in PATH.finditer(code):
                found.append((rel(page), m.group(1), m.group(2)))
    return found


def linked() -> list[tuple[str, str]]:
    """(page, target) of every relative markdown link or image, anchors dropped."""
    found = []
    for page in PAGES:
        for target in LINK.findall(FENCE.sub("", page.read_text())):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            found.append((rel(page), target.split("#")[0]))
    return found


def parse_error(argv: list[str]) -> str | None:
    """None when the project's parser accepts `argv`, else why not (parsed, never run)."""
    parser = build_parser()
    if argv and argv[0] in PENDING and argv[0] not in parser.commands:
        pytest.skip(f"`{argv[0]}` is being built on another branch")
    if "--help" in argv or "-h" in argv:
        ok = argv[0] in parser.commands
        return None if ok else f"no command {argv[0]!r}"
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        return f"rejected (exit {exc.code}); see the captured stderr"
    return None


def mlproject_error(args: list[str]) -> str | None:
    """None when `mlflow run <args>` names MLproject's entry point and parameters and the
    command MLproject builds from them parses, else why not."""
    if not args or args[0] != ".":
        return "not `mlflow run .`"
    entry, params, rest = "main", {}, args[1:]
    while rest:
        opt = rest.pop(0)
        if opt in ("-e", "--entry-point"):
            entry = rest.pop(0)
        elif opt in ("-P", "--param-list"):
            name, sep, value = rest.pop(0).partition("=")
            if not sep:
                return f"-P {name} has no '=value'"
            params[name] = value
        elif opt in MLFLOW_RUN_VALUED:
            rest.pop(0)
        else:
            return f"option {opt!r} is not one the docs are meant to show"
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    points = project["entry_points"]
    if entry not in points:
        return f"no entry point {entry!r} in MLproject (has: {', '.join(points)})"
    declared = points[entry].get("parameters") or {}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        return f"entry point {entry!r} has no parameter(s) {unknown}"
    values = {}
    for name, spec in declared.items():
        if name in params:
            values[name] = params[name]
        elif isinstance(spec, dict) and "default" in spec:
            values[name] = str(spec["default"])
        else:
            return f"entry point {entry!r} needs -P {name}=..."
    argv = shlex.split(points[entry]["command"].format(**values))
    if argv[:3] != ["python", "-m", "benchmark"]:
        return None  # not ours to parse
    why = parse_error(argv[3:])
    return f"MLproject's command {argv} {why}" if why else None


def test_the_pages_are_found_and_show_commands_and_paths():
    """The collectors see what the pages hold (a broken regex must not pass every test)."""
    assert (ROOT / "docs").is_dir() and len(PAGES) >= 4
    subcommands = {argv[0] for _, argv in shown("benchmark") if argv}
    assert {"train", "search", "report", "ablate"} <= subcommands
    assert any(p == "README.md" for p, _ in shown("mlflow"))
    assert len(named_paths()) >= 20 and linked()


@pytest.mark.parametrize(("page", "path", "test"), named_paths(),
                         ids=lambda v: v if isinstance(v, str) else "")  # fmt: skip
def test_every_named_path_exists(page, path, test):
    where = ROOT / path
    assert where.exists(), f"{page} names {path}, which is not in the repository"
    if test:  # tests/test_x.py::test_name
        assert re.search(rf"^def {test}\(", where.read_text(), re.M), f"{page}: no {path}::{test}"


@pytest.mark.parametrize(("page", "target"), linked(), ids=lambda v: v)
def test_every_link_leads_to_a_file(page, target):
    assert ((ROOT / page).parent / target).exists(), f"{page} links to {target}: not there"


@pytest.mark.parametrize(("page", "argv"), shown("benchmark"),
                         ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else v)  # fmt: skip
def test_every_benchmark_command_parses(page, argv):
    why = parse_error(argv)
    assert why is None, f"{page}: `python -m benchmark {shlex.join(argv)}` {why}"


@pytest.mark.parametrize(("page", "args"), shown("mlflow"),
                         ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else v)  # fmt: skip
def test_every_mlflow_run_matches_mlproject(page, args):
    why = mlproject_error(list(args))
    assert why is None, f"{page}: `mlflow run {shlex.join(args)}`: {why}"


def test_code_spans_stay_on_one_line():
    """A span cut by a line break pairs the wrong backticks, and its command goes unchecked."""
    broken = [
        f"{rel(page)}:{n}: {line.strip()[:70]}"
        for page in PAGES
        for n, line in enumerate(FENCE.sub("", page.read_text()).splitlines(), 1)
        if line.replace("``", "").count("`") % 2
    ]
    assert not broken, "code span across lines (line numbers outside code blocks):\n" + "\n".join(
        broken
    )


def test_readme_results_are_the_committed_summaries():
    """Each row of README's results table says what `reports/<dataset>.json` holds, its
    `best` and its `best_by_hand` (a report regenerated with another best configuration must
    be followed by the README)."""
    results = README.read_text().split("## Results", 1)[1].split("\n## ", 1)[0]
    summaries = sorted((ROOT / "reports").glob("*.json"))
    assert summaries
    for path in summaries:
        doc = json.loads(path.read_text())
        for key, start in (("best", f"| {path.stem},"), ("best_by_hand", f"| {path.stem} by hand")):
            if doc.get(key) is None:
                continue
            row = next((r for r in results.splitlines() if r.startswith(start)), "")
            missing = [c for c in _result_cells(doc[key]) if c not in row]
            assert not missing, f"README's {start} row lacks {missing} from {path.name} {key}"
            assert doc[key]["command_offline"] in results, f"README lacks {path.name}'s {key}"


def _result_cells(best: dict) -> list[str]:
    """What a results row shows of a summary (no flip TTA logged: a dash)."""
    test, tta = best["test_accuracy"], best.get("test_accuracy_tta")
    return [
        f"`{best['run_name']}`",
        f"| {best['epochs']} |",
        f"{best['val_accuracy']['mean']:.3f}",
        f"{test['mean']:.3f} ± {test['std']:.3f}",
        f"| {tta['mean']:.3f} |" if tta else "| — |",
        f"{best['train_time_s']['mean']:,.0f}",
    ]


def test_readmes_report_excerpt_is_the_committed_report():
    """The quoted first screen says what reports/flowers17.md says: each quoted paragraph
    (rewrapped) and each table row is in the report as it stands."""
    text = README.read_text()
    quoted = [line[2:] if line.startswith("> ") else "" for line in text.splitlines()
              if line.startswith(">")]  # fmt: skip
    report = (ROOT / "reports" / "flowers17.md").read_text()
    flat = " ".join(report.split())
    assert quoted, "README quotes no report"
    for paragraph in "\n".join(quoted).split("\n\n"):
        rows = [r for r in paragraph.splitlines() if r.startswith("|")]
        prose = " ".join(r for r in paragraph.splitlines() if not r.startswith("|"))
        assert all(r in report for r in rows), rows
        assert " ".join(prose.split()) in flat, prose


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines (at most {MAX_README_LINES})"


def test_readme_links_every_docs_page():
    targets = {Path(t).name for p, t in linked() if p == "README.md"}
    orphans = [rel(p) for p in PAGES[1:] if p.name not in targets]
    assert not orphans, f"README.md does not link {orphans}"


def test_readme_test_command_is_what_ci_runs():
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if "pytest" in line and not line.lstrip().startswith("#")
    ]
    readme = [
        line.strip()
        for block in FENCE.findall(README.read_text())
        for line in block.splitlines()
        if "pytest" in line and line.startswith("python3 -m venv")
    ]
    assert len(ci) == 1, f".ci/run should run one test command, has {ci}"
    assert readme == ci, f"README's test command {readme} differs from .ci/run's {ci}"


@pytest.mark.parametrize("bad", [
    ["search", "--dataset", "flowers17", "--strategy", "bisect"],
    ["train", "--dataset", "flowers17", "--epochs", "zero"],
    ["train", "--dataset", "flowers17", "--augmentation", "sepia"],
    ["search", "--dataset", "flowers17", "--no-such-option", "1"],
])  # fmt: skip
def test_the_parse_check_rejects_a_bad_command(bad):
    assert parse_error(bad) is not None


def test_the_mlproject_check_rejects_a_bad_run():
    assert mlproject_error([".", "-P", "datset=flowers17"]) is not None
    assert mlproject_error([".", "-e", "nope"]) is not None
    assert mlproject_error([".", "-P", "dataset=flowers17", "-P", "epochs=zero"]) is not None
    assert mlproject_error([".", "--env-manager", "local", "-P", "dataset=flowers17"]) is None


def test_the_path_finder_reads_paths_as_written():
    code = "`benchmark/train/runtime.py`, `reports/<dataset>.md`, not `cnn-benchmark/flowers17`"
    assert [m.group(1) for m in PATH.finditer(code)] == ["benchmark/train/runtime.py", "reports/"]
    assert not PATH.search("~/benchmark/x, ../shared/data, models:/cnn-benchmark-flowers17")
    m = PATH.search("tests/test_docs.py::test_readme_is_short")
    assert m and m.group(2) == "test_readme_is_short"


def test_the_screenshot_script_loads_and_says_how_to_run_it():
    """docs/screenshots.py refreshes the UI pictures (it needs Debian's chromium, which CI
    lacks): at least it must load and parse its options, or it rots unseen."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "docs" / "screenshots.py"), "--help"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--dataset" in out.stdout and "--out" in out.stdout
