"""The reliability campaign: parts that each attack a running reference server one way while a
well-behaved client checks that it still gets everything, in order.

Each part is a module with ``async def run(budget_s: float) -> PartResult``; ``PARTS`` names
them in the order they run. ``python -m bench.reliability`` runs them and exits 1 if any part
found an anomaly. Shared by several parts: ``processes`` and ``fleet`` (servers and nodes
started and stopped), ``backend`` (the HTTP API), ``ledger`` (pure judging of what was
acknowledged against what was stored), ``follower`` (a subscriber that resumes after a
disconnect) and ``resubscriber`` (one that subscribes again after the server ended a
subscription, judged stream by stream).
``malformed_input`` draws its payloads with ``fuzz_corpus``, shapes them with
``fuzz_mutations`` and ``fuzz_requests``, fires them with ``fuzz_fire``, and judges the answers
with ``fuzz_judge``, ``fuzz_http_judge`` and ``fuzz_ledger``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from bench.reliability import (
    crash_loop,
    malformed_input,
    partition,
    raw_protocol,
    reconnect_storm,
    scenarios,
    slow_consumer,
    store_outage,
)
from bench.reliability.result import PartResult

Part = Callable[[float], Coroutine[Any, Any, PartResult]]

PARTS: dict[str, Part] = {
    "raw-protocol": raw_protocol.run,
    "crash-loop": crash_loop.run,
    "store-outage": store_outage.run,
    "partition": partition.run,
    "reconnect-storm": reconnect_storm.run,
    "slow-consumer": slow_consumer.run,
    "malformed-input": malformed_input.run,
    "scenarios": scenarios.run,
}
