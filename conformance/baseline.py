"""Baselines for incremental adoption (``--baseline FILE``): the clauses a target is known to
fail, so that only a new failure fails the run.

The file is the JSON report of an earlier run (its failed clauses are the baseline) or a list
written by hand: a JSON array of clause IDs, or plain text with one ID per line (``#`` starts
a comment). A case whose findings name only baselined clauses does not fail the run; a
baselined clause that now passes is reported as fixed, so the file can be tightened.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.errors import SuiteError
from conformance.grading import FAILED, PASSED

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

    from conformance.grading import ClauseVerdict

__all__ = ["BaselineDiff", "compare", "load_baseline"]


def _ids_of(document: Any) -> list[str]:
    """The clause IDs a parsed JSON baseline names (a report, or an array of IDs)."""
    if isinstance(document, list) and all(isinstance(i, str) for i in document):
        return document
    if isinstance(document, dict) and isinstance(document.get("clauses"), list):
        return [c["id"] for c in document["clauses"] if c.get("status") == FAILED]
    raise SuiteError(
        "replay: --baseline must be a JSON report, a JSON array of clause IDs or a list"
    )


def load_baseline(path: str | Path, known: Collection[str]) -> frozenset[str]:
    """The clause IDs baselined by the file at ``path``; raises :class:`SuiteError` for a file
    that cannot be read or names a clause the spec does not have."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"replay: cannot read --baseline {path}: {exc.strerror}") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            ids = _ids_of(json.loads(text))
        except ValueError as exc:
            raise SuiteError(f"replay: --baseline {path} is not valid JSON: {exc}") from None
    else:
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        ids = [line for line in lines if line]
    if unknown := sorted(set(ids) - set(known)):
        raise SuiteError(f"replay: --baseline {path} names unknown clauses: {', '.join(unknown)}")
    return frozenset(ids)


@dataclass(frozen=True)
class BaselineDiff:
    """A run's graded clauses against the baseline."""

    known: list[str]  # baselined and still failing: tolerated
    fixed: list[str]  # baselined but passed now: remove them from the file
    new: list[str]  # failed and not baselined: these fail the run

    def lines(self) -> list[str]:
        """The terminal's account of the comparison."""
        lines = [f"baseline: {len(self.known)} known failures tolerated"]
        if self.fixed:
            lines.append(
                f"baseline: now passing, remove from the baseline: {', '.join(self.fixed)}"
            )
        if self.new:
            lines.append(f"baseline: new failures (not in the baseline): {', '.join(self.new)}")
        return lines


def compare(baseline: frozenset[str], verdicts: Iterable[ClauseVerdict]) -> BaselineDiff:
    """Which baselined clauses still fail, which pass now, and which failures are new."""
    verdicts = list(verdicts)
    return BaselineDiff(
        known=[v.id for v in verdicts if v.status == FAILED and v.id in baseline],
        fixed=[v.id for v in verdicts if v.status == PASSED and v.id in baseline],
        new=[v.id for v in verdicts if v.status == FAILED and v.id not in baseline],
    )
