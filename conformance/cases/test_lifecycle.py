"""The subscription lifecycle (spec §7.4): a live subscription ends only in the ways its table
lists, each announced as it says, and a server without `retention` never trims."""

from __future__ import annotations

import asyncio

import pytest

from conformance import Target, case, expect, expect_offsets, expect_ok, grant

IDLE_S = 2.5  # longer than any bound of §10.13 but FLW-4's, and than a typical poll interval


@case("LIF-1", "LIF-2")
async def test_an_idle_subscription_stays_live(target: Target) -> None:
    channel, other = target.channel("idle"), target.channel("busy")
    client = await target.client(grants=[grant(channel, "subscribe"), grant(other, "subscribe")])
    expect_ok(await client.subscribe(channel, from_="latest"), clause="SUB-8")
    expect_ok(await client.subscribe(other, from_="latest"), clause="SUB-8")
    # Nothing is published to `channel` for a while; its neighbour stays busy, and the
    # socket's failed requests must not end anything either (ROB-2).
    loop = asyncio.get_running_loop()
    started, busy = loop.time(), 0
    while loop.time() - started < IDLE_S:
        busy = int((await target.backend.publish(other, {"n": busy}))["offset"])
        await client.subscribe(other, from_="latest")  # already_subscribed: fails, ends nothing
        await asyncio.sleep(0.1)
    offset = int((await target.backend.publish(channel, {"n": "late"}))["offset"])
    await client.wait_for_offset(channel, offset, clause="LIF-2")
    await client.wait_for_offset(other, busy, clause="LIF-1")
    ended = [e for e, p in client.events if e == "replay:unsubscribed"]
    expect(
        not ended,
        clause="LIF-1",
        expected="no replay:unsubscribed: nothing in §7.4 ended either subscription",
        received=[p for e, p in client.events if e == "replay:unsubscribed"],
    )
    expect_offsets(client.offsets(channel), [offset], clause="LIF-2", channel=channel)


@case("LIF-3")
async def test_without_retention_nothing_is_trimmed(target: Target) -> None:
    if "retention" in target.features:
        pytest.skip("not claimed: the target advertises retention (LIF-3 binds targets without)")
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_="latest"), clause="SUB-8")
    count = 2000
    for start in range(0, count, 100):
        await target.backend.publish_concurrently(channel, 100, start)
    await client.wait_for_offset(channel, count, timeout=30, clause="LIF-3")
    later = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await later.subscribe(channel, from_="beginning"), clause="LIF-3")
    expect(
        reply.get("from") == 1 and "truncated" not in reply,
        clause="LIF-3",
        expected="from 1: every message of the epoch still retained",
        received=reply,
        channel=channel,
    )
    await later.wait_for_offset(channel, count, timeout=30, clause="LIF-3")
    expect(
        not [e for e, _ in client.events if e == "replay:unsubscribed"],
        clause="LIF-3",
        expected="no subscription ended (no truncated ending without retention)",
        received=[p for e, p in client.events if e == "replay:unsubscribed"],
    )
