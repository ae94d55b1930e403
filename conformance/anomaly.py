"""What a whole-trace checker reports: an :class:`Anomaly`, named by kind, with its clause.

Its own module so that both checker modules (``checkers`` and ``composition``) can name
anomalies without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANOMALY_CLAUSES", "REVOCATION_GRACE_S", "Anomaly"]

ANOMALY_CLAUSES = {
    "lost": "HND-2",
    "duplicate": "ORD-3",
    "reorder": "ORD-2",
    "gap": "ORD-2",
    "divergence": "CNS-1",
    "phantom": "MSG-2",
    "duplicated-publish": "PUB-4",
    "duplicate-id": "IDM-6",
    "leak": "ACC-5",
    "unsignalled-loss": "SIG-1",
    # conformance.composition: what two rules meeting break
    "reassigned": "OFF-3",
    "rewritten": "OFF-3",
    "head-regressed": "OFF-4",
    "first-regressed": "OFF-4",
    "resurrected": "SUB-6",
    "cursor-regressed": "ACK-4",
    "after-revoke": "ACC-6",
    "after-delete": "SES-15",
}
REVOCATION_GRACE_S = 1.0  # SES-15, ACC-6: "within 1 second"


@dataclass(frozen=True)
class Anomaly:
    """One thing the trace shows went wrong, with the log entries that show it."""

    kind: str
    detail: str
    seqs: tuple[int, ...] = ()

    @property
    def clause(self) -> str:
        return ANOMALY_CLAUSES[self.kind]

    def __str__(self) -> str:
        return f"{self.kind} ({self.clause}): {self.detail}"
