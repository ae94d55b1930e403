"""Which part of the spec a run judges: ``--clause`` and ``--feature`` resolved to clause IDs.

A clause selector is an ID (``SUB-4``), a family prefix (``SUB`` or ``SUB-``) or a section
(``§10.2``, or ``10.2``: the clauses of that section and of its subsections). A feature
selector names a feature of spec §0 (``idempotency``): its tagged clauses, and the cases that
need it. A case is selected when it cites a selected clause or needs a selected feature; the
report then grades only the selected clauses. Pure functions, testable without pytest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conformance.errors import SuiteError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from conformance.clauses import Clause

__all__ = ["Selection", "matches"]


def _section_number(section: str) -> str:
    """``"10.2 Retention"`` -> ``"10.2"``; a heading without a number -> ``""``."""
    head = section.split(" ", 1)[0].rstrip(".")
    return head if head[:1].isdigit() else ""


def matches(selector: str, clause: Clause) -> bool:
    """Whether one ``--clause`` selector selects ``clause``."""
    wanted = selector.strip().removeprefix("§").strip()
    if wanted[:1].isdigit():
        number = _section_number(clause.section)
        return number == wanted.rstrip(".") or number.startswith(wanted.rstrip(".") + ".")
    wanted = wanted.upper()
    if "-" in wanted.rstrip("-"):
        return clause.id == wanted
    return clause.id.startswith(wanted.rstrip("-") + "-")


@dataclass(frozen=True)
class Selection:
    """The ``--clause`` and ``--feature`` selectors of a run (both empty: everything)."""

    clauses: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.clauses or self.features)

    def clause_ids(self, catalog: Sequence[Clause], known_features: Iterable[str]) -> set[str]:
        """The IDs the selectors name; raises :class:`SuiteError` for one that names nothing."""
        selected: set[str] = set()
        for selector in self.clauses:
            found = {c.id for c in catalog if matches(selector, c)}
            if not found:
                raise SuiteError(f"replay: --clause {selector!r} selects no clause of the spec")
            selected |= found
        known = set(known_features)
        for feature in self.features:
            if feature not in known:
                raise SuiteError(
                    f"replay: --feature {feature!r} is not a feature of replay/1 "
                    f"(one of {', '.join(sorted(known))})"
                )
            selected |= {c.id for c in catalog if c.feature == feature}
        return selected

    def selects_case(
        self, cited: Iterable[str], needed: Iterable[str], clause_ids: set[str]
    ) -> bool:
        """Whether a case citing ``cited`` and needing ``needed`` features is selected."""
        if not self.active:
            return True
        return bool(clause_ids.intersection(cited)) or bool(set(self.features) & set(needed))

    def describe(self) -> str:
        """The selectors as given (``--clause SUB-4 --feature idempotency``)."""
        parts = [f"--clause {c}" for c in self.clauses]
        parts += [f"--feature {f}" for f in self.features]
        return " ".join(parts) or "everything"
