"""What the scenarios did, counted per example, for runs that report volume.

With ``REPLAY_SCENARIO_TALLY=PATH`` set, every example the machines run (shrink replays
included: each is a whole scenario, judged like any other) appends one JSON line to PATH:
the machine, its rules run, the faults it injected, the publishes and deliveries its checkers
judged, and the problems found. ``total`` adds a file up. The counts come from the run itself,
so a volume figure is what was checked, not what was asked for.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

TALLY_ENV: Final = "REPLAY_SCENARIO_TALLY"


@dataclass
class ExampleTally:
    """One example's counts."""

    machine: str
    steps: int = 0  # rules run, initializers included
    faults: int = 0  # link cuts, stalls, delays, disconnects, node isolations, restarts
    publishes: int = 0  # publish attempts in the trace
    deliveries: int = 0  # messages received (live, replayed or read from history)
    problems: int = 0  # findings of this example (any fails the run)

    def record(self) -> None:
        path = os.environ.get(TALLY_ENV)
        if path:
            with Path(path).open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(self)) + "\n")


def total(path: Path) -> dict[str, int]:
    """The file's counts added up, with ``examples`` (its lines)."""
    sums: dict[str, int] = {"examples": 0}
    for line in path.read_text(encoding="utf-8").splitlines():
        sums["examples"] += 1
        for key, value in json.loads(line).items():
            if isinstance(value, int):
                sums[key] = sums.get(key, 0) + value
    return sums
