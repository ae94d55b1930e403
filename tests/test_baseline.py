"""``--baseline`` files read and compared (pure; the runs are in ``test_conformance_cli.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.baseline import compare, load_baseline
from conformance.errors import SuiteError
from conformance.grading import ClauseVerdict

KNOWN = {"SUB-1", "SUB-4", "ACK-2"}


def verdict(clause_id: str, status: str) -> ClauseVerdict:
    return ClauseVerdict(clause_id, "MUST", "6.1", None, status)


def test_a_report_baselines_its_failed_clauses(tmp_path: Path) -> None:
    report = {"clauses": [{"id": "SUB-1", "status": "failed"}, {"id": "SUB-4", "status": "passed"}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    assert load_baseline(path, KNOWN) == {"SUB-1"}


def test_a_hand_written_list_as_json_or_text(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('["SUB-1", "ACK-2"]')
    (tmp_path / "b.txt").write_text("# known\nSUB-1  # since 0.3\n\nACK-2\n")
    assert load_baseline(tmp_path / "a.json", KNOWN) == {"SUB-1", "ACK-2"}
    assert load_baseline(tmp_path / "b.txt", KNOWN) == {"SUB-1", "ACK-2"}


@pytest.mark.parametrize(
    ("content", "message"),
    [("SUB-1\nSUB-99\n", "unknown clauses: SUB-99"), ("[1, 2", "not valid JSON"),
     ('{"x": 1}', "must be a JSON report")],
)  # fmt: skip
def test_a_bad_baseline_is_refused(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "b").write_text(content)
    with pytest.raises(SuiteError, match=message):
        load_baseline(tmp_path / "b", KNOWN)
    with pytest.raises(SuiteError, match="cannot read"):
        load_baseline(tmp_path / "missing", KNOWN)


def test_compare_splits_known_fixed_and_new() -> None:
    verdicts = [verdict("SUB-1", "failed"), verdict("SUB-4", "passed"), verdict("ACK-2", "failed")]
    diff = compare(frozenset({"SUB-1", "SUB-4"}), verdicts)
    assert (diff.known, diff.fixed, diff.new) == (["SUB-1"], ["SUB-4"], ["ACK-2"])
    assert diff.lines() == [
        "baseline: 1 known failures tolerated",
        "baseline: now passing, remove from the baseline: SUB-4",
        "baseline: new failures (not in the baseline): ACK-2",
    ]
