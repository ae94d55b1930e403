"""The suite's inventory: which cases cite which clauses, and the ``conformance.clauses``
command line (``python -m conformance.clauses [--check | --cases ID]``).

It imports every case module to read the registry that ``@case`` fills, so it sits in the top
layer, beside the cases themselves.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

import conformance.cases
from conformance import clauses
from conformance.protocol import FEATURES
from conformance.registry import CASES
from conformance.selection import Selection
from conformance.spec_files import spec_dir

__all__ = ["cases_citing", "main", "matrix"]


def cases_citing() -> dict[str, list[str]]:
    """Clause ID -> the cases citing it (``module.function``), over ``conformance/cases``."""
    package = conformance.cases.__name__
    for module in pkgutil.iter_modules(conformance.cases.__path__):
        if module.name.startswith("test_"):
            importlib.import_module(f"{package}.{module.name}")
    citing: dict[str, list[str]] = {}
    for name, spec in CASES.items():
        if name.startswith(f"{package}."):
            for clause_id in spec.clauses:
                citing.setdefault(clause_id, []).append(name)
    return citing


def main(argv: list[str] | None = None) -> int:
    """List the spec's clauses; ``--check`` validates their IDs; ``--cases ID`` lists the
    cases citing clause ``ID``."""
    parser = argparse.ArgumentParser(
        prog="python -m conformance.clauses", description=clauses.__doc__
    )
    parser.add_argument("--spec", type=Path, help="protocol document (default: spec/protocol.md)")
    parser.add_argument("--check", action="store_true", help="validate IDs; exit 1 on problems")
    parser.add_argument("--cases", metavar="ID", help="list the cases that cite clause ID")
    args = parser.parse_args(argv)
    path: Path = args.spec or spec_dir() / "protocol.md"
    text = path.read_text(encoding="utf-8")
    if args.check:
        problems = clauses.check_ids(text) + clauses.missing_anchors(text)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(
            f"{len(clauses.parse(text)) if not problems else 0} clauses, {len(problems)} problems"
        )
        return 1 if problems else 0
    if args.cases is not None:
        return _print_cases(args.cases, {c.id: c for c in clauses.parse(text)})
    for clause in clauses.parse(text):
        tags = [f"feature:{clause.feature}"] if clause.feature else []
        tags += ["internal"] if clause.internal else []
        tags += ["withdrawn"] if clause.withdrawn else []
        print(f"{clause.id:8} {clause.level.value:6} {','.join(tags):24} {clause.section}")
    return 0


def _print_cases(clause_id: str, catalog: dict[str, clauses.Clause]) -> int:
    clause = catalog.get(clause_id)
    if clause is None:
        print(f"no clause {clause_id!r} in the spec", file=sys.stderr)
        return 2
    cited_by = cases_citing().get(clause_id, [])
    print(f"{clause.id} {clause.level.value} ({clause.section}): {len(cited_by)} cases")
    for name in cited_by:
        print(f"  {_case_path(name)}")
    return 0


def matrix(selection: Selection) -> list[tuple[clauses.Clause, list[str]]]:
    """The selected clauses (every testable one without a selection) and the cases citing
    each, as ``--list`` prints them; the cases of a selected feature bring all they cite."""
    catalog = clauses.load()
    citing = cases_citing()
    ids = selection.clause_ids(catalog, FEATURES) if selection.active else None
    if ids is not None and selection.features:
        for spec in CASES.values():
            if set(spec.features) & set(selection.features):
                ids |= set(spec.clauses)
    return [
        (clause, [_case_path(name) for name in citing.get(clause.id, [])])
        for clause in catalog
        if (ids is None and clause.testable) or (ids is not None and clause.id in ids)
    ]


def _case_path(name: str) -> str:
    """``conformance.cases.test_x.test_y`` -> ``conformance/cases/test_x.py::test_y``."""
    module, _, function = name.rpartition(".")
    return f"{module.replace('.', '/')}.py::{function}"
