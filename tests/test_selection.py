"""``--clause``/``--feature`` selectors resolved against the real spec (pure, no target)."""

from __future__ import annotations

import pytest

from conformance import clauses
from conformance.errors import SuiteError
from conformance.protocol import FEATURES
from conformance.selection import Selection

CATALOG = clauses.load()


def ids(*selectors: str, features: tuple[str, ...] = ()) -> set[str]:
    return Selection(selectors, features).clause_ids(CATALOG, FEATURES)


def test_an_id_selects_only_itself() -> None:
    assert ids("SUB-4") == {"SUB-4"}
    assert ids("sub-4") == {"SUB-4"}  # as typed on a command line


def test_a_prefix_selects_its_family_and_nothing_else() -> None:
    family = {c.id for c in CATALOG if c.id.startswith("SUB-")}
    assert ids("SUB") == family == ids("SUB-")
    assert len(family) > 10 and "SUB-4" in family


def test_a_section_selects_its_clauses_and_its_subsections() -> None:
    in_61 = {c.id for c in CATALOG if c.section.startswith("6.1 ")}
    assert in_61 and ids("§6.1") == in_61 == ids("6.1")
    in_6 = ids("§6")
    assert in_61 < in_6  # 6.1 is inside 6, and 6.3 (ACK-*) too
    assert "ACK-1" in in_6 and "ACK-1" not in in_61


def test_a_feature_selects_its_tagged_clauses() -> None:
    feature = next(c.feature for c in CATALOG if c.feature)
    assert ids(features=(feature,)) == {c.id for c in CATALOG if c.feature == feature}


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection(("XYZ",)), "--clause 'XYZ' selects no clause"),
        (Selection(("SUB-999",)), "--clause 'SUB-999' selects no clause"),
        (Selection(("§99",)), "selects no clause"),
        (Selection((), ("teleport",)), "--feature 'teleport' is not a feature"),
    ],
)
def test_a_selector_naming_nothing_is_refused(selection: Selection, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        selection.clause_ids(CATALOG, FEATURES)


def test_a_case_is_selected_by_a_cited_clause_or_a_needed_feature() -> None:
    selection = Selection(("SUB-4",), ("retention",))
    chosen = selection.clause_ids(CATALOG, FEATURES)
    assert selection.selects_case(("SUB-4", "ORD-1"), (), chosen)
    assert selection.selects_case(("HIS-1",), ("retention",), chosen)
    assert not selection.selects_case(("ORD-1",), (), chosen)
    assert Selection().selects_case(("ORD-1",), (), set())  # no selection: everything
    assert selection.describe() == "--clause SUB-4 --feature retention"
