"""Import rules of the package layout, read from the source (no module is imported).

- Only ``cli`` and the training code itself import ``tissuebert.train``: the way from a checkpoint
  to proportions goes through ``tissuebert.inference`` and never into the training loop.
- ``deconvolve`` imports nothing from ``evaluate``: deconvolution needs the model's likelihoods,
  not the evaluation of a split.
- No import cycle between the packages (and top-level modules) of ``tissuebert``.

Every import counts, lazy ones inside functions included: they run as soon as the function does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tissuebert"
MAY_IMPORT_TRAIN = {"train", "cli"}


def imported_modules(source: str, module: str) -> set[str]:
    """Every ``tissuebert.*`` module the source of ``module`` (dotted, "tissuebert.a.b") imports."""
    found = set()
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = ".".join(package[:len(package) - node.level] + ([base] if base else []))
            found.add(base)
            # ``from tissuebert import train`` imports the package tissuebert.train
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("tissuebert.")}


def unit_of(dotted: str) -> str:
    """The top-level package or module a dotted name belongs to: tissuebert.train.loop -> train."""
    return dotted.split(".")[1]


def source_modules() -> dict[str, set[str]]:
    """Dotted module name -> the tissuebert modules it imports, for every file under src/tissuebert."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = ("tissuebert",) + path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        out[module] = imported_modules(path.read_text(encoding="utf-8"), module if path.name != "__init__.py"
                                       else module + ".__init__")
    return out


def unit_graph(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Top-level unit -> the other units it imports (tissuebert/__init__ and __main__ left out)."""
    units = {unit_of(m) for m in modules if m.count(".") >= 1} - {"__main__"}
    graph: dict[str, set[str]] = {u: set() for u in units}
    for module, imports in modules.items():
        if module.count(".") < 1 or unit_of(module) == "__main__":
            continue
        graph[unit_of(module)].update(unit_of(i) for i in imports if unit_of(i) in units)
    for unit, targets in graph.items():
        targets.discard(unit)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.fixture(scope="module")
def modules() -> dict[str, set[str]]:
    return source_modules()


def test_the_scan_sees_imports(modules):
    # the rules below would pass vacuously on a scan that found nothing
    assert "tissuebert.train.loop" in modules and "tissuebert.inference.checkpoint" in modules
    assert "tissuebert.train" in modules["tissuebert.cli.cmd_train"]  # a lazy import inside a function
    assert "tissuebert.inference.checkpoint" in modules["tissuebert.train.loop"]
    assert imported_modules("from tissuebert import train\n", "tissuebert.x.y") >= {"tissuebert.train"}
    assert imported_modules("from ..train import loop\n", "tissuebert.deconvolve.run") >= {"tissuebert.train.loop"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_cli_and_training_import_train(modules):
    offenders = sorted(f"{module} imports {imp}" for module, imports in modules.items()
                       if module.count(".") >= 1 and unit_of(module) not in MAY_IMPORT_TRAIN
                       for imp in imports if imp == "tissuebert.train" or imp.startswith("tissuebert.train."))
    assert offenders == [], "only cli/ and train/ may import tissuebert.train:\n" + "\n".join(offenders)


def test_deconvolve_does_not_import_evaluate(modules):
    offenders = sorted(f"{module} imports {imp}" for module, imports in modules.items()
                       if module.startswith("tissuebert.deconvolve")
                       for imp in imports if imp == "tissuebert.evaluate" or imp.startswith("tissuebert.evaluate."))
    assert offenders == [], "deconvolve must not import evaluate:\n" + "\n".join(offenders)


def test_no_import_cycle_between_packages(modules):
    graph = unit_graph(modules)
    assert {"inference", "train", "evaluate", "deconvolve", "benchmark", "cli"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


def test_every_name_imported_from_tissuebert_exists():
    """A lazy ``from tissuebert.x import y`` inside a function is only checked when the function
    runs: after a name moves (a restructure), a command can fail with ImportError in front of a
    user. Every such import in the package, the tests and the benchmarks must resolve."""
    import importlib

    repo = SRC.parents[1]
    files = [*SRC.rglob("*.py"), *(repo / "tests").rglob("*.py"), *(repo / "benchmarks").rglob("*.py")]
    missing = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tissuebert")):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if alias.name != "*" and not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"{path.relative_to(repo)}:{node.lineno}: {node.module}.{alias.name}")
    assert not missing, missing
