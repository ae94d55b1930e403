"""Delivery (spec §7.1 `replay:messages`, §10.1 order, §10.2 handoff, §10.3 one order,
§10.10 flow control).

Order (ORD-1..3), one epoch per subscription and consecutive offsets per event (DLV-1) are
also checked on the fly in every case by the recording client; the cases here create the
conditions under which they are hardest to keep: publishes racing a subscribe, many
publishers, many subscriptions on one socket, a subscriber that stops reading.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from conformance import (
    ReplayClient,
    Target,
    case,
    current,
    expect,
    expect_offsets,
    expect_ok,
    fail,
    grant,
)
from conformance.faults import Direction
from conformance.text import ranges

# How long a live message may take, publish acknowledged to delivered (DLV-4, FLW-4).
LIVE_BOUND_S = 1.0
STALLED_BOUND_S = 5.0  # FLW-4: a stalled socket never holds others up for longer
# How a server may end a subscription whose socket stopped reading (§7.4): giving up on it
# (LIF-4), or a store or server failure meanwhile (LIF-5, LIF-6). Never a skip (SIG-1).
SLOW_READER_ENDINGS = ("lagging", "unavailable", "internal")
# How long a subscriber is kept stalled in the flow-control cases (well below the Engine.IO
# ping timeout, so that the connection survives it).
STALL_S = 2.0

Publish = Callable[[object], Awaitable[int]]  # publishes data, returns its offset


class Burst:
    """``count`` publishes to one channel from several concurrent publishers.

    Publisher ``i`` publishes items ``i, i + k, i + 2k, ...`` one after the other (``k``
    publishers), so that publishes are concurrent with each other and with whatever the
    case does meanwhile. ``acked`` maps each acknowledged offset to its data.
    """

    def __init__(self, publishers: Sequence[Publish], count: int, tag: str = "") -> None:
        self.publishers = list(publishers)
        self.count = count
        self.tag = tag
        self.acked: dict[int, object] = {}
        self.orders: list[list[int]] = [[] for _ in self.publishers]  # per publisher
        self._changed = asyncio.Event()
        self._task: asyncio.Future[list[None]] | None = None

    def start(self) -> None:
        """Start publishing in the background."""
        workers = (self._work(i) for i in range(len(self.publishers)))
        task = self._task = asyncio.ensure_future(asyncio.gather(*workers))
        # A case that fails half-way must not leave publishes running into the next one.
        current().defer(lambda: _cancel(task))

    async def _work(self, index: int) -> None:
        publish = self.publishers[index]
        for item in range(index, self.count, len(self.publishers)):
            data = {"tag": self.tag, "i": item, "by": index}
            offset = await publish(data)
            self.acked[offset] = data
            self.orders[index].append(offset)
            self._changed.set()
            self._changed = asyncio.Event()

    async def reached(self, count: int) -> None:
        """Wait until at least ``count`` publishes were acknowledged."""
        while len(self.acked) < count and not (self._task and self._task.done()):
            await self._changed.wait()

    async def done(self) -> None:
        """Wait for every publish (re-raising a publisher's failure)."""
        if self._task is not None:
            await self._task

    def max_acked(self) -> int:
        """The highest acknowledged offset (0 if none)."""
        return max(self.acked, default=0)


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def backend_publisher(target: Target, channel: str, node: int = 0) -> Publish:
    """A publisher through the backend API (of node ``node``)."""
    backend = target.backend_at(node)

    async def publish(data: object) -> int:
        return int((await backend.publish(channel, data))["offset"])

    return publish


def client_publisher(client: ReplayClient, channel: str) -> Publish:
    """A publisher through ``replay:publish`` on ``client``'s socket."""

    async def publish(data: object) -> int:
        reply = expect_ok(await client.publish(channel, data), clause="PUB-6")
        return int(reply["offset"])

    return publish


async def _fill(target: Target, channel: str, count: int, size: int = 0) -> None:
    """Publish ``count`` messages (``size`` bytes of padding each) in concurrent chunks."""
    pad = "x" * size
    for start in range(0, count, 50):
        chunk = range(start, min(count, start + 50))
        await asyncio.gather(
            *(target.backend.publish(channel, {"n": n, "pad": pad}) for n in chunk)
        )


# --- DLV-1, DLV-3, DLV-4 --------------------------------------------------------------------


def _check_events(client: ReplayClient, clause: str) -> int:
    """Check every replay:messages ``client`` received against DLV-1; returns their count."""
    epochs: dict[str, list[object]] = {}
    for stream in client.streams.values():
        epochs[stream.channel] = [s.epoch for s in stream.subscriptions]
    count = 0
    for name, payload in client.events:
        if name != "replay:messages":
            continue
        count += 1
        channel = payload.get("channel")
        offsets = [m.get("offset") for m in payload.get("messages", [])]
        consecutive = bool(offsets) and all(
            isinstance(a, int) and b == a + 1 for a, b in itertools.pairwise(offsets)
        )
        expect(
            consecutive and payload.get("epoch") in epochs.get(channel, []),
            clause=clause,
            expected="at least one message, consecutive offsets, the subscription's epoch",
            received=f"channel {channel} epoch {payload.get('epoch')} offsets {offsets}",
            channel=channel,
        )
    return count


@case("DLV-1", "ORD-1", "ORD-2", "ORD-3")
async def test_five_subscriptions_on_one_socket_with_interleaved_publishes(target: Target) -> None:
    channels = [target.channel(str(n)) for n in range(5)]
    for channel in channels[:3]:
        await _fill(target, channel, 40)
    client = await target.client(grants=[grant(c, "subscribe") for c in channels])
    starts: list[int | str] = ["beginning", 20, 41, "latest", "beginning"]
    bursts = [Burst([backend_publisher(target, c) for _ in range(3)], 60, tag=c) for c in channels]
    for burst in bursts:
        burst.start()
    # Subscribe to all five while the publishes to all five interleave.
    replies = await asyncio.gather(
        *(client.subscribe(c, from_=s) for c, s in zip(channels, starts, strict=True))
    )
    for burst in bursts:
        await burst.done()
    for channel, reply in zip(channels, replies, strict=True):
        expect_ok(reply)
        last = await target.settle(channel, client)
        expect_offsets(
            client.offsets(channel), range(reply["from"], last + 1), clause="ORD-2", channel=channel
        )
    expect(
        _check_events(client, "DLV-1") > 0,
        clause="DLV-1",
        expected="replay:messages events",
        received="none",
    )


@case("DLV-3")
async def test_a_subscriber_behind_gets_batches(target: Target) -> None:
    channel = target.channel()
    await _fill(target, channel, 2000)
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_=1))
    await client.wait_for_offset(channel, 2000, timeout=15)
    sizes = [
        len(payload.get("messages", []))
        for name, payload in client.events
        if name == "replay:messages" and payload.get("channel") == channel
    ]
    expect(
        max(sizes, default=0) > 1,
        clause="DLV-3",
        expected="replay:messages events of more than one message for 2000 messages behind",
        received=f"{len(sizes)} events of sizes {sorted(set(sizes))}",
        channel=channel,
    )


