"""The package's import graph: no cycle among facerec modules, and no lower layer importing an upper one.

Walks every module's imports with ``ast`` (module level and inside functions, ``TYPE_CHECKING`` blocks
included), so a deferred import cannot hide an arrow. Layers, lowest first (docs/architecture.md):
errors/faults -> schemas -> geometry -> store -> pipeline | training | evaluation -> recognition |
frontalization -> report/demo -> commands/cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "facerec"

# A module under the key may not import any module under these prefixes.
FORBIDDEN = {
    "facerec.schemas": ("facerec.geometry", "facerec.store", "facerec.pipeline"),
    "facerec.geometry": ("facerec.store", "facerec.pipeline"),
    "facerec.store": ("facerec.pipeline",),
    "facerec.training": ("facerec.pipeline", "facerec.evaluation", "facerec.recognition", "facerec.frontalization",
                         "facerec.report", "facerec.demo", "facerec.commands", "facerec.cli"),
    "facerec.evaluation": ("facerec.training", "facerec.recognition", "facerec.frontalization", "facerec.report",
                           "facerec.demo", "facerec.commands", "facerec.cli"),
    "facerec.pipeline": ("facerec.training", "facerec.evaluation", "facerec.recognition", "facerec.frontalization",
                         "facerec.report", "facerec.demo", "facerec.commands", "facerec.cli"),
}
UPPER = ("facerec.training", "facerec.evaluation", "facerec.recognition", "facerec.frontalization", "facerec.report",
         "facerec.demo", "facerec.commands", "facerec.cli")
for lower in ("facerec.schemas", "facerec.geometry", "facerec.store"):
    FORBIDDEN[lower] = FORBIDDEN[lower] + UPPER


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The facerec modules ``name`` imports anywhere in its file (``from facerec import x`` resolves to
    ``facerec.x`` when that is a module, else to ``facerec``)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module itself
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return {m for m in found if m in known and m != name and m != "facerec"}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(g):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read_from_the_package():
    g = graph()
    assert "facerec.recognition.train" in g and "facerec.recognition.config" in g["facerec.recognition.train"]
    assert "facerec.store.fs" in g["facerec.store.summary"]


def test_no_import_cycle_among_facerec_modules():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("lower", sorted(FORBIDDEN))
def test_no_lower_layer_imports_an_upper_one(lower: str):
    bad = sorted(f"{mod} imports {dep}" for mod, deps in graph().items()
                 if mod == lower or mod.startswith(lower + ".")
                 for dep in deps if dep.startswith(FORBIDDEN[lower]))
    assert not bad, "upward imports:\n" + "\n".join(bad)
