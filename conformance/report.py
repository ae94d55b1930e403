"""Grading (spec §14) and the run's report: per clause passed / failed / not claimed /
not covered, written as JSON and Markdown, and summarised at the end of the terminal output.

Pure functions over :class:`CaseResult` records, so they are testable without running pytest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from conformance.clauses import Level

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from conformance.clauses import Clause

__all__ = [
    "FAILED",
    "NOT_CLAIMED",
    "NOT_COVERED",
    "PASSED",
    "STATUSES",
    "CaseResult",
    "ClauseVerdict",
    "grade",
    "is_strict",
    "render_json",
    "render_markdown",
    "report_paths",
    "terminal_lines",
    "write_report",
]

PASSED: Final = "passed"
FAILED: Final = "failed"
NOT_CLAIMED: Final = "not claimed"
NOT_COVERED: Final = "not covered"
STATUSES: Final = (PASSED, FAILED, NOT_CLAIMED, NOT_COVERED)


@dataclass
class CaseResult:
    """The outcome of one collected case (one pytest item)."""

    nodeid: str
    clauses: tuple[str, ...]
    outcome: str = PASSED  # passed | failed | skipped
    strict: bool = True  # a failure fails the run (False: only SHOULD/MAY clauses failed)
    reason: str = ""  # skip reason, or the failure's headline
    failure: Mapping[str, Any] | None = None  # findings.failure_dict(), or clause-less details
    duration_s: float = 0.0

    @property
    def failed_clauses(self) -> tuple[str, ...]:
        """Clauses this case fails: the ones its failure names, else all the ones it cites.

        A failure that names its clause says exactly what broke; the case's other clauses were
        not reached, so the case decides nothing about them.
        """
        if self.outcome != FAILED:
            return ()
        named = tuple((self.failure or {}).get("clauses") or ())
        return named or self.clauses


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

    failed: a failure named it (or a failure naming no clause came from a case citing it);
    passed: otherwise, a case citing it passed; not claimed: its feature is not advertised, or
    every case citing it was skipped; not covered: no case checked it (always so for internal
    and withdrawn clauses), or the cases citing it failed first on another clause.
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
            continue
        if clause.feature and clause.feature not in claimed:
            verdict.status, verdict.note = NOT_CLAIMED, f"feature {clause.feature}"
            continue
        failed = [r for r in results if r.outcome == FAILED and clause.id in r.failed_clauses]
        citing = [r for r in results if clause.id in r.clauses]
        passed = [r for r in citing if r.outcome == PASSED]
        if failed:
            verdict.status, verdict.cases = FAILED, [r.nodeid for r in failed]
        elif passed:
            verdict.status, verdict.cases = PASSED, [r.nodeid for r in passed]
        elif stopped := [r for r in citing if r.outcome == FAILED]:
            verdict.cases = [r.nodeid for r in stopped]
            verdict.note = "not reached: failed first on " + ", ".join(
                dict.fromkeys(c for r in stopped for c in r.failed_clauses)
            )
        elif citing:
            verdict.status, verdict.cases = NOT_CLAIMED, [r.nodeid for r in citing]
            verdict.note = next((r.reason for r in citing if r.reason), "")
    return verdicts


def counts(verdicts: Iterable[ClauseVerdict]) -> dict[str, int]:
    """How many clauses have each status."""
    tally = dict.fromkeys(STATUSES, 0)
    for verdict in verdicts:
        tally[verdict.status] += 1
    return tally


def _failed(verdicts: Iterable[ClauseVerdict], strict: bool) -> list[str]:
    return [v.id for v in verdicts if v.status == FAILED and v.strict is strict]


def render_json(
    target: Mapping[str, Any], verdicts: Sequence[ClauseVerdict], results: Sequence[CaseResult]
) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    outcomes = {
        o: sum(1 for r in results if r.outcome == o) for o in ("passed", "failed", "skipped")
    }
    return {
        "protocol": "replay/1",
        "target": dict(target),
        "summary": {
            "clauses": counts(verdicts),
            "cases": outcomes,
            "failed_must": _failed(verdicts, strict=True),
            "failed_should": _failed(verdicts, strict=False),
        },
        "clauses": [asdict(v) for v in verdicts],
        "cases": [{**asdict(r), "failure": dict(r.failure or {}) or None} for r in results],
        "failures": [
            {"case": r.nodeid, "strict": r.strict, **dict(r.failure or {})}
            for r in results
            if r.outcome == "failed"
        ],
    }


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(document: Mapping[str, Any]) -> str:
    """The report (as :func:`render_json` builds it) as Markdown."""
    target, summary = document["target"], document["summary"]
    info = target.get("info") or {}
    impl = info.get("implementation") or {}
    lines = [
        "# replay/1 conformance report",
        "",
        f"- target: {_cell(target.get('description', ''))}",
        f"- implementation: {_cell(impl.get('name', '?'))} {_cell(impl.get('version', ''))}",
        f"- durable: {info.get('durable')}; features: {', '.join(info.get('features', []))}",
        "",
        "## Summary",
        "",
        "| status | clauses |",
        "|---|---|",
        *(f"| {status} | {n} |" for status, n in summary["clauses"].items()),
        "",
        f"Cases: {', '.join(f'{n} {o}' for o, n in summary['cases'].items())}.",
        f"Failed MUST clauses: {', '.join(summary['failed_must']) or 'none'}.",
        f"Failed SHOULD clauses (reported, not failing the run): "
        f"{', '.join(summary['failed_should']) or 'none'}.",
        "",
    ]
    if document["failures"]:
        lines += ["## Failures", ""]
    for failure in document["failures"]:
        level = "" if failure.get("strict", True) else " (SHOULD: does not fail the run)"
        lines += [
            f"### {_cell(failure['case'])}{level}",
            "",
            f"- clause: {failure.get('clause') or ', '.join(failure.get('clauses') or []) or '-'}",
            f"- expected: {_cell(failure.get('expected', ''))}",
            f"- received: {_cell(failure.get('received', ''))}",
            *(f"- also: {_cell(also)}" for also in failure.get("also") or []),
        ]
        if failure.get("log"):
            lines += ["", "```", *failure["log"], "```"]
        lines.append("")
    lines += [
        "## Clauses",
        "",
        "| clause | level | status | cases | note |",
        "|---|---|---|---|---|",
    ]
    for clause in document["clauses"]:
        cases = "<br>".join(_cell(c.split("::")[-1]) for c in clause["cases"])
        status = clause["status"] + ("" if clause["strict"] or clause["status"] != FAILED else "*")
        lines.append(
            f"| {clause['id']} | {clause['level']} | {status} | {cases} | {_cell(clause['note'])} |"
        )
    lines += ["", "\\* a failed SHOULD clause: reported, but it does not fail the run.", ""]
    return "\n".join(lines)


def report_paths(path: str | Path) -> tuple[Path, Path]:
    """``PATH`` -> (``PATH.json``, ``PATH.md``); a ``.json``/``.md`` suffix names both siblings."""
    base = Path(path)
    if base.suffix in (".json", ".md"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".md")


def write_report(path: str | Path, document: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write the JSON and Markdown reports; returns their paths."""
    json_path, md_path = report_paths(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(document), encoding="utf-8")
    return json_path, md_path


def terminal_lines(verdicts: Sequence[ClauseVerdict]) -> list[str]:
    """The clause summary printed at the end of the run."""
    tally = counts(verdicts)
    lines = [", ".join(f"{n} {status}" for status, n in tally.items()) + f" (of {len(verdicts)})"]
    if must := _failed(verdicts, strict=True):
        lines.append(f"failed MUST clauses: {', '.join(must)}")
    if should := _failed(verdicts, strict=False):
        lines.append(f"failed SHOULD clauses (not failing the run): {', '.join(should)}")
    return lines
