"""What a part of the campaign reports: its counts, its one-line summary, its anomalies."""

from __future__ import annotations

import math
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


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of ``values`` (``q`` in 0..1); None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def seconds(value: float | None) -> str:
    """A duration for a summary line: ``1.23 s``, or ``-`` when there is none."""
    return "-" if value is None else f"{value:.2f} s"
