"""Grading (spec §14): every clause passed, failed, not claimed or not covered, from the
findings of the cases and the outcomes of the cases that cite it.

A clause fails only when a finding names it. A case whose failure names no clause (a crash, a
timeout) is an *error*: the suite could not judge it, so it decides no clause, yet it still
fails the run.

Pure functions over :class:`CaseResult` records, so they are testable without running pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from conformance.clauses import Level
from conformance.errors import ConformanceFailure

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from conformance.clauses import Clause

__all__ = [
    "ERROR",
    "FAILED",
    "NOT_CLAIMED",
    "NOT_COVERED",
    "PASSED",
    "STATUSES",
    "CaseResult",
    "ClauseVerdict",
    "as_failure",
    "counts",
    "failed_ids",
    "grade",
    "is_strict",
]

PASSED: Final = "passed"
FAILED: Final = "failed"
ERROR: Final = "error"  # a case outcome only: the case ended without a finding
NOT_CLAIMED: Final = "not claimed"
NOT_COVERED: Final = "not covered"
STATUSES: Final = (PASSED, FAILED, NOT_CLAIMED, NOT_COVERED)


@dataclass
class CaseResult:
    """The outcome of one collected case (one pytest item)."""

    nodeid: str
    clauses: tuple[str, ...]
    outcome: str = PASSED  # passed | failed (a finding) | error (none) | skipped
    strict: bool = True  # a failure fails the run (False: only SHOULD/MAY clauses failed)
    reason: str = ""  # skip reason, or the failure's headline
    failure: Mapping[str, Any] | None = None  # report.failure_dict(), or clause-less details
    duration_s: float = 0.0
    history: str | None = None  # the file of its whole event log (--replay-history)
    baselined: bool = False  # every clause it failed is in --baseline: it does not fail the run

    @property
    def failed_clauses(self) -> tuple[str, ...]:
        """The clauses this case fails: exactly the ones its findings name.

        The case's other clauses were not reached (the case stopped first), so the case
        decides nothing about them; an error names none and decides nothing at all.
        """
        if self.outcome != FAILED:
            return ()
        return tuple((self.failure or {}).get("clauses") or ())

    @property
    def unreached(self) -> tuple[str, ...]:
        """The cited clauses the case stopped before judging (a failed or errored case)."""
        if self.outcome not in (FAILED, ERROR):
            return ()
        return tuple(c for c in self.clauses if c not in self.failed_clauses)


@dataclass
class ClauseVerdict:
    """How one clause fared in the run."""

    id: str
    level: str
    section: str
    feature: str | None
    status: str
    strict: bool = True  # a MUST clause: its failure fails the run
    cases: list[str] = field(default_factory=list)  # node IDs of the cases that decided it
    note: str = ""


def is_strict(clause_ids: Iterable[str], catalog: Mapping[str, Clause]) -> bool:
    """A failure citing these clauses fails the run unless none of them is a MUST."""
    levels = [catalog[c].level for c in clause_ids if c in catalog]
    return not levels or Level.MUST in levels


def grade(
    catalog: Sequence[Clause], results: Iterable[CaseResult], features: Iterable[str]
) -> list[ClauseVerdict]:
    """The verdict of every clause, in spec order.

    failed: a finding (a failure or one found with it) named it, whichever case made it;
    passed: otherwise, a case citing it passed; not claimed: its feature is not advertised, or
    every case citing it was skipped; not covered: no case checked it (always so for internal
    and withdrawn clauses), or the cases citing it stopped first, on another clause or on an
    error (the note says which).
    """
    claimed = set(features)
    results = list(results)
    verdicts = []
    for clause in catalog:
        verdict = ClauseVerdict(
            clause.id,
            clause.level.value,
            clause.section,
            clause.feature,
            NOT_COVERED,
            strict=clause.level is Level.MUST,
        )
        verdicts.append(verdict)
        if not clause.testable:
            verdict.note = "internal" if clause.internal else "withdrawn"
        elif clause.feature and clause.feature not in claimed:
            verdict.status, verdict.note = NOT_CLAIMED, f"feature {clause.feature}"
        else:
            _decide(verdict, results)
    return verdicts


def _decide(verdict: ClauseVerdict, results: list[CaseResult]) -> None:
    """Fill in the verdict of a testable, claimed clause from the cases' results."""
    failed = [r for r in results if verdict.id in r.failed_clauses]
    citing = [r for r in results if verdict.id in r.clauses]
    passed = [r for r in citing if r.outcome == PASSED]
    stopped = [r for r in citing if verdict.id in r.unreached]
    if failed:
        verdict.status, verdict.cases = FAILED, [r.nodeid for r in failed]
    elif passed:
        verdict.status, verdict.cases = PASSED, [r.nodeid for r in passed]
    elif stopped:
        verdict.cases = [r.nodeid for r in stopped]
        verdict.note = "; ".join(dict.fromkeys(_not_reached(r) for r in stopped))
    elif citing:
        verdict.status, verdict.cases = NOT_CLAIMED, [r.nodeid for r in citing]
        verdict.note = next((r.reason for r in citing if r.reason), "")


def _not_reached(result: CaseResult) -> str:
    """Why a stopped case did not reach its other clauses."""
    if result.outcome == ERROR or not result.failed_clauses:
        return f"not reached (case errored: {result.reason or 'no finding'})"
    return "not reached: failed first on " + ", ".join(result.failed_clauses)


def counts(verdicts: Iterable[ClauseVerdict]) -> dict[str, int]:
    """How many clauses have each status."""
    tally = dict.fromkeys(STATUSES, 0)
    for verdict in verdicts:
        tally[verdict.status] += 1
    return tally


def failed_ids(verdicts: Iterable[ClauseVerdict], strict: bool) -> list[str]:
    return [v.id for v in verdicts if v.status == FAILED and v.strict is strict]


def as_failure(error: BaseException | None) -> ConformanceFailure | None:
    """``error`` as one finding: itself, or the findings of an exception group as one.

    Hypothesis raises an ``ExceptionGroup`` when a scenario run found several distinct
    failures; when every one of them is a finding, the first leads and the rest are attached,
    so the report still names each clause. Any other error in the group makes it no finding.
    """
    if isinstance(error, ConformanceFailure):
        return error
    if not isinstance(error, BaseExceptionGroup):
        return None
    found = [as_failure(inner) for inner in error.exceptions]
    if not found or None in found:
        return None
    first, *rest = (f for f in found if f is not None)
    others = [*first.others, *(f for r in rest for f in (r, *r.others))]
    return ConformanceFailure(first.clause, first.expected, first.received, first.log, others)
