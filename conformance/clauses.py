"""The clauses of ``spec/protocol.md``: parse them, list them, check their IDs.

A clause is a list item that opens with a backticked ID, e.g. ``- `(ORD-1)` A subscription
MUST ...``. Its level is the strongest RFC 2119 keyword in its text; the tags
``*[internal]*`` and ``*[feature: X]*`` qualify it (spec §0).

Run ``python -m conformance.clauses`` to list them, ``--check`` to validate the IDs,
``--cases ID`` to list the cases that cite a clause (see :mod:`conformance.inventory`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conformance.spec_files import spec_dir

__all__ = ["Clause", "Level", "SpecError", "by_id", "check_ids", "load", "parse", "spec_dir"]

_CLAUSE_START = re.compile(r"^- `\((?P<id>[A-Z]{3}-\d+)\)`\s*(?P<rest>.*)$")
_ANY_ID = re.compile(r"`\(([A-Za-z]+-\w+)\)`")
_WELL_FORMED_ID = re.compile(r"^[A-Z]{3}-[1-9]\d*$")
_FEATURE_TAG = re.compile(r"\*\[feature: (?P<feature>[a-z-]+)\]\*")
_INTERNAL_TAG = "*[internal]*"
_WITHDRAWN_TAG = "*Withdrawn"


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