@case("DLV-4")
async def test_live_messages_arrive_within_a_second(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_="latest"))
    loop = asyncio.get_running_loop()
    worst = 0.0
    for n in range(20):
        offset = int((await target.backend.publish(channel, {"n": n}))["offset"])
        acked = loop.time()
        await client.wait_for_offset(channel, offset, timeout=5, clause="DLV-4")
        worst = max(worst, loop.time() - acked)
    expect(
        worst <= LIVE_BOUND_S,
        clause="DLV-4",
        expected=f"each live message delivered within {LIVE_BOUND_S:g} s of its acknowledgement",
        received=f"the slowest after {worst:.3f} s",
        channel=channel,
    )


# --- HND-1 .. HND-3 ---------------------------------------------------------------------------


@case("HND-1")
async def test_history_then_live_without_a_seam(target: Target) -> None:
    channel = target.channel()
    await _fill(target, channel, 50)
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_=1))
    # Live publishes start before the history is through: the switch happens mid-stream.
    await client.wait_for_offset(channel, 1, clause="HND-1")
    burst = Burst([backend_publisher(target, channel)], 50)
    burst.start()
    await burst.done()
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(1, last + 1), clause="HND-1", channel=channel)


# Acknowledged publishes before the subscribe is sent: none, mid-way, near the end.
RACE_POINTS = (0, 60, 190)
RACE_COUNT = 200


