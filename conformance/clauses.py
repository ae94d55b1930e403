"""The clauses of ``spec/protocol.md``: parse them, list them, check their IDs.

A clause is a list item that opens with a backticked ID, e.g. ``- `(ORD-1)` A subscription
MUST ...``. Its level is the strongest RFC 2119 keyword in its text; the tags
``*[internal]*`` and ``*[feature: X]*`` qualify it (spec §0).

Run ``python -m conformance.clauses`` to list them, ``--check`` to validate the IDs and every
reference to them, ``--cases ID`` to list the cases that cite a clause (see
:mod:`conformance.inventory`).
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conformance.spec_files import spec_dir

__all__ = [
    "Clause",
    "Level",
    "SpecError",
    "by_id",
    "check_ids",
    "load",
    "missing_anchors",
    "parse",
    "spec_dir",
]

# After the ID, the clause's stable anchor (spec §0), then its text.
_CLAUSE_START = re.compile(
    r"^- `\((?P<id>[A-Z]{3}-\d+)\)`\s*(?P<anchor><a id=\"[^\"]*\"></a>)?\s*(?P<rest>.*)$"
)
_ANY_ID = re.compile(r"`\(([A-Za-z]+-\w+)\)`")
_WELL_FORMED_ID = re.compile(r"^[A-Z]{3}-[1-9]\d*$")
_FEATURE_TAG = re.compile(r"\*\[feature: (?P<feature>[a-z-]+)\]\*")
_INTERNAL_TAG = "*[internal]*"
_WITHDRAWN_TAG = "*Withdrawn"

# A reference to clauses anywhere in the document, code blocks included: one ID (`SUB-4`,
# `(SUB-4)`), a whole family (`SUB-*`), or a range. A range has one canonical form, `SUB-1 to
# SUB-4`, both ends spelled in full so that a grep for either end finds it. The other ways one
# might be written (`SUB-1..4`, `SUB-1..SUB-4`, the same with a hyphen, an en or em dash or an
# ellipsis, `SUB-1 through SUB-4`, `SUB-1 to 4`) are matched too, so that the check can name
# them. Around punctuation only spaces may stand, so that an ID ending one line is not read as a
# range with a list item (`- 5 ...`) opening the next; around a word any whitespace may, since
# prose wraps.
_REFERENCE = re.compile(
    r"\b(?P<first>(?P<prefix>[A-Z]{3})-[0-9]+)\b"
    r"(?:(?P<separator>[ \t]*(?:\.{2,3}|[-\u2013\u2014\u2026])[ \t]*|\s+(?:to|through)\s+)"
    r"(?P<last>(?:[A-Z]{3}-)?[0-9]+)\b)?"
    r"|\b(?P<family>[A-Z]{3})-\*"
)
_CANONICAL_SEPARATOR = "to"

# The prefixes of names that look like clause IDs (three capitals, a hyphen, digits) but are not.
# They are excluded one by one, rather than by accepting only the prefixes the spec's clauses
# use, so that a reference with a mistyped prefix (`SBU-4`) fails the check; a new look-alike
# (`AES-128`) fails it too, loudly, with a message pointing here, which is the cheaper mistake.
_NOT_CLAUSE_PREFIXES = frozenset({"SHA", "UTF"})  # SHA-256, UTF-8


class Level(enum.Enum):
    """RFC 2119 strength of a clause, strongest first."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"


# Order matters: the first keyword found decides, so the strongest come first.
_KEYWORDS: tuple[tuple[re.Pattern[str], Level], ...] = (
    (re.compile(r"\b(MUST|SHALL|REQUIRED)\b"), Level.MUST),
    (re.compile(r"\b(SHOULD|RECOMMENDED)\b"), Level.SHOULD),
    (re.compile(r"\b(MAY|OPTIONAL)\b"), Level.MAY),
)


@dataclass(frozen=True)
class Clause:
    """One numbered clause of the spec."""

    id: str
    text: str
    level: Level
    section: str
    feature: str | None
    internal: bool
    withdrawn: bool

    @property
    def testable(self) -> bool:
        """True when a black-box suite can and should check this clause."""
        return not (self.internal or self.withdrawn)


class SpecError(ValueError):
    """The spec document breaks its own clause conventions."""


def _level_of(text: str) -> Level | None:
    for pattern, level in _KEYWORDS:
        if pattern.search(text):
            return level
    return None


def _items(lines: list[str]) -> Iterator[tuple[str, str]]:
    """Yield (section heading, full text) for each clause list item, joining wrapped lines."""
    section = ""
    current: list[str] | None = None
    for line in [*lines, ""]:
        if current is not None and line.startswith("  ") and line.strip():
            current.append(line.strip())
            continue
        if current is not None:
            yield section, " ".join(current)
            current = None
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif _CLAUSE_START.match(line):
            current = [line]


