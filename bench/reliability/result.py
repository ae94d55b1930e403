"""What a part of the campaign reports: its counts, its one-line summary, its anomalies."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PartResult:
    """One part's outcome; any anomaly fails the campaign."""

    name: str
    summary: str  # the part's one line, without its name
    counts: dict[str, int] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.name}: {self.summary}; {len(self.anomalies):,} anomalies"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
