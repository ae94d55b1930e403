"""The live edge (``reference.server.live``): caught-up subscriptions served by one task per
channel, with the delivery guarantees of their own tasks.

Each test drives real ``Subscription`` objects over a ``MemoryStore`` with outlets that record
what a socket would have been sent, and publishes the way the node does (append, then wake).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from reference.core.model import Limits
from reference.core.payloads import RetentionUpdate, encode_payload
from reference.core.subscribe_order import Start
from reference.core.subscription import State, Trigger
from reference.server.delivery import Subscription
from reference.server.live import LiveEdge
from reference.server.notifier import Notifier
from reference.server.shared_reads import SharedReads
from reference.server.wire import BatchEncoder
from reference.store import MemoryStore

LIMITS = Limits(max_batch=50)
SETTLE_S = 0.05


@dataclass
class Outlet:
    """A socket: records offsets and events; ``full`` makes it report a backlog (FLW-2)."""

    packets: list[str] = field(default_factory=list)
    events: list[tuple[str, object]] = field(default_factory=list)
    full: bool = False
    _room: asyncio.Event = field(default_factory=asyncio.Event)

    async def emit(self, event: str, payload: dict[str, object]) -> None:
        self.events.append((event, payload))

    async def send_packet(self, packet: str) -> None:
        self.packets.append(packet)

    def backlogged(self) -> bool:
        return self.full

    async def drained(self) -> None:
        while self.full:
            await self._room.wait()

    def drain(self) -> None:
        self.full = False
        self._room.set()

    def offsets(self) -> list[int]:
        return [m["offset"] for p in self.packets for m in json.loads(p[1:])[1]["messages"]]


class Node:
    """The parts of a node a subscription uses, wired as ``ReplayNode`` wires them."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.reads = SharedReads(self.store)
        self.notifier = Notifier()
        self.encoder = BatchEncoder()
        self.live = LiveEdge(self.reads, self.notifier, self.encoder, LIMITS, 1 << 20)
        self.allowed = True
        self.ended: list[Subscription] = []

    async def publish(self, channel: str, n: int = 1) -> None:
        for _ in range(n):
            await self.store.append(channel, encode_payload({"pad": "x"}, 65536), None)
        self.notifier.head_moved(channel)

    async def subscribe(self, channel: str, outlet: Outlet, start: int = 1) -> Subscription:
        state = await self.store.state(channel)

        async def on_end(subscription: Subscription) -> None:
            self.ended.append(subscription)

        subscription = Subscription(
            channel=channel, start=Start(state, start), reads=self.reads,
            notifier=self.notifier, live=self.live, outlet=outlet, limits=LIMITS,
            max_batch_bytes=1 << 20, encoder=self.encoder,
            may_deliver=lambda _: self.allowed, on_end=on_end,
        )  # fmt: skip
        subscription.launch()
        return subscription


async def settle() -> None:
    await asyncio.sleep(SETTLE_S)


async def test_caught_up_subscriptions_share_one_read_and_one_packet() -> None:
    node, outlets = Node(), [Outlet() for _ in range(20)]
    await node.publish("c", 3)
    for outlet in outlets:
        await node.subscribe("c", outlet)
    await settle()
    assert node.live.parked("c") == 20
    reads_before = node.reads.store_reads
    for _ in range(5):
        await node.publish("c")
        await settle()
    assert all(o.offsets() == [1, 2, 3, 4, 5, 6, 7, 8] for o in outlets)
    assert node.reads.store_reads - reads_before <= 10  # per publish: one read, one "nothing more"
    live_packets = {o.packets[-1] for o in outlets}
    assert len(live_packets) == 1  # the same encoded packet for every socket
    assert [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("sub")] == []


async def test_a_publish_racing_the_park_is_delivered() -> None:
    node, outlet = Node(), Outlet()
    other = Outlet()
    await node.subscribe("c", other)  # a serving task exists before the racer parks
    await settle()
    subscription = await node.subscribe("c", outlet)
    await node.store.append("c", encode_payload(1, 65536), None)  # stored, wake not yet sent
    await settle()
    node.notifier.head_moved("c")
    await settle()
    assert outlet.offsets() == [1] and other.offsets() == [1]
    assert subscription.state is State.WAITING


async def test_a_full_socket_leaves_the_edge_drains_and_comes_back_without_a_gap() -> None:
    node, slow, fast = Node(), Outlet(), Outlet()
    slow_sub = await node.subscribe("c", slow)
    await node.subscribe("c", fast)
    await settle()
    slow.full = True
    await node.publish("c", 2)
    await settle()
    assert node.live.parked("c") == 1 and slow_sub.state is State.DRAINING
    await node.publish("c", 2)
    await settle()
    assert slow.offsets() == [] and fast.offsets() == [1, 2, 3, 4]
    slow.drain()
    await settle()
    assert slow.offsets() == [1, 2, 3, 4] and node.live.parked("c") == 2
    await node.publish("c")
    await settle()
    assert slow.offsets() == fast.offsets() == [1, 2, 3, 4, 5]


async def test_stopping_a_parked_subscription_sends_nothing_more_and_ends_the_task() -> None:
    node, outlet = Node(), Outlet()
    subscription = await node.subscribe("c", outlet)
    await settle()
    await subscription.stop(Trigger.UNSUBSCRIBED)
    await node.publish("c")
    await settle()
    assert outlet.packets == [] and outlet.events == []  # no replay:unsubscribed either
    assert node.live.parked("c") == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("live:")]


async def test_retention_overtaking_a_parked_subscription_ends_it_truncated() -> None:
    node, lagging, current = Node(), Outlet(), Outlet()
    await node.publish("c", 3)
    lag = await node.subscribe("c", lagging)
    await settle()
    lagging.full = True  # it stops reading at 3
    await node.subscribe("c", current)
    await settle()
    await node.publish("c", 5)
    await settle()  # the current reader has them all; the lagging one holds offset 4
    await node.store.set_retention("c", RetentionUpdate(max_messages=2))
    await settle()
    lagging.drain()
    await settle()
    assert lag.state is State.ENDED
    assert lagging.events == [("replay:unsubscribed", {"channel": "c", "reason": "truncated"})]
    assert current.offsets() == [1, 2, 3, 4, 5, 6, 7, 8]


async def test_revoked_grants_end_parked_subscriptions_at_the_next_batch() -> None:
    node, outlet = Node(), Outlet()
    subscription = await node.subscribe("c", outlet)
    await settle()
    node.allowed = False
    await node.publish("c")
    await settle()
    assert subscription.state is State.ENDED and outlet.packets == []
    assert outlet.events == [("replay:unsubscribed", {"channel": "c", "reason": "revoked"})]


async def test_a_broken_store_ends_parked_subscriptions_with_internal() -> None:
    node, outlets = Node(), [Outlet(), Outlet()]
    for outlet in outlets:
        await node.subscribe("c", outlet)
    await settle()

    async def broken(channel: str, start: int, limit: int) -> object:
        raise RuntimeError("disk on fire")

    node.store.read = broken  # type: ignore[method-assign,assignment]
    node.notifier.head_moved("c")
    await settle()
    for outlet in outlets:
        assert outlet.events == [("replay:unsubscribed", {"channel": "c", "reason": "internal"})]
    assert node.live.parked("c") == 0


async def test_channels_are_served_independently() -> None:
    node, a, b = Node(), Outlet(), Outlet()
    await node.subscribe("a", a)
    await node.subscribe("b", b)
    await settle()
    await node.publish("a", 2)
    await node.publish("b")
    await settle()
    assert (a.offsets(), b.offsets()) == ([1, 2], [1])
