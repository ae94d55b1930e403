"""Starting and ending subscriptions (spec §6.1, §6.2) and the order they deliver in (§10.1)."""

from __future__ import annotations

import asyncio

from conformance import (
    ReplayClient,
    Target,
    case,
    expect,
    expect_error,
    expect_offsets,
    expect_ok,
    grant,
)

QUIET_S = 0.5  # how long "nothing more arrives" is watched for, after a control saw it all


async def _fill(target: Target, channel: str, count: int) -> None:
    """Publish ``count`` messages in concurrent chunks (offsets 1..count, any order of data)."""
    for start in range(0, count, 50):
        await target.backend.publish_concurrently(channel, min(50, count - start), start)


@case("SUB-7", "ORD-1")
async def test_beginning_starts_at_first(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await client.subscribe(channel, from_="beginning"), clause="SUB-7")
    expect(
        (reply.get("from"), reply.get("head")) == (1, 3),
        clause="SUB-7",
        expected="from 1, head 3",
        received=reply,
    )
    await client.wait_for_offset(channel, 3, clause="SUB-7")
    await target.backend.publish(channel, {"n": 3})
    await client.wait_for_offset(channel, 4, clause="SUB-7")
    expect_offsets(client.offsets(channel), [1, 2, 3, 4], clause="ORD-1", channel=channel)


@case("SUB-7")
async def test_beginning_of_an_empty_channel_starts_at_head_plus_one(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await client.subscribe(channel, from_="beginning"), clause="SUB-7")
    expect(
        (reply.get("from"), reply.get("head")) == (1, 0),
        clause="SUB-7",
        expected="from 1, head 0 on a never-used channel",
        received=reply,
    )
    await target.backend.publish(channel, {"n": 0})
    await client.wait_for_offset(channel, 1, clause="SUB-7")
    expect_offsets(client.offsets(channel), [1], clause="SUB-7", channel=channel)


@case("SUB-7")
async def test_beginning_ignores_the_epoch(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = await client.subscribe(channel, from_="beginning", epoch="not-the-current-epoch")
    expect_ok(reply, clause="SUB-7")
    await client.wait_for_offset(channel, 2, clause="SUB-7")


@case("SUB-8")
async def test_latest_starts_after_the_head(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await client.subscribe(channel, from_="latest"), clause="SUB-8")
    expect(
        (reply.get("from"), reply.get("head")) == (4, 3),
        clause="SUB-8",
        expected="from 4, head 3",
        received=reply,
    )
    await target.backend.publish(channel, {"n": 3})
    await client.wait_for_offset(channel, 4, clause="SUB-8")
    expect_offsets(client.offsets(channel), [4], clause="SUB-8", channel=channel)


def _expect_reply_first(target: Target, client: ReplayClient, channel: str) -> None:
    """The log shows the subscribe reply before the first replay:messages (SUB-13)."""
    replies = target.log.find(kind="reply", name="replay:subscribe", actor=client.name)
    events = target.log.find(kind="event", name="replay:messages", actor=client.name)
    reply_seq = next(e.seq for e in replies if e.channel == channel)
    first_seq = next((e.seq for e in events if e.channel == channel), 0)
    expect(
        reply_seq < first_seq,
        clause="SUB-13",
        expected=f"the subscribe reply (log #{reply_seq}) before replay:messages",
        received=f"replay:messages first (log #{first_seq})",
        channel=channel,
    )


@case("SUB-13")
async def test_reply_arrives_before_the_first_messages(target: Target) -> None:
    channels = [target.channel(str(n)) for n in range(5)]
    for channel in channels:
        await target.backend.publish_many(channel, 20)
    client = await target.client(grants=[grant(c, "subscribe") for c in channels])
    # Subscribe to all five at once, so that replies and deliveries interleave.
    replies = await asyncio.gather(*(client.subscribe(c, from_="beginning") for c in channels))
    for channel, reply in zip(channels, replies, strict=True):
        expect_ok(reply)
        await client.wait_for_offset(channel, 20)
        _expect_reply_first(target, client, channel)


@case("SUB-13")
async def test_reply_first_while_publishes_race(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "subscribe")])
    _, reply = await asyncio.gather(
        target.backend.publish_concurrently(channel, 30),
        client.subscribe(channel, from_="beginning"),
    )
    expect_ok(reply)
    await client.wait_for_offset(channel, 30)
    _expect_reply_first(target, client, channel)


@case("ORD-1")
async def test_integer_from_is_the_first_offset_delivered(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 10)
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await client.subscribe(channel, from_=5))
    expect(reply.get("from") == 5, clause="ORD-1", expected="from 5", received=reply)
    await client.wait_for_offset(channel, 10, clause="ORD-1")
    expect_offsets(client.offsets(channel), range(5, 11), clause="ORD-1", channel=channel)


@case("ORD-2", "ORD-3")
async def test_hundreds_of_offsets_arrive_consecutively(target: Target) -> None:
    channel = target.channel()
    await _fill(target, channel, 300)
    client = await target.client(grants=[grant(channel, "subscribe")])
    # 100 more publishes race the subscription's history read and its switch to live.
    reply, _ = await asyncio.gather(
        client.subscribe(channel, from_="beginning"),
        target.backend.publish_concurrently(channel, 100, 300),
    )
    expect_ok(reply)
    await client.wait_for_offset(channel, 400, timeout=10, clause="ORD-2")
    await asyncio.sleep(0.2)  # a duplicate or stray would arrive right after the last one
    expect_offsets(client.offsets(channel), range(1, 401), clause="ORD-2", channel=channel)


@case("UNS-1")
async def test_unsubscribe_ends_the_subscription(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_="latest"))
    expect_ok(await client.unsubscribe(channel), clause="UNS-1")
    # Ended: a second unsubscribe finds nothing, and a new subscribe is accepted.
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="UNS-1")
    expect_ok(await client.subscribe(channel, from_="latest"), clause="UNS-1")


@case("UNS-2")
async def test_unsubscribe_without_a_subscription_fails(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="UNS-2")
    expect_ok(await client.subscribe(channel, from_="latest"))
    expect_ok(await client.unsubscribe(channel))
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="UNS-2")


@case("UNS-3")
async def test_no_messages_after_the_unsubscribe_reply(target: Target) -> None:
    channel = target.channel()
    leaver = await target.client(grants=[grant(channel, "subscribe")])
    control = await target.client(grants=[grant(channel, "subscribe")])
    for client in (leaver, control):
        expect_ok(await client.subscribe(channel, from_="beginning"))
    await target.backend.publish_many(channel, 3)
    await leaver.wait_for_offset(channel, 3)
    expect_ok(await leaver.unsubscribe(channel))
    seen = len(leaver.offsets(channel))
    await target.backend.publish_many(channel, 5)
    await control.wait_for_offset(channel, 8)
    await asyncio.sleep(QUIET_S)
    expect(
        len(leaver.offsets(channel)) == seen,
        clause="UNS-3",
        expected="no replay:messages after the unsubscribe reply",
        received=f"offsets {leaver.offsets(channel)[seen:]} after it",
        channel=channel,
    )
