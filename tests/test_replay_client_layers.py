"""replay_client's architecture, read from its imports: the layers its ``__init__``
docstring lists, no import of ``reference`` or ``conformance``, and the house sizes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import replay_client

PACKAGE = Path(replay_client.__file__).resolve().parent
MAX_MODULE_LINES = 400
_LAYER = re.compile(r"^(\d+)\. (.+?):")


def layers() -> dict[str, int]:
    found = {}
    for line in (replay_client.__doc__ or "").splitlines():
        if match := _LAYER.match(line.strip()):
            for name in match.group(2).split(","):
                found[name.strip()] = int(match.group(1))
    return found


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "replay_client":
                names |= {f"replay_client.{alias.name}" for alias in node.names}
    return names


MODULES = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__init__.py")


def test_every_module_has_a_layer() -> None:
    assert sorted(layers()) == sorted(p.stem for p in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_imports_only_from_lower_layers(path: Path) -> None:
    rank = layers()
    for name in imported(path):
        assert name.split(".")[0] not in ("reference", "conformance"), name
        if name.startswith("replay_client."):
            other = name.split(".")[1]
            assert rank[other] < rank[path.stem], f"{path.stem} imports {other}"


@pytest.mark.parametrize("path", [*MODULES, PACKAGE / "__init__.py"], ids=lambda p: p.stem)
def test_small_modules(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES


def test_typed_package() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_neither_the_reference_nor_the_suite_imports_the_client() -> None:
    root = PACKAGE.parents[2]
    importers = [
        path.relative_to(root)
        for package in ("reference", "conformance")
        for path in (root / package).rglob("*.py")
        if any(name.split(".")[0] == "replay_client" for name in imported(path))
    ]
    assert importers == []
