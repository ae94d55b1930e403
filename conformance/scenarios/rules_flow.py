"""The scenario rules about flow: a reader that stops reading while a flood arrives.

A stall alone proves little: between a server and a stalled reader sit the server's send
buffer, the kernel's buffers and the proxy's, several MiB on loopback, so a small flood fits
in them and never makes the server decide anything. The flood here outlasts them, so the
server must pause the subscription (FLW-1) or end it (SIG-1); dropping what does not fit is
what the checkers then see as a gap or a loss. The reader then reads the channel's history
from offset 1: a store that silently caps a long channel (HIS-4) shows there.
"""

from __future__ import annotations

import asyncio
import functools

from hypothesis.stateful import precondition, rule

from conformance.faults import Direction
from conformance.scenarios.model import (
    SLOW_CONCURRENCY,
    SLOW_DRAIN_S,
    SLOW_MESSAGES,
    SLOW_PAD,
    ClientHandle,
    settled,
)
from conformance.scenarios.rules_history import HistoryRules
from conformance.scenarios.stage import CLIENTS, LABELS, NODES

__all__ = ["FlowRules"]


class FlowRules(HistoryRules):
    """Rules that push more at a reader than it reads."""

    # Once per example: each flood costs about a second, and one in a scenario already puts
    # every later step (resumes, subscribes from 1, history reads) against a long channel.
    @precondition(lambda self: not self.slow_flooded)
    @rule(handle=CLIENTS, label=LABELS, node=NODES)
    def slow_reader(self, handle: ClientHandle, label: str, node: int) -> None:
        """``handle`` stops reading ``label`` while thousands of messages arrive, then reads
        again: it gets every one in order, or its subscription ends (FLW-1, SIG-1)."""
        channel = self.channel(label)
        # The drawn client, or else the first that reads the channel: the flood is the point.
        reader = self.reader(handle, label)
        span = reader.client.subscription(channel) if reader is not None else None
        if reader is None or span is None:
            return
        handle = reader
        self.slow_flooded = True

        async def go() -> None:
            backend = self.target.backend_at(node)
            handle.proxy.stall(Direction.DOWN)
            head = 0
            for first in range(0, SLOW_MESSAGES, SLOW_CONCURRENCY):
                answers = await asyncio.gather(
                    *(
                        backend.publish(channel, {**self.next_data(), "pad": SLOW_PAD})
                        for _ in range(min(SLOW_CONCURRENCY, SLOW_MESSAGES - first))
                    )
                )
                head = max(head, *(int(a["offset"]) for a in answers))
            handle.proxy.heal()
            handle.stalled = False
            await handle.client.wait_until(
                functools.partial(settled, span, head),
                f"{handle.label} reading {channel} again up to {head}",
                timeout=SLOW_DRAIN_S,
                clause="FLW-1",
                channel=channel,
            )
            if "history" in self.features:
                # It checks what it read slowly against the channel's history from offset 1.
                await self.history_judged(handle, label, "first")

        self.step(go)
