"""Which mutants exist: the modules in scope, every position each operator can mutate there,
and a stable id for each.

A mutant's id is ``module:operator:occurrence:linehash``, the hash taken over the stripped
source line it mutates. After an edit above it, its occurrence or line moves and the id
changes, so a judgement keyed by the old id no longer matches any mutant and the judgements
check says so, instead of silently applying to a different mutation.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cosmic_ray.plugins
from cosmic_ray.ast import ast_nodes, get_ast
from cosmic_ray.mutating import mutate_code
from cosmic_ray.operators.operator import Operator

from mutation.operators import operator_names

# Imported by the memory default (``python -m reference``) but never run by it: only the
# Redis and MongoDB buses subclass RemoteBus; node.py imports it for an isinstance check.
EXCLUDED = {"reference/bus/remote.py"}
# Calls to a logger are not mutated: logging is no observable behaviour (all equivalent).
LOGGING = ("log.", "logger.", "logging.")


@dataclass(frozen=True)
class Mutant:
    """One mutation: operator ``operator`` at its ``occurrence``-th position in ``module``."""

    module: str  # path relative to the tree root, e.g. reference/core/grants.py
    operator: str  # cosmic-ray's name, e.g. core/NumberReplacer or replay/DropAwait
    occurrence: int
    line_no: int
    line: str  # the stripped source line it mutates
    span: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 1))  # cosmic-ray's positions

    @property
    def id(self) -> str:
        digest = hashlib.sha1(self.line.encode()).hexdigest()[:8]
        short = self.operator.split("/", 1)[1]
        return f"{self.module}:{short}:{self.occurrence}:{digest}"

    @property
    def family(self) -> str:
        """The operator without its comparison pair (``ReplaceComparisonOperator``)."""
        return self.operator.split("/", 1)[1].split("_", 1)[0]


def scope(root: Path) -> list[str]:
    """The reference modules ``python -m reference`` imports on its default memory store,
    relative to ``root``, less :data:`EXCLUDED`."""
    probe = (
        "import sys, reference.cli\n"
        "for m in sorted(sys.modules.values(), key=lambda m: m.__name__):\n"
        "    if m.__name__.split('.')[0] == 'reference': print(m.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    found = {
        Path(line).resolve().relative_to(root.resolve()).as_posix() for line in done.stdout.split()
    }
    found.add("reference/__main__.py")
    return sorted(found - EXCLUDED)


def operator(name: str) -> Operator:
    """An instance of the cosmic-ray operator called ``name``."""
    return cosmic_ray.plugins.get_operator(name)()  # type: ignore[no-any-return]


def _type_checking_lines(tree: object) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks: imports for the type checker only."""
    lines: set[int] = set()
    for node in ast_nodes(tree):
        if node.type == "if_stmt" and node.children[1].get_code().strip() == "TYPE_CHECKING":
            lines.update(range(node.start_pos[0], node.end_pos[0] + 1))
    return lines


def mutants_of(root: Path, module: str, operators: tuple[str, ...]) -> Iterator[Mutant]:
    """Every mutant of ``module`` (under ``root``), in cosmic-ray's occurrence order."""
    source = (root / module).read_text()
    lines = source.split("\n")
    tree = get_ast(source)
    skipped = _type_checking_lines(tree)
    for name in operators:
        instance = operator(name)
        positions = (p for node in ast_nodes(tree) for p in instance.mutation_positions(node))
        for occurrence, (start, end) in enumerate(positions):
            line = lines[start[0] - 1].strip()
            if start[0] in skipped or line.startswith(LOGGING):
                continue
            yield Mutant(module, name, occurrence, start[0], line, (start, end))


def catalog(root: Path) -> list[Mutant]:
    """Every mutant of every module in scope, in a fixed order."""
    names = operator_names()
    return [m for module in scope(root) for m in mutants_of(root, module, names)]


def find(root: Path, mutant_id: str) -> Mutant:
    """The mutant called ``mutant_id`` (reading only its module); LookupError if none is."""
    module, short = mutant_id.split(":")[:2]
    names = tuple(n for n in operator_names() if n.split("/", 1)[1] == short)
    if (root / module).is_file():
        for mutant in mutants_of(root, module, names):
            if mutant.id == mutant_id:
                return mutant
    raise LookupError(f"no such mutant: {mutant_id}")


def mutated_source(root: Path, mutant: Mutant) -> str:
    """``mutant``'s module with the mutation applied (in memory)."""
    code = mutate_code(
        (root / mutant.module).read_text(), operator(mutant.operator), mutant.occurrence
    )
    if code is None:
        raise LookupError(f"{mutant.id}: the operator has no such occurrence")
    return str(code)


def diff(root: Path, mutant: Mutant) -> str:
    """The unified diff of the mutated line(s), without context."""
    before = (root / mutant.module).read_text().split("\n")
    after = mutated_source(root, mutant).split("\n")
    return "\n".join(
        difflib.unified_diff(
            before, after, f"a/{mutant.module}", f"b/{mutant.module}", n=0, lineterm=""
        )
    )
