"""The run's report: the graded clauses and the cases' failures as JSON and Markdown, a
shields.io badge, and the clause summary printed at the end of the terminal output."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.grading import ERROR, FAILED, PASSED, counts, failed_ids

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from conformance.errors import ConformanceFailure
    from conformance.grading import CaseResult, ClauseVerdict

__all__ = [
    "badge",
    "failure_dict",
    "render_json",
    "render_markdown",
    "report_paths",
    "terminal_lines",
    "write_report",
]


def failure_dict(failure: ConformanceFailure) -> Mapping[str, Any]:
    """A JSON-ready rendering of a failure (for reports)."""
    return {
        "clause": failure.clause,
        "clauses": failure.clauses,
        "expected": failure.expected,
        "received": failure.received,
        "also": [other.headline for other in failure.others],
        "log": [entry.line() for entry in failure.log],
    }


def render_json(
    target: Mapping[str, Any],
    verdicts: Sequence[ClauseVerdict],
    results: Sequence[CaseResult],
    selection: str | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict; ``selection`` says what ``--clause``/``--feature``
    chose (None: the whole spec was graded)."""
    outcomes = {
        o: sum(1 for r in results if r.outcome == o) for o in ("passed", "failed", ERROR, "skipped")
    }
    return {
        "protocol": "replay/1",
        "target": dict(target),
        "selection": selection,
        "summary": {
            "clauses": counts(verdicts),
            "cases": outcomes,
            "failed_must": failed_ids(verdicts, strict=True),
            "failed_should": failed_ids(verdicts, strict=False),
            "errors": [r.nodeid for r in results if r.outcome == ERROR],
        },
        "clauses": [asdict(v) for v in verdicts],
        "cases": [{**asdict(r), "failure": dict(r.failure or {}) or None} for r in results],
        "failures": [
            {
                "case": r.nodeid,
                "outcome": r.outcome,
                "strict": r.strict,
                "baselined": r.baselined,
                "history": r.history,
                **dict(r.failure or {}),
                "not_reached": list(r.unreached),
            }
            for r in results
            if r.outcome in (FAILED, ERROR)
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
        f"- graded: {_graded(document)}",
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
        f"Errored cases (no finding, so no clause decided; they fail the run): "
        f"{len(summary.get('errors', []))}.",
        *_baseline_lines(document.get("baseline")),
        "",
    ]
    if document["failures"]:
        lines += ["## Failures", ""]
    for failure in document["failures"]:
        lines += _failure_lines(failure)
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


def _baseline_lines(baseline: Mapping[str, Any] | None) -> list[str]:
    """The comparison with ``--baseline``, as Markdown (nothing without a baseline)."""
    if not baseline:
        return []
    return [
        f"Baseline `{_cell(baseline['file'])}`: known failures (tolerated): "
        f"{', '.join(baseline['known']) or 'none'}; now passing (remove them from the baseline): "
        f"{', '.join(baseline['fixed']) or 'none'}; new failures: "
        f"{', '.join(baseline['new']) or 'none'}.",
    ]


def _graded(document: Mapping[str, Any]) -> str:
    """What the report grades: the whole spec, or the selection and how many clauses it has."""
    selection = document.get("selection")
    if not selection:
        return "every clause of the spec"
    return f"only the {len(document['clauses'])} clauses selected by `{_cell(selection)}`"


def _failure_lines(failure: Mapping[str, Any]) -> list[str]:
    """One failed (or errored) case of the report, as Markdown."""
    level = "" if failure.get("strict", True) else " (SHOULD: does not fail the run)"
    if failure.get("baselined"):
        level = " (baselined: a known failure, it does not fail the run)"
    if failure.get("outcome") == ERROR:
        level = " (error: the suite could not judge it; fails the run)"
    named = failure.get("clause") or ", ".join(failure.get("clauses") or []) or "-"
    lines = [
        f"### {_cell(failure['case'])}{level}",
        "",
        f"- clause: {named}",
        f"- expected: {_cell(failure.get('expected', ''))}",
        f"- received: {_cell(failure.get('received', ''))}",
        *(f"- also: {_cell(also)}" for also in failure.get("also") or []),
    ]
    if failure.get("not_reached"):
        lines.append(f"- not reached: {', '.join(failure['not_reached'])}")
    if failure.get("history"):
        lines.append(f"- whole event log: `{_cell(failure['history'])}`")
    if failure.get("log"):
        lines += ["", "```", *failure["log"], "```"]
    return [*lines, ""]


def report_paths(path: str | Path) -> tuple[Path, Path, Path]:
    """``PATH`` -> (``PATH.json``, ``PATH.md``, ``PATH.badge.json``); a ``.json``/``.md``
    suffix names the same siblings."""
    base = Path(path)
    if base.suffix in (".json", ".md"):
        base = base.with_suffix("")
    name = base.name
    return (
        base.with_name(name + ".json"),
        base.with_name(name + ".md"),
        base.with_name(name + ".badge.json"),
    )


def badge(document: Mapping[str, Any]) -> dict[str, Any]:
    """A shields.io endpoint badge: MUST clauses passed of those judged, coloured by result."""
    judged = [c for c in document["clauses"] if c["strict"] and c["status"] in (PASSED, FAILED)]
    passed = sum(1 for c in judged if c["status"] == PASSED)
    summary = document["summary"]
    if summary["failed_must"] or summary.get("errors"):
        color = "red"
    elif summary["failed_should"]:
        color = "yellow"
    else:
        color = "brightgreen"
    return {
        "schemaVersion": 1,
        "label": "replay/1",
        "message": f"{passed}/{len(judged)} MUST",
        "color": color,
    }


def write_report(path: str | Path, document: Mapping[str, Any]) -> tuple[Path, Path, Path]:
    """Write the JSON and Markdown reports and the badge; returns their paths."""
    json_path, md_path, badge_path = report_paths(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(document), encoding="utf-8")
    badge_path.write_text(json.dumps(badge(document)) + "\n", encoding="utf-8")
    return json_path, md_path, badge_path


def terminal_lines(
    verdicts: Sequence[ClauseVerdict], results: Sequence[CaseResult] = ()
) -> list[str]:
    """The clause summary printed at the end of the run (and the cases that errored)."""
    tally = counts(verdicts)
    lines = [", ".join(f"{n} {status}" for status, n in tally.items()) + f" (of {len(verdicts)})"]
    if must := failed_ids(verdicts, strict=True):
        lines.append(f"failed MUST clauses: {', '.join(must)}")
    if should := failed_ids(verdicts, strict=False):
        lines.append(f"failed SHOULD clauses (not failing the run): {', '.join(should)}")
    if errors := [r.nodeid.split("::")[-1] for r in results if r.outcome == ERROR]:
        lines.append(
            f"errored cases (no finding, no clause decided; the run fails): {', '.join(errors)}"
        )
    return lines