async def _racing_publishers(target: Target, channel: str, mixed: bool) -> list[Publish]:
    publishers = [backend_publisher(target, channel, n % len(target.urls)) for n in range(4)]
    if mixed:
        for n in range(2):
            node = n % len(target.urls)
            publisher = await target.client(grants=[grant(channel, "publish")], node=node)
            publishers.append(client_publisher(publisher, channel))
    return publishers


def _mixed_or_skip(target: Target, publishers: str) -> bool:
    if publishers == "mixed" and "client-publish" not in target.features:
        pytest.skip("not claimed: feature client-publish")
    return publishers == "mixed"


@case("HND-2", "HND-1")
@pytest.mark.parametrize("publishers", ["backend", "mixed"])
async def test_publishes_racing_a_subscribe_from_1(target: Target, publishers: str) -> None:
    mixed = _mixed_or_skip(target, publishers)
    for at in RACE_POINTS:
        channel = target.channel(f"at{at}")
        burst = Burst(await _racing_publishers(target, channel, mixed), RACE_COUNT)
        client = await target.client(grants=[grant(channel, "subscribe")])
        await target.epoch(channel)  # what offset 1 belongs to, before anything is published
        burst.start()
        await burst.reached(at)
        expect_ok(await client.subscribe(channel, from_=1))
        await burst.done()
        last = await target.settle(channel, client)
        expect_offsets(client.offsets(channel), range(1, last + 1), clause="HND-2", channel=channel)


@case("HND-3", "SUB-8")
@pytest.mark.parametrize("publishers", ["backend", "mixed"])
async def test_latest_racing_publishes_starts_exactly_at_from(
    target: Target, publishers: str
) -> None:
    mixed = _mixed_or_skip(target, publishers)
    for at in RACE_POINTS:
        channel = target.channel(f"at{at}")
        burst = Burst(await _racing_publishers(target, channel, mixed), RACE_COUNT)
        client = await target.client(grants=[grant(channel, "subscribe")])
        burst.start()
        await burst.reached(at)
        seen = burst.max_acked()  # acknowledged before the subscribe was sent
        reply = expect_ok(await client.subscribe(channel, from_="latest"))
        start, head = reply.get("from"), reply.get("head")
        expect(
            isinstance(start, int) and isinstance(head, int) and start == head + 1,
            clause="SUB-8",
            expected="from = head + 1",
            received=reply,
            channel=channel,
        )
        expect(
            isinstance(start, int) and start > seen,
            clause="HND-3",
            expected=f"from above {seen}, the last offset acknowledged before the subscribe",
            received=reply,
            channel=channel,
        )
        await burst.done()
        last = await target.settle(channel, client)
        assert isinstance(start, int)
        expect_offsets(
            client.offsets(channel), range(start, last + 1), clause="HND-3", channel=channel
        )


# --- CNS-1, CNS-2 -------------------------------------------------------------------------------

PAYLOADS: list[object] = [
    None,
    0,
    -1.5,
    "text",
    "üñí©ødé ✓",
    [],
    {},
    {"nested": {"list": [1, "two", None, True]}},
    True,
    "",
]


def _identity(message: dict[str, Any]) -> tuple[object, object, object]:
    return message.get("id"), message.get("ts"), message.get("data")


def _same_messages(
    views: dict[str, list[dict[str, Any]]], clause: str, channel: str
) -> dict[int, tuple[object, object, object]]:
    """Every view agrees on (id, ts, data) at each offset; returns the agreed map."""
    agreed: dict[int, tuple[object, object, object]] = {}
    origin: dict[int, str] = {}
    for name, messages in views.items():
        for message in messages:
            offset = message.get("offset")
            if not isinstance(offset, int):
                continue
            identity = _identity(message)
            if offset not in agreed:
                agreed[offset], origin[offset] = identity, name
            elif agreed[offset] != identity:
                fail(
                    clause,
                    f"the same id, ts and data at offset {offset} for every reader",
                    f"{origin[offset]}: {agreed[offset]!r}; {name}: {identity!r}",
                    channel=channel,
                )
    return agreed


