"""Which spec clauses the conformance cases cover (spec §14: a case for every clause).

Prints the clauses no case cites (run with ``-s`` to see them) and fails while a testable
MUST clause has no case.
"""

from __future__ import annotations

from conformance import clauses
from conformance.clauses import Level
from conformance.inventory import cases_citing as covered


def test_the_first_cases_are_found() -> None:
    citing = covered()
    for clause_id in ("INF-1", "SES-3", "CON-2", "SUB-7", "SUB-13", "ORD-2", "UNS-3"):
        assert clause_id in citing, clause_id


def test_every_testable_must_clause_has_a_case() -> None:
    citing = covered()
    uncovered = [c for c in clauses.load() if c.id not in citing]
    for level in Level:
        ids = [c.id for c in uncovered if c.level is level and c.testable]
        print(f"uncovered testable {level.value} clauses ({len(ids)}): {' '.join(ids)}")
    untestable = [c.id for c in uncovered if not c.testable]
    print(f"internal or withdrawn, never covered ({len(untestable)}): {' '.join(untestable)}")
    must = [c.id for c in uncovered if c.testable and c.level is Level.MUST]
    assert not must, f"{len(must)} testable MUST clauses have no case: {', '.join(must)}"
