"""A subscription's delivery task ends quietly when its own send ends it.

A send to a socket that has just closed runs the socket's disconnect in the sending task,
which stops every subscription of the socket, the sending one included. stop() cannot cancel
the task it runs in, so the task must see the ended state itself: before, it went on to the
next transition and logged ``IllegalTransition: caught_up is not allowed in ended`` with a
traceback on every cut (found by the JavaScript client's fault test).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from reference.core.model import Limits
from reference.core.payloads import encode_payload
from reference.core.subscribe_order import Start
from reference.core.subscription import State, Trigger
from reference.server.delivery import Subscription
from reference.server.live import LiveEdge
from reference.server.notifier import Notifier
from reference.server.shared_reads import SharedReads
from reference.server.wire import BatchEncoder
from reference.store import MemoryStore


class ClosingOutlet:
    """A socket that closes while the first packet is sent to it, as a cut one does."""

    def __init__(self) -> None:
        self.subscription: Subscription | None = None
        self.packets: list[str] = []
        self.events: list[tuple[str, object]] = []

    async def emit(self, event: str, payload: dict[str, object]) -> None:
        self.events.append((event, payload))

    async def send_packet(self, packet: str) -> None:
        self.packets.append(packet)
        assert self.subscription is not None
        await self.subscription.stop(Trigger.DISCONNECTED)  # the disconnect, in this task

    def backlogged(self) -> bool:
        return False

    async def drained(self) -> None:
        return None


async def test_a_send_that_ends_the_subscription_ends_its_task_without_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, outlet, ended = MemoryStore(), ClosingOutlet(), asyncio.Event()
    for n in range(3):
        await store.append("c", encode_payload({"n": n}, 65536), None)
    state = (await store.read("c", 1, 1)).state

    async def on_end(_: Subscription) -> None:
        ended.set()

    reads, notifier = SharedReads(store), Notifier()
    live = LiveEdge(reads, notifier, BatchEncoder(), Limits(max_batch=1), 1 << 20)
    subscription = Subscription(
        channel="c", start=Start(state, 1), reads=reads, notifier=notifier, live=live,
        outlet=outlet, limits=Limits(max_batch=1), max_batch_bytes=1 << 20,
        encoder=BatchEncoder(), may_deliver=lambda _: True, on_end=on_end,
    )  # fmt: skip
    outlet.subscription = subscription
    with caplog.at_level(logging.ERROR, logger="reference.server.delivery"):
        subscription.launch()
        await asyncio.wait_for(ended.wait(), 5)
        await asyncio.sleep(0.05)  # had the task gone on, it would have read and failed by now
    assert subscription.state is State.ENDED
    assert len(outlet.packets) == 1  # nothing sent after the send that ended it
    assert outlet.events == []  # a disconnect is not announced (no replay:unsubscribed)
    assert [r.getMessage() for r in caplog.records] == []
