"""The spec's clause IDs are unique and well formed, every reference to them names a clause, and
the lister reports them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import clauses

MINIMUM_CLAUSES = 40
_ORD_1_TO_3 = "- `(ORD-1)` A MUST.\n- `(ORD-2)` B MUST.\n- `(ORD-3)` C MUST.\n"


def test_spec_clause_ids_are_sound() -> None:
    text = (clauses.spec_dir() / "protocol.md").read_text(encoding="utf-8")
    assert clauses.check_ids(text) == []
    assert clauses.missing_anchors(text) == []


def test_a_clause_without_its_own_anchor_is_a_problem_and_the_anchor_is_not_its_text() -> None:
    text = (
        '- `(ORD-1)` <a id="ORD-1"></a>A MUST.\n- `(ORD-2)` B MUST.\n'
        '- `(ORD-3)` <a id="ORD-1"></a>C MUST.\n'
    )
    assert clauses.missing_anchors(text) == [
        'clause ORD-2 lacks its anchor <a id="ORD-2"></a>',
        'clause ORD-3 lacks its anchor <a id="ORD-3"></a>',
    ]
    assert [c.text for c in clauses.parse(text)] == ["A MUST.", "B MUST.", "C MUST."]


def test_spec_has_enough_clauses_and_every_guarantee_family() -> None:
    parsed = clauses.load()
    assert len(parsed) >= MINIMUM_CLAUSES
    families = {clause.id.split("-")[0] for clause in parsed}
    # One family per guarantee of the brief, plus the API surfaces.
    assert {"ORD", "HND", "CNS", "RES", "CUR", "SIG", "DUR", "IDM", "ACC", "ROB", "CLU"} <= families
    assert {"SUB", "UNS", "ACK", "PUB", "HIS", "RET", "SES", "CON", "AUT", "DLV"} <= families


def test_levels_tags_and_sections_are_parsed() -> None:
    table = clauses.by_id()
    assert table["ORD-1"].level is clauses.Level.MUST
    assert table["DLV-4"].level is clauses.Level.SHOULD
    assert table["API-3"].internal and not table["API-3"].testable
    assert table["RET-12"].feature == "retention"
    assert table["RET-2"].withdrawn and not table["RET-2"].testable
    assert table["SUB-1"].section.startswith("6.1")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("- `(ORD-1)` A MUST.\n- `(ORD-1)` B MUST.\n", "duplicate clause ID ORD-1"),
        ("- `(ORD-1)` no keyword here.\n", "ORD-1 has no RFC 2119 keyword"),
        ("- `(ORD-1)` A MUST, see `(ord-2)`.\n", "malformed clause ID (ord-2)"),
        ("- `(ORD-1)` A MUST, see `(ORD-02)`.\n", "malformed clause ID (ORD-02)"),
        ("- `(ORD-1)` A MUST.\n\nAs LIM-3 says.\n", "line 3: LIM-3 names no clause"),
        ("- `(ORD-1)` A MUST (ORD-2).\n", "line 1: ORD-2 names no clause"),
        ("- `(ORD-1)` A MUST.\n\nsee SBU-1\n", "line 3: SBU-1 names no clause, and no clause"),
        ("- `(ORD-1)` A MUST.\n\nsee SUB-*\n", "line 3: SUB-* names no clause family"),
        (f"{_ORD_1_TO_3}see ORD-1..3\n", "line 4: range ORD-1..3 is not written ORD-1 to ORD-3"),
        (f"{_ORD_1_TO_3}see ORD-1..ORD-3\n", "line 4: range ORD-1..ORD-3 is not written ORD-1 to"),
        (f"{_ORD_1_TO_3}see ORD-1\u20133\n", "line 4: range ORD-1\u20133 is not written ORD-1 to"),
        (f"{_ORD_1_TO_3}see ORD-1 to 3\n", "line 4: range ORD-1 to 3 is not written ORD-1 to"),
        (f"{_ORD_1_TO_3}ORD-1 through\n  ORD-3\n", "line 4: range ORD-1 through ORD-3 is not"),
        (f"{_ORD_1_TO_3}see ORD-1 to ORD-4\n", "line 4: range ORD-1 to ORD-4: ORD-4 names no"),
        (f"{_ORD_1_TO_3}see ORD-1 to SUB-3\n", "line 4: range ORD-1 to SUB-3 mixes prefixes"),
        (f"{_ORD_1_TO_3}see ORD-3 to ORD-1\n", "line 4: range ORD-3 to ORD-1 is not in increasing"),
        (f"{_ORD_1_TO_3}see ORD-2 to ORD-2\n", "line 4: range ORD-2 to ORD-2 is not in increasing"),
        ("- `(SHA-1)` A MUST.\n", "clause prefix SHA is listed as not a clause"),
    ],
)
def test_check_finds_broken_documents(document: str, problem: str) -> None:
    assert any(found.startswith(problem) for found in clauses.check_ids(document))


def test_check_accepts_every_canonical_reference() -> None:
    document = (
        f"{_ORD_1_TO_3}- `(ORD-4)` *Withdrawn: merged into ORD-3.*\n"
        "See ORD-1, (ORD-2), `(ORD-3)`, the withdrawn ORD-4, ORD-1 to ORD-4 and ORD-*; a range\n"
        "may wrap, ORD-2 to\n  ORD-3. SHA-256 and UTF-8 are not clauses.\n"
        "- `(ORD-5)` A MUST, then a list item that is not a range: ORD-1\n- 3 items\n"
    )
    assert clauses.check_ids(document) == []


def test_wrapped_lines_belong_to_their_clause_and_withdrawn_needs_no_keyword() -> None:
    document = (
        "## 1. Part\n"
        "- `(ABC-1)` first line\n  continues and MUST hold.\n"
        "- `(ABC-2)` *Withdrawn: replaced by ABC-1.*\n"
    )
    first, second = clauses.parse(document)
    assert first.text.endswith("continues and MUST hold.")
    assert first.section == "1. Part"
    assert second.withdrawn and not second.testable


def test_command_lists_every_clause() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance.clauses"],
        capture_output=True,
        text=True,
        check=True,
    )
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert listed == [clause.id for clause in clauses.load()]
    check = subprocess.run(
        [sys.executable, "-m", "conformance.clauses", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_command_lists_the_cases_citing_a_clause() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-W", "error", "-m", "conformance.clauses", *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    found = run("--cases", "SUB-13")
    assert found.returncode == 0, found.stderr
    header, *cases = found.stdout.splitlines()
    assert header.startswith("SUB-13 MUST") and header.endswith(f"{len(cases)} cases")
    assert (
        "  conformance/cases/test_subscribe_basics.py::test_reply_first_while_publishes_race"
        in cases
    )
    internal = run("--cases", next(c.id for c in clauses.load() if c.internal))
    assert internal.returncode == 0 and internal.stdout.rstrip().endswith(": 0 cases")
    unknown = run("--cases", "NOPE-1")
    assert unknown.returncode == 2 and "no clause 'NOPE-1'" in unknown.stderr


def test_command_check_names_each_problem_with_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "protocol.md"
    anchored = re.sub(r"\((ORD-\d)\)` ", r'(\1)` <a id="\1"></a>', _ORD_1_TO_3)
    spec.write_text(f"{anchored}\nAs ORD-9 says, and ORD-1..3.\n", encoding="utf-8")
    check = subprocess.run(
        [sys.executable, "-m", "conformance.clauses", "--check", "--spec", str(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        "line 5: ORD-9 names no clause",
        "line 5: range ORD-1..3 is not written ORD-1 to ORD-3",
    ]
    assert check.stdout.strip() == "0 clauses, 2 problems"