@case("CNS-1")
async def test_every_reader_sees_the_same_message_at_an_offset(target: Target) -> None:
    channel = target.channel()
    nodes = len(target.urls)
    for data in PAYLOADS:
        await target.backend.publish(channel, data)
    readers = [
        await target.client(grants=[grant(channel)], node=n % nodes, name=f"r{n}") for n in range(3)
    ]
    expect_ok(await readers[0].subscribe(channel, from_="beginning"))
    expect_ok(await readers[1].subscribe(channel, from_=5))
    burst = Burst([backend_publisher(target, channel, n % nodes) for n in range(3)], 30)
    burst.start()
    await burst.reached(10)
    expect_ok(await readers[2].subscribe(channel, from_="latest"))
    await burst.done()
    await target.settle(channel, *readers)
    views = {r.name: r.messages(channel) for r in readers}
    if "history" in target.features:
        for node in range(nodes):
            page = await target.backend_at(node).history(channel, from_="beginning", limit=100)
            views[f"history@{node}"] = page["messages"]
        reply = expect_ok(await readers[0].history(channel, from_=1, limit=100))
        views["replay:history"] = reply["messages"]
    agreed = _same_messages(views, "CNS-1", channel)
    expect(
        sorted(agreed) == list(range(1, len(PAYLOADS) + 30 + 2)),
        clause="CNS-1",
        expected=f"offsets 1..{len(PAYLOADS) + 31} seen",
        received=f"[{ranges(sorted(agreed))}]",
        channel=channel,
    )


@case("CNS-2", "OFF-2")
async def test_one_total_order_for_every_publisher_and_subscriber(target: Target) -> None:
    channel = target.channel()
    nodes = len(target.urls)
    subscribers = [
        await target.client(grants=[grant(channel, "subscribe")], node=n % nodes, name=f"s{n}")
        for n in range(3)
    ]
    publishers = [backend_publisher(target, channel, n % nodes) for n in range(3)]
    if "client-publish" in target.features:
        for n in range(3):
            sender = await target.client(
                grants=[grant(channel, "publish")], node=n % nodes, name=f"p{n}"
            )
            publishers.append(client_publisher(sender, channel))
    await target.epoch(channel)  # what offset 1 belongs to, before anything is published
    for subscriber in subscribers[:2]:
        expect_ok(await subscriber.subscribe(channel, from_=1))
    burst = Burst(publishers, 240)
    burst.start()
    await burst.reached(60)
    # A third subscriber joins from 1 in the middle: it must observe the same order.
    expect_ok(await subscribers[2].subscribe(channel, from_=1))
    await burst.done()
    last = await target.settle(channel, *subscribers)
    expect(
        sorted(burst.acked) == list(range(1, last)),
        clause="CNS-2",
        expected=f"the publishes placed at offsets 1..{last - 1}, each once",
        received=f"[{ranges(sorted(burst.acked))}]",
        channel=channel,
    )
    order = [burst.acked[o] for o in range(1, last)]
    for subscriber in subscribers:
        seen = [m.get("data") for m in subscriber.messages(channel)][: last - 1]
        if seen != order:
            at = next(i for i, (a, b) in enumerate(zip(seen, order, strict=False)) if a != b)
            fail(
                "CNS-2",
                f"{subscriber.name} to see the publishes in their total order",
                f"offset {at + 1}: {seen[at]!r} instead of {order[at]!r}",
                channel=channel,
            )
    # A publisher that waits for each acknowledgement appends its messages in that order.
    for index, offsets in enumerate(burst.orders):
        expect(
            offsets == sorted(offsets),
            clause="OFF-2",
            expected=f"publisher {index}'s sequential publishes at increasing offsets",
            received=offsets,
            channel=channel,
        )


# --- FLW-1, FLW-4 ----------------------------------------------------------------------------


async def _wait_all_or_ended(
    client: ReplayClient, channel: str, last: int, clause: str, timeout: float = 20
) -> None:
    """Wait until ``client`` has ``last`` on ``channel``, or its subscription was ended."""
    stream = client.stream(channel)
    await client.wait_until(
        lambda: bool(stream.unsubscribed) or any(o >= last for o in stream.offsets),
        f"offset {last} (or a replay:unsubscribed) on {channel} for {client.name}",
        timeout=timeout,
        clause=clause,
        channel=channel,
        received=lambda: f"offsets [{ranges(stream.offsets)}]",
    )


