"""The architecture, read from the imports: layers, cycles, the pure core, and sizes.

The conformance suite's layers are written once, in the docstring of ``conformance/__init__.py``
("Layers"); this test parses that list and fails on any import against it. It also fails on an
import cycle, on ``reference`` and ``conformance`` importing each other, on the reference's core
importing IO, and on modules and functions past the size the house style allows.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import conformance

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("conformance", "reference")
MAX_MODULE_LINES = 400  # outside cases/ and tests/
MAX_FUNCTION_LINES = 60
# The reference's core is pure (h11's sans-IO): no network, store or clock of its own.
IO_MODULES = ("aiohttp", "socketio", "engineio", "redis", "pymongo", "motor", "asyncio")
_LAYER_LINE = re.compile(r"^(?P<layer>\d+)\. ")


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (a package's __init__ is the package's name)
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":``: a script's entry point, not the module's imports."""
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def _resolve(package: str, name: str) -> str:
    """``from package import name``: the submodule when there is one, else the package."""
    candidate = ROOT.joinpath(*package.split("."), name)
    is_module = candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file()
    return f"{package}.{name}" if is_module else package


def imports_of(path: Path) -> list[Import]:
    """Every import in a module, type-only ones included, but not its ``__main__`` block."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    importer = module_name(path)
    found: list[Import] = []
    stack: list[ast.AST] = [n for n in tree.body if not _is_main_guard(n)]
    while stack:
        node = stack.pop()
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found += [Import(importer, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [
                Import(importer, _resolve(node.module, alias.name), node.lineno)
                for alias in node.names
            ]
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def all_imports() -> list[Import]:
    return [i for package in PACKAGES for path in modules(package) for i in imports_of(path)]


def declared_layers() -> dict[str, int]:
    """Top-level module (or subpackage) of ``conformance`` -> its layer, from the docstring."""
    doc = conformance.__doc__ or ""
    text = doc[doc.index("Layers") :]
    layers: dict[str, int] = {}
    current: int | None = None
    for line in text.splitlines():
        if match := _LAYER_LINE.match(line):
            current = int(match["layer"])
        elif not line.startswith("   "):
            current = None  # a layer's entry ends at the first unindented line
        if current is not None:
            for name in re.findall(r"``(\w+)``", line):
                layers[name] = current
    return layers


def conformance_unit(module: str) -> str | None:
    """The layered unit a ``conformance`` module belongs to (``faults.links`` -> ``faults``)."""
    parts = module.split(".")
    if parts[0] != "conformance":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(unit: str, layers: dict[str, int]) -> int:
    # The package's __init__ re-exports the case-writing API from below for the top layer.
    return max(layers.values()) if unit == "__init__" else layers[unit]


# --- the tests --------------------------------------------------------------------------------


def test_every_conformance_module_has_a_declared_layer() -> None:
    layers = declared_layers()
    assert set(layers.values()) == set(range(6)), layers
    units = {conformance_unit(module_name(p)) for p in modules("conformance")}
    assert units - {"__init__"} == set(layers), "modules missing from, or extra in, the list"


def layering_problems(imports: list[Import], layers: dict[str, int]) -> list[str]:
    """Imports of a higher layer than the importer's, as readable lines."""
    problems = []
    for found in imports:
        low, high = conformance_unit(found.importer), conformance_unit(found.imported)
        if low is None or high is None or low == high:
            continue
        if layer_of(high, layers) > layer_of(low, layers):
            problems.append(
                f"{found.importer}:{found.line} (layer {layer_of(low, layers)}) imports "
                f"{found.imported} (layer {layer_of(high, layers)})"
            )
    return problems


def test_conformance_imports_follow_the_layers() -> None:
    assert layering_problems(all_imports(), declared_layers()) == []


def test_a_reversed_import_is_caught() -> None:
    """The check above can fail: an import of the plugin from the event log is reported."""
    reversed_import = Import("conformance.eventlog", "conformance.plugin", 1)
    assert layering_problems([reversed_import], declared_layers()) == [
        "conformance.eventlog:1 (layer 0) imports conformance.plugin (layer 5)"
    ]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Import cycles between modules of the project (each as a path of module names)."""
    graph: dict[str, set[str]] = {}
    for found in imports:
        if found.imported.split(".")[0] in PACKAGES and found.imported != found.importer:
            graph.setdefault(found.importer, set()).add(found.imported)
    found_cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found_cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found_cycles


def _parents_of(module: str) -> set[str]:
    # Importing a submodule runs its package's __init__ first: that edge is not a cycle.
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_cycles() -> None:
    imports = [i for i in all_imports() if i.imported not in _parents_of(i.importer)]
    assert cycles(imports) == []


def test_a_cycle_is_caught() -> None:
    loop = [
        Import("conformance.a", "conformance.b", 1),
        Import("conformance.b", "conformance.a", 1),
    ]
    assert cycles(loop) == [["conformance.a", "conformance.b", "conformance.a"]]


@pytest.mark.parametrize(
    ("package", "other"), [("reference", "conformance"), ("conformance", "reference")]
)
def test_reference_and_conformance_never_import_each_other(package: str, other: str) -> None:
    crossing = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for path in modules(package)
        for i in imports_of(path)
        if i.imported.split(".")[0] == other
    ]
    assert crossing == []


def test_the_reference_core_is_pure() -> None:
    impure = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for path in modules("reference/core")
        for i in imports_of(path)
        if i.imported.split(".")[0] in IO_MODULES
        or i.imported.startswith(("reference.server", "reference.store", "reference.bus"))
    ]
    assert impure == []


def _sized_modules() -> list[Path]:
    return [p for package in PACKAGES for p in modules(package) if "cases" not in p.parts]


def test_no_module_is_over_the_size_limit() -> None:
    lines = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in _sized_modules()}
    over = {str(p.relative_to(ROOT)): n for p, n in lines.items() if n > MAX_MODULE_LINES}
    assert over == {}


def test_no_function_is_over_the_size_limit() -> None:
    over = {}
    for path in _sized_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    over[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert over == {}
