"""The scenario rules that injure connections: disconnects, cuts, stalls, delays, heals,
and on a cluster every link of one node at once. Each client talks to its node through its
own :class:`~conformance.faults.FaultProxy`, so a fault acts at the TCP level."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.faults import Direction
from conformance.scenarios.model import DISCONNECT_TIMEOUT_S, ClientHandle
from conformance.scenarios.stage import CLIENTS, NODES, Stage

__all__ = ["FaultRules"]


class FaultRules(Stage):
    """Faults on clients' links."""

    @rule(handle=CLIENTS)
    def disconnect(self, handle: ClientHandle) -> None:
        if handle.client.connected and not handle.stalled:
            self.tally.faults += 1
            self.step(handle.client.disconnect)

    @rule(handle=CLIENTS)
    def cut(self, handle: ClientHandle) -> None:
        async def go() -> None:
            await handle.proxy.cut()
            if handle.client.connected:
                await handle.client.wait_disconnected(timeout=DISCONNECT_TIMEOUT_S)

        self.tally.faults += 1
        self.step(go)
        handle.stalled = False

    @rule(handle=CLIENTS, direction=st.sampled_from([Direction.DOWN, Direction.BOTH]))
    def stall(self, handle: ClientHandle, direction: Direction) -> None:
        self.tally.faults += 1
        handle.proxy.stall(direction)
        handle.stalled = True

    @rule(handle=CLIENTS)
    def delay(self, handle: ClientHandle) -> None:
        self.tally.faults += 1
        handle.proxy.delay(0.02, 0.03, seed=7)

    @precondition(lambda self: self.last_node > 0)
    @rule(node=NODES, how=st.sampled_from(("cut", "stall")))
    def isolate_node(self, node: int, how: str) -> None:
        """Cut or stall every client link of one node of a cluster at once: the clients of
        the other nodes go on receiving everything (the checkers' lost, HND-2)."""
        isolated = [c for c in self.handles if c.node == node]
        self.tally.faults += 1

        async def go() -> None:
            for handle in isolated:
                if how == "stall":
                    handle.proxy.stall(Direction.BOTH)
                    handle.stalled = True
                    continue
                await handle.proxy.cut()
                handle.stalled = False
                if handle.client.connected:
                    await handle.client.wait_disconnected(timeout=DISCONNECT_TIMEOUT_S)

        self.step(go)

    @rule(handle=CLIENTS)
    def heal(self, handle: ClientHandle) -> None:
        handle.proxy.heal()
        handle.stalled = False