def _complete_or_prefix(client: ReplayClient, channel: str, start: int, last: int) -> None:
    """All of ``start..last`` in order, or (after replay:unsubscribed) a gap-free prefix."""
    stream = client.stream(channel)
    received = stream.offsets
    if stream.unsubscribed:
        reasons = [event.get("reason") for event in stream.unsubscribed]
        expect(
            reasons[-1] in SLOW_READER_ENDINGS,
            clause="LIF-1",
            expected=f"a stalled subscription live, or ended with one of {SLOW_READER_ENDINGS}",
            received=f"replay:unsubscribed reasons {reasons}",
            channel=channel,
        )
        expect_offsets(
            received, range(start, start + len(received)), clause="FLW-1", channel=channel
        )
        return
    expect_offsets(
        received[: last - start + 1], range(start, last + 1), clause="FLW-1", channel=channel
    )


@case("FLW-1", "SIG-1", "LIF-1", "LIF-4", timeout=60)
async def test_a_stalled_subscriber_loses_nothing(target: Target) -> None:
    channel = target.channel()
    proxy = await target.proxy()
    slow = await target.client(grants=[grant(channel, "subscribe")], proxy=proxy, timeout=30)
    await target.epoch(channel)  # what offset 1 belongs to, before anything is published
    expect_ok(await slow.subscribe(channel, from_=1))
    loop = asyncio.get_running_loop()
    stalled_at = loop.time()
    proxy.stall(Direction.DOWN)  # the subscriber stops reading
    count = 1200
    burst = Burst([backend_publisher(target, channel) for _ in range(6)], count, tag="x" * 3000)
    burst.start()
    await burst.done()
    await asyncio.sleep(max(0.0, STALL_S - (loop.time() - stalled_at)))
    proxy.heal()
    await _wait_all_or_ended(slow, channel, count, "FLW-1")
    _complete_or_prefix(slow, channel, 1, count)
    if not slow.stream(channel).unsubscribed:
        last = await target.settle(channel, slow)
        expect_offsets(slow.offsets(channel), range(1, last + 1), clause="FLW-1", channel=channel)


@case("FLW-4", "DLV-4", timeout=60)
async def test_a_stalled_subscriber_does_not_delay_others(target: Target) -> None:
    channel, heavy = target.channel("live"), target.channel("heavy")
    await _fill(target, heavy, 400, size=4000)
    proxy = await target.proxy()
    slow = await target.client(grants=[grant("*", "subscribe")], proxy=proxy, timeout=30)
    healthy = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await healthy.subscribe(channel, from_="latest"))
    expect_ok(await slow.subscribe(channel, from_="latest"))
    # The slow socket has a lot to read, and stops reading it.
    expect_ok(await slow.subscribe(heavy, from_=1))
    proxy.stall(Direction.DOWN)
    loop = asyncio.get_running_loop()
    stalled_at = loop.time()
    worst, count = 0.0, 0
    pad = "y" * 4000
    while loop.time() - stalled_at < STALL_S:
        offset = int((await target.backend.publish(channel, {"n": count, "pad": pad}))["offset"])
        acked = loop.time()
        await healthy.wait_for_offset(channel, offset, timeout=5, clause="FLW-4")
        worst = max(worst, loop.time() - acked)
        count += 1
    proxy.heal()
    expect(
        worst <= STALLED_BOUND_S,
        clause="FLW-4",
        expected=f"each of {count} live messages delivered to the healthy socket within "
        f"{STALLED_BOUND_S:g} s while another socket was stalled",
        received=f"the slowest after {worst:.3f} s",
        channel=channel,
    )
    # The stalled socket then gets everything too (or an explicit end: FLW-1).
    await _wait_all_or_ended(slow, channel, count, "FLW-1", timeout=30)
    _complete_or_prefix(slow, channel, 1, count)
    await _wait_all_or_ended(slow, heavy, 400, "FLW-1", timeout=30)
    _complete_or_prefix(slow, heavy, 1, 400)
    # Last, as it is a SHOULD: the healthy socket was not merely within FLW-4's bound but
    # within DLV-4's.
    expect(
        worst <= LIVE_BOUND_S,
        clause="DLV-4",
        expected=f"each live message to the healthy socket within {LIVE_BOUND_S:g} s",
        received=f"the slowest after {worst:.3f} s",
        channel=channel,
    )
