"""The package reads one way: no module imports, even lazily inside a function, a module that
imports it back (an import circle), so each stage can be read and tested without the next."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
        ".__init__"
    )


def import_graph() -> dict[str, set[str]]:
    """benchmark module -> the benchmark modules it imports anywhere in its body."""
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = _module_name(path)
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "benchmark" or node.module.startswith("benchmark."):
                    # from benchmark import argtypes: the module argtypes, not the package
                    subs = {f"{node.module}.{a.name}" for a in node.names} & modules
                    edges |= subs or {node.module}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("benchmark.")}
        edges.discard(name)
    return {
        k: {e for e in v if e in graph or e.rsplit(".", 1)[0] in graph} for k, v in graph.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# The data flow, in order: a module may import its own stage and earlier ones, never a later
# one. The settings layer (config, choices, presets, registry, errors, metrics, quiet,
# argtypes) is the top-level modules every stage shares.
STAGES = ("settings", "data", "augment", "models", "train", "search", "report", "bench", "cli")


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "cli"
    return parts[1] if parts[1] in STAGES else "settings"


def later_stage_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if STAGES.index(stage(b)) > STAGES.index(stage(a))
    )


def test_nothing_imports_from_a_later_stage():
    assert later_stage_imports(import_graph()) == []


def test_the_stage_check_catches_a_search_importing_the_report():
    graph = {"benchmark.search.driver": {"benchmark.report.build"}, "benchmark.config": set()}
    assert later_stage_imports(graph) == [("benchmark.search.driver", "benchmark.report.build")]


def test_every_stage_is_a_package_with_a_docstring_and_no_module_is_long():
    for name in STAGES[1:-1]:
        init = PACKAGE / name / "__init__.py"
        assert init.exists(), f"benchmark/{name}/ is not a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{name}/__init__.py: no docstring"
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}  # fmt: skip
    assert long == {}


def test_no_function_is_longer_than_a_screen_and_a_half():
    """A function reads top to bottom: none over 80 lines in benchmark/."""
    long = {
        f"{p.relative_to(PACKAGE)}:{node.name}": node.end_lineno - node.lineno + 1
        for p in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > 80
    }
    assert long == {}


# No hidden state (issue 31): what a function changes lives in an object it is given, or, where
# the state is truly the process's (signal handlers, patched classes), in one module-level
# object whose docstring says why; never in module globals rebound through `global`.
def global_statements(source: str, name: str = "<source>") -> list[str]:
    """`name:line` of each `global` statement in `source`."""
    return [f"{name}:{node.lineno}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Global)]  # fmt: skip


def test_no_module_rebinds_its_globals():
    found = [hit for p in sorted(PACKAGE.rglob("*.py"))
             for hit in global_statements(p.read_text(), str(p.relative_to(PACKAGE)))]  # fmt: skip
    assert found == []


def test_the_global_check_finds_a_global_statement():
    source = "_loaded = False\n\ndef load():\n    global _loaded\n    _loaded = True\n"
    assert global_statements(source) == ["<source>:4"]
    assert global_statements("# a global pool of workers\nx = 'global y'\n") == []


# Only Optuna's public API (issue 31): a trial's id comes from the storage by study name and
# trial number, its attributes from the storage or the study, never from the private fields
# of Optuna's Trial and Study objects (they change between versions without notice).
OPTUNA_PRIVATE = re.compile(r"\._(trial_id|storage|study_id)\b")


def optuna_private_uses(source: str, name: str = "<source>") -> list[str]:
    """`name:line: text` of each line of `source` that reads a private Optuna field."""
    return [f"{name}:{i}: {line.strip()}" for i, line in enumerate(source.splitlines(), 1)
            if OPTUNA_PRIVATE.search(line)]  # fmt: skip


def test_only_optunas_public_api():
    found = [hit for p in sorted(PACKAGE.rglob("*.py"))
             for hit in optuna_private_uses(p.read_text(), _module_name(p))]  # fmt: skip
    assert found == []


def test_the_optuna_check_finds_private_fields():
    source = "s = trial.study._storage\ni = trial._trial_id\nj = study._study_id\n"
    assert [h.split(":")[1] for h in optuna_private_uses(source)] == ["1", "2", "3"]
    assert optuna_private_uses("self._storage_url = store.get_trial(trial_id)\n") == []
