"""The report as one self-contained HTML file (``--replay-html PATH``): no script, no external
asset, readable offline.

It shows, in this order: the target and the summary; every failed or errored case (the clause
it names, expected, received, the shrunk scenario steps where there are any, the event log);
a grid per section of the clauses coloured by grade; and each graded clause with its text
from the spec and a link to it there (by its stable anchor, spec §0).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from conformance.spec_files import spec_dir

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["render_html", "write_html"]

_STYLE: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:2em}
.grid{display:flex;flex-wrap:wrap;gap:3px;margin:.3em 0 1em}
.cell{display:inline-block;padding:2px 6px;border-radius:3px;text-decoration:none;color:#000;
font:12px monospace}
.passed{background:#9be9a8}.failed{background:#ff8182}.not-claimed{background:#ddd}
.not-covered{background:#fff;border:1px dashed #999}.error{background:#ffd33d}
.failure{border-left:4px solid #cf222e;padding:.2em 1em;margin:1em 0;background:#fff8f8}
.failure.tolerated{border-color:#bf8700;background:#fffbea}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:12px}
dt{font-weight:bold}.clause{margin:.8em 0}.muted{color:#666}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _status_class(status: str) -> str:
    return status.replace(" ", "-")


@dataclass(frozen=True)
class _Links:
    """Where a clause's ID links: to its entry in the page when graded, else to the spec."""

    graded: frozenset[str]
    spec_href: str

    def clause(self, clause_id: str) -> str:
        href = f"#clause-{clause_id}" if clause_id in self.graded else self.spec(clause_id)
        return f'<a href="{_e(href)}">{_e(clause_id)}</a>'

    def spec(self, clause_id: str) -> str:
        return f"{self.spec_href}#{clause_id}"


def _failure(failure: Mapping[str, Any], links: _Links) -> str:
    """One failed or errored case: what it names, expected and received, steps, log."""
    tolerated = failure.get("baselined") or not failure.get("strict", True)
    named = failure.get("clauses") or []
    label = "error: no finding, no clause decided" if failure.get("outcome") == "error" else ""
    label = "baselined" if failure.get("baselined") else label
    label = label or ("" if failure.get("strict", True) else "SHOULD: does not fail the run")
    parts = [
        f'<section class="failure{" tolerated" if tolerated else ""}">',
        f"<h3>{_e(failure['case'])}</h3>",
        f'<p class="muted">{_e(label)}</p>' if label else "",
        "<dl>",
        f"<dt>clause</dt><dd>{', '.join(links.clause(c) for c in named) or '-'}</dd>",
        f"<dt>expected</dt><dd>{_e(failure.get('expected', ''))}</dd>",
        f"<dt>received</dt><dd><code>{_e(failure.get('received', ''))}</code></dd>",
        *(f"<dt>also</dt><dd>{_e(also)}</dd>" for also in failure.get("also") or []),
    ]
    if failure.get("not_reached"):
        reached = ", ".join(links.clause(c) for c in failure["not_reached"])
        parts.append(f"<dt>not reached</dt><dd>{reached}</dd>")
    if failure.get("history"):
        parts.append(f"<dt>whole event log</dt><dd><code>{_e(failure['history'])}</code></dd>")
    parts.append("</dl>")
    if failure.get("steps"):
        parts.append(f"<h4>steps (shrunk)</h4><pre>{_e(chr(10).join(failure['steps']))}</pre>")
    if failure.get("log"):
        parts.append(f"<h4>event log</h4><pre>{_e(chr(10).join(failure['log']))}</pre>")
    return "\n".join([*parts, "</section>"])


def _grid(clauses: list[Mapping[str, Any]]) -> str:
    """The clauses per section, one coloured cell each, linking to the clause below."""
    rows = []
    for section, members in groupby(clauses, key=lambda c: c["section"]):
        cells = "".join(
            f'<a class="cell {_status_class(c["status"])}" href="#clause-{_e(c["id"])}" '
            f'title="{_e(c["id"])} {_e(c["level"])}: {_e(c["status"])}">{_e(c["id"])}</a>'
            for c in members
        )
        rows.append(f'<h3>{_e(section)}</h3><div class="grid">{cells}</div>')
    return "\n".join(rows)


def _clause(clause: Mapping[str, Any], text: str, links: _Links) -> str:
    cases = "".join(f"<li><code>{_e(c)}</code></li>" for c in clause["cases"])
    note = f' <span class="muted">({_e(clause["note"])})</span>' if clause["note"] else ""
    return (
        f'<div class="clause" id="clause-{_e(clause["id"])}">'
        f'<span class="cell {_status_class(clause["status"])}">{_e(clause["id"])}</span> '
        f"<b>{_e(clause['level'])}</b> {_e(clause['status'])}{note} "
        f'<a href="{_e(links.spec(clause["id"]))}">in the spec</a>'
        f"<p>{_e(text)}</p>{f'<ul>{cases}</ul>' if cases else ''}</div>"
    )


def render_html(document: Mapping[str, Any], texts: Mapping[str, str], spec_href: str) -> str:
    """The report (as ``report.render_json`` builds it) as one HTML page; ``texts`` are the
    clauses' texts by ID, ``spec_href`` the address of ``protocol.md``."""
    target, summary = document["target"], document["summary"]
    impl = (target.get("info") or {}).get("implementation") or {}
    selection = document.get("selection")
    graded = f"only the clauses selected by {selection}" if selection else "every clause"
    tally = ", ".join(f"{n} {status}" for status, n in summary["clauses"].items())
    failures = document["failures"]
    links = _Links(frozenset(c["id"] for c in document["clauses"]), spec_href)
    body = [
        "<h1>replay/1 conformance report</h1>",
        f"<p>target: <code>{_e(target.get('description', ''))}</code>; implementation: "
        f"{_e(impl.get('name', '?'))} {_e(impl.get('version', ''))}</p>",
        f'<p id="summary">{_e(tally)} ({_e(graded)}). Failed MUST clauses: '
        f"{', '.join(links.clause(c) for c in summary['failed_must']) or 'none'}.</p>",
        f'<h2 id="failures">Failures ({len(failures)})</h2>',
        *(_failure(f, links) for f in failures),
        "" if failures else "<p>none</p>",
        '<h2 id="grid">Clauses by section</h2>',
        _grid(document["clauses"]),
        '<h2 id="clauses">Clauses</h2>',
        *(_clause(c, texts.get(c["id"], ""), links) for c in document["clauses"]),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>replay/1 conformance report</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_html(path: str | Path, document: Mapping[str, Any], texts: Mapping[str, str]) -> Path:
    """Write the HTML report, linking clauses to the spec file this suite reads."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_href = (spec_dir() / "protocol.md").resolve().as_uri()
    out.write_text(render_html(document, texts, spec_href), encoding="utf-8")
    return out
