"""The reliability campaign: parts that each attack a running reference server one way while a
well-behaved client checks that it still gets everything, in order.

Each part is a module with ``async def run(budget_s: float) -> PartResult``; ``PARTS`` names
them in the order they run. ``python -m bench.reliability`` runs them and exits 1 if any part
found an anomaly. ``malformed_input`` draws its payloads with ``fuzz_corpus``, shapes them
with ``fuzz_mutations`` and ``fuzz_requests``, fires them with ``fuzz_fire``, and judges the
answers with ``fuzz_judge``, ``fuzz_http_judge`` and ``fuzz_ledger``. Later parts (crash
loop, store outage, partitions, reconnect storm, slow consumer) register here the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from bench.reliability import malformed_input, raw_protocol, scenarios
from bench.reliability.result import PartResult

Part = Callable[[float], Coroutine[Any, Any, PartResult]]

PARTS: dict[str, Part] = {
    "raw-protocol": raw_protocol.run,
    "malformed-input": malformed_input.run,
    "scenarios": scenarios.run,
}