def parse(text: str) -> list[Clause]:
    """Parse every clause of a protocol document; raise SpecError on a malformed one."""
    clauses: list[Clause] = []
    for section, item in _items(text.splitlines()):
        match = _CLAUSE_START.match(item)
        assert match is not None  # _items only yields matching items
        rest = match["rest"]
        withdrawn = rest.startswith(_WITHDRAWN_TAG)
        level = _level_of(rest)
        if level is None:
            if not withdrawn:
                raise SpecError(f"{match['id']} has no RFC 2119 keyword: {rest[:80]!r}")
            level = Level.MAY
        feature = _FEATURE_TAG.search(rest)
        clauses.append(
            Clause(
                id=match["id"],
                text=rest,
                level=level,
                section=section,
                feature=feature["feature"] if feature else None,
                internal=_INTERNAL_TAG in rest,
                withdrawn=withdrawn,
            )
        )
    return clauses


def missing_anchors(text: str) -> list[str]:
    """Clauses without their stable anchor (``- `(SUB-4)` <a id="SUB-4"></a>...``), which the
    HTML report and any link to a clause rely on, whatever the section headings become."""
    problems = []
    for line in text.splitlines():
        match = _CLAUSE_START.match(line)
        if match and match["anchor"] != f'<a id="{match["id"]}"></a>':
            problems.append(f'clause {match["id"]} lacks its anchor <a id="{match["id"]}"></a>')
    return problems


def check_ids(text: str) -> list[str]:
    """Return the problems with a document's clause IDs (empty when it is sound)."""
    problems: list[str] = []
    try:
        clauses = parse(text)
    except SpecError as exc:
        return [str(exc)]
    seen: set[str] = set()
    for clause in clauses:
        if clause.id in seen:
            problems.append(f"duplicate clause ID {clause.id}")
        seen.add(clause.id)
    for cited in _ANY_ID.findall(text):
        if not _WELL_FORMED_ID.match(cited):
            problems.append(f"malformed clause ID ({cited})")
    for prefix in sorted(_NOT_CLAUSE_PREFIXES & {_prefix(clause_id) for clause_id in seen}):
        problems.append(f"clause prefix {prefix} is listed as not a clause (_NOT_CLAUSE_PREFIXES)")
    return problems + _check_references(text, seen)


def _prefix(clause_id: str) -> str:
    return clause_id.partition("-")[0]


def _check_references(text: str, defined: set[str]) -> list[str]:
    """Problems with the references to clauses, each with its line: IDs that name no clause,
    families with no clause, and ranges not written canonically or not running over clauses."""
    line_starts = [0] + [at + 1 for at, char in enumerate(text) if char == "\n"]
    families = {_prefix(clause_id) for clause_id in defined}
    problems: list[str] = []
    for match in _REFERENCE.finditer(text):
        line = bisect.bisect_right(line_starts, match.start())
        for problem in _reference_problems(match, defined, families):
            problems.append(f"line {line}: {problem}")
    return problems


def _reference_problems(match: re.Match[str], defined: set[str], families: set[str]) -> list[str]:
    prefix = match["family"] or match["prefix"]
    if prefix in _NOT_CLAUSE_PREFIXES:
        return []
    if match["family"] is not None:
        return [] if prefix in families else [f"{match[0]} names no clause family"]
    first: str = match["first"]
    if match["last"] is None:
        if first in defined:
            return []
        if prefix in families:
            return [f"{first} names no clause"]
        return [
            f"{first} names no clause, and no clause ID starts with {prefix}- (if {first} is"
            f" not a clause reference, list {prefix} in clauses._NOT_CLAUSE_PREFIXES)"
        ]
    return _range_problems(match, defined)


def _range_problems(match: re.Match[str], defined: set[str]) -> list[str]:
    first, written = match["first"], " ".join(match[0].split())
    spelled = "-" in match["last"]
    last = match["last"] if spelled else f"{match['prefix']}-{match['last']}"
    problems: list[str] = []
    if match["separator"].strip() != _CANONICAL_SEPARATOR or not spelled:
        problems.append(f"range {written} is not written {first} {_CANONICAL_SEPARATOR} {last}")
    problems += [
        f"range {written}: {end} names no clause" for end in (first, last) if end not in defined
    ]
    if _prefix(first) != _prefix(last):
        problems.append(f"range {written} mixes prefixes {_prefix(first)} and {_prefix(last)}")
    elif int(first.partition("-")[2]) >= int(last.partition("-")[2]):
        problems.append(f"range {written} is not in increasing order")
    return problems


def load(path: Path | None = None) -> list[Clause]:
    """Parse the clauses of ``spec/protocol.md`` (or of the document at ``path``)."""
    return parse((path or spec_dir() / "protocol.md").read_text(encoding="utf-8"))


def by_id(path: Path | None = None) -> dict[str, Clause]:
    """The clauses keyed by ID."""
    return {clause.id: clause for clause in load(path)}


if __name__ == "__main__":
    # The command line lives with the case registry (``--cases`` lists the cases citing a
    # clause), in the top layer; importing this module never reaches up there.
    from conformance.inventory import main

    raise SystemExit(main())
