"""The reliability campaign: parts that each attack a running reference server one way while a
well-behaved client checks that it still gets everything, in order.

Each part is a module with ``async def run(budget_s: float) -> PartResult``; ``PARTS`` names
them in the order they run. ``python -m bench.reliability`` runs them and exits 1 if any part
found an anomaly. Later parts (reconnect storm, slow consumer, malformed input at volume,
scenarios at volume) register here the same way. ``fleet`` (processes and the backend client),
``ledger`` (pure judging) and ``follower`` (a subscriber that resumes) serve the store parts.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from bench.reliability import crash_loop, partition, raw_protocol, store_outage
from bench.reliability.result import PartResult

Part = Callable[[float], Coroutine[Any, Any, PartResult]]

PARTS: dict[str, Part] = {
    "raw-protocol": raw_protocol.run,
    "crash-loop": crash_loop.run,
    "store-outage": store_outage.run,
    "partition": partition.run,
}
