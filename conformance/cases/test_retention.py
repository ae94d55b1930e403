"""Retention (spec §4.7, feature ``retention``) and what it does to subscriptions (§6.1, §10.6)."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import pytest

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
from conformance.faults.proxy import Direction
from conformance.text import ranges

# RET-3 with max_age_s = 1: a message must be gone once 1 + 1 s have passed since its ts.
AGE_S: Final = 1
AGE_WAIT_S: Final = 2.2
# SIG-2: large messages fill the socket's buffers quickly; enough of them to overflow what a
# server and two kernels buffer for one stalled socket (the reference absorbs about 5 MiB).
STALL_MESSAGES: Final = 400
STALL_MESSAGE_BYTES: Final = 50 * 1024


async def _start(client: ReplayClient, channel: str) -> dict[str, Any]:
    """Subscribe from ``beginning`` (a step: refused, it fails SUB-7, not the case's clause)
    and return the reply (its ``from`` is ``first``)."""
    return expect_ok(await client.subscribe(channel, from_="beginning"))


async def _retained(target: Target, channel: str) -> tuple[dict[str, Any], list[int]]:
    """What ``channel`` retains, seen by a fresh subscription from ``beginning``: its reply
    and the offsets it delivers up to ``head`` (consecutive, by ORD-2; steps, as _start)."""
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = await _start(client, channel)
    head = reply.get("head")
    if isinstance(head, int) and reply.get("from") != head + 1:
        await client.wait_for_offset(channel, head)
    return reply, [o for o in client.offsets(channel) if isinstance(head, int) and o <= head]


@case("RET-1")
async def test_retention_update_answers_the_settings_in_force(target: Target) -> None:
    channel = target.channel()
    steps: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"max_messages": 5}, {"max_messages": 5}),
        ({"max_age_s": 60}, {"max_messages": 5, "max_age_s": 60}),  # omitted: kept
        ({"max_messages": None}, {"max_messages": None, "max_age_s": 60}),  # null: removed
        ({"max_messages": 7, "max_age_s": None}, {"max_messages": 7, "max_age_s": None}),
        ({"max_age_s": 30}, {"max_messages": 7, "max_age_s": 30}),
    ]
    for request, in_force in steps:
        answer = await target.backend.set_retention(channel, **request)
        got = {key: answer.get(key) for key in in_force}
        expect(
            answer.get("channel") == channel and got == in_force,
            clause="RET-1",
            expected=f"channel {channel!r} with {in_force} after {request}",
            received=answer,
        )


@case("RET-12", "OFF-4", "SUB-7")
async def test_max_messages_keeps_the_newest(target: Target) -> None:
    channel = target.channel()
    limit = 3
    await target.backend.set_retention(channel, max_messages=limit)
    client = await target.client(grants=[grant(channel)])
    for head in range(1, 8):
        await target.backend.publish(channel, {"n": head})
        first = max(1, head - limit + 1)
        reply = await _start(client, channel)
        expect(
            (reply.get("from"), reply.get("head")) == (first, head),
            clause="RET-12",
            expected=f"first {first} (the {limit} newest retained), head {head}",
            received=reply,
            channel=channel,
        )
        await client.wait_for_offset(channel, head, clause="RET-12")
        expect_ok(await client.unsubscribe(channel))
        if "history" in target.features:
            page = expect_ok(await client.history(channel))
            offsets = [m.get("offset") for m in page["messages"]]
            expect(
                page.get("first") == first and offsets == list(range(first, head + 1)),
                clause="RET-12",
                expected=f"first {first}, messages {first}..{head}",
                received=page,
            )
    # A lower limit holds after the next append too (that it holds at once is RET-6's case).
    await target.backend.set_retention(channel, max_messages=1)
    await target.backend.publish(channel, {"n": 8})
    reply, offsets = await _retained(target, channel)
    expect(offsets == [8], clause="RET-12", expected="only offset 8", received=reply)
    # A raised limit keeps what is left, and what comes, but gives nothing back.
    await target.backend.set_retention(channel, max_messages=3)
    await target.backend.publish(channel, {"n": 9})
    reply, offsets = await _retained(target, channel)
    expect(
        offsets == [8, 9],
        clause="RET-12",
        expected="offsets 8..9 after raising max_messages to 3: 1..7 stay removed",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )


@case("RET-3")
async def test_max_age_removes_old_messages(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_age_s=AGE_S)
    old = await target.backend.publish(channel, {"age": "old"})
    # The server stamped `old` before it answered: after this wait, more than A + 1 seconds
    # have passed since its ts on the server's clock too.
    await asyncio.sleep(AGE_WAIT_S)
    client = await target.client(grants=[grant(channel)])
    reply, offsets = await _retained(target, channel)
    expect(
        old["offset"] not in offsets and reply.get("from") == old["offset"] + 1,
        clause="RET-3",
        expected=f"offset {old['offset']} no longer delivered (first moved past it)",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )
    if "history" in target.features:
        page = expect_ok(await client.history(channel))
        expect(
            page["messages"] == [] and page.get("first") is None and page.get("head") == 1,
            clause="RET-3",
            expected="no messages returned, first null, head 1",
            received=page,
        )
    fresh = await target.backend.publish(channel, {"age": "fresh"})
    reply, offsets = await _retained(target, channel)
    expect(
        offsets == [fresh["offset"]],
        clause="RET-3",
        expected=f"only the fresh message {fresh['offset']} retained",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )
    if "history" in target.features:
        page = expect_ok(await client.history(channel))
        got = [m.get("offset") for m in page["messages"]]
        expect(
            got == [fresh["offset"]] and page.get("first") == fresh["offset"],
            clause="RET-3",
            expected=f"first {fresh['offset']} and only that message",
            received=page,
        )


@case("RET-4")
async def test_retention_removes_only_a_prefix(target: Target) -> None:
    channel = target.channel()
    epoch = (await target.backend.publish(channel, {"n": 1}))["epoch"]
    await target.backend.publish_many(channel, 5, [{"n": n} for n in range(2, 7)])
    reader = await target.client(grants=[grant(channel, "subscribe")])
    await _start(reader, channel)
    await reader.wait_for_offset(channel, 6)
    before = {m["offset"]: m for m in reader.messages(channel)}
    await target.backend.set_retention(channel, max_messages=3)
    after_publish = await target.backend.publish(channel, {"n": 7})
    expect(
        after_publish.get("epoch") == epoch and after_publish.get("offset") == 7,
        clause="RET-4",
        expected=f"offset 7 in the same epoch {epoch!r}",
        received=after_publish,
    )
    reply, offsets = await _retained(target, channel)
    expect(
        reply.get("epoch") == epoch and offsets == [5, 6, 7],
        clause="RET-4",
        expected=f"epoch {epoch!r} unchanged, offsets 5..7 (a prefix removed)",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )
    later = await target.client(grants=[grant(channel, "subscribe")])
    await _start(later, channel)
    await later.wait_for_offset(channel, 7)
    for message in later.messages(channel):
        old = before.get(message["offset"])
        if old is not None:
            expect(
                message == old,
                clause="RET-4",
                expected=f"offset {message['offset']} unchanged: {old}",
                received=message,
                channel=channel,
            )


@case("RET-5")
async def test_retention_applies_to_one_channel_even_before_messages(target: Target) -> None:
    channel = target.channel()
    untouched = [target.channel("other"), f"{channel}x", channel.upper()]
    answer = await target.backend.set_retention(channel, max_messages=2)
    expect(
        answer.get("max_messages") == 2, clause="RET-5", expected="max_messages 2", received=answer
    )
    for name in [channel, *untouched]:
        await target.backend.publish_many(name, 5)
    reply, offsets = await _retained(target, channel)
    expect(
        offsets == [4, 5],
        clause="RET-5",
        expected="offsets 4..5: retention set before the first message applies",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )
    for name in untouched:
        reply, offsets = await _retained(target, name)
        expect(
            offsets == [1, 2, 3, 4, 5],
            clause="RET-5",
            expected=f"{name}: offsets 1..5, no retention of another channel applied",
            received=f"{reply}, delivered [{ranges(offsets)}]",
            channel=name,
        )


@case("SUB-6", "SUB-11", "SUB-1", feature="retention")
async def test_starting_below_first(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3)
    epoch = (await target.backend.publish(channel, {"n": 0}))["epoch"]
    await target.backend.publish_many(channel, 7)  # offsets 1..8 assigned, 6..8 retained
    client = await target.client(grants=[grant(channel, "subscribe")])
    for from_ in (1, 5):
        reply = await client.subscribe(channel, from_=from_, epoch=epoch)
        expect_error(reply, "history_truncated", clause="SUB-6", channel=channel)
        reply = await client.subscribe(channel, from_=from_, allow_truncation=False)
        expect_error(reply, "history_truncated", clause="SUB-6", channel=channel)
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="SUB-6")
    reply = await client.subscribe(channel, from_=2, epoch=epoch, allow_truncation=True)
    reply = expect_ok(reply, clause="SUB-11")
    expect(
        reply.get("from") == 6 and reply.get("truncated") == {"requested": 2, "first_available": 6},
        clause="SUB-11",
        expected='from 6 with "truncated": {"requested": 2, "first_available": 6}',
        received=reply,
    )
    await client.wait_for_offset(channel, 8, clause="SUB-11")
    expect_offsets(client.offsets(channel), [6, 7, 8], clause="SUB-11", channel=channel)
    # Above head + 1 fails first (SUB-1's order), even with allow_truncation.
    other = await target.client(grants=[grant(channel, "subscribe")])
    reply = await other.subscribe(channel, from_=10, allow_truncation=True)
    expect_error(reply, "offset_out_of_range", clause="SUB-1", channel=channel)


@case("SIG-2", "SIG-1", timeout=60)
async def test_a_stalled_subscriber_overtaken_by_retention_ends_truncated(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3)
    proxy = await target.proxy()
    slow = await target.client(grants=[grant(channel, "subscribe")], proxy=proxy)
    expect_ok(await slow.subscribe(channel, from_="beginning"))
    data = "x" * min(STALL_MESSAGE_BYTES, target.limits["max_payload_bytes"] - 16)
    # The subscriber stops reading (a black hole towards it) while the channel moves on far
    # past what retention keeps; it is healed long before any ping timeout.
    proxy.stall(Direction.DOWN)
    for _ in range(STALL_MESSAGES):
        await target.backend.publish(channel, data)
    proxy.heal()
    stream = slow.stream(channel)
    await slow.wait_until(
        lambda: bool(stream.unsubscribed) or STALL_MESSAGES in slow.offsets(channel),
        "replay:unsubscribed, or every message",
        timeout=20,
        clause="SIG-2",
        channel=channel,
        received=lambda: f"offsets [{ranges(slow.offsets(channel))}] and no replay:unsubscribed",
    )
    delivered = slow.offsets(channel)
    if not stream.unsubscribed:
        # Everything reached the socket before retention removed it: nothing to report.
        expect_offsets(delivered, range(1, STALL_MESSAGES + 1), clause="SIG-1", channel=channel)
        return
    ended = stream.unsubscribed[0]
    expect(
        ended.get("reason") == "truncated",
        clause="SIG-2",
        expected='replay:unsubscribed with reason "truncated"',
        received=ended,
        channel=channel,
    )
    last = delivered[-1] if delivered else 0
    expect_offsets(delivered, range(1, last + 1), clause="SIG-1", channel=channel)
    reply, _ = await _retained(target, channel)
    first = reply.get("from")
    expect(
        isinstance(first, int) and first > last + 1,
        clause="SIG-2",
        expected=f"the subscription's next offset {last + 1} removed by retention (first above it)",
        received=reply,
        channel=channel,
    )


# --- retention made exact in 1.1 (RET-6 to RET-11) ------------------------------------------


@case("RET-6")
async def test_lowering_max_messages_trims_before_the_reply(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 10)
    await target.backend.set_retention(channel, max_messages=3)
    # No append after the update: what it removes is gone by its reply, and no more.
    reply, offsets = await _retained(target, channel)
    expect(
        (reply.get("from"), reply.get("head")) == (8, 10) and offsets == [8, 9, 10],
        clause="RET-6",
        expected="from 8, head 10, offsets 8..10: the 3 newest, without another append",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )
    if "history" in target.features:
        page = await target.backend.history(channel)
        got = [m.get("offset") for m in page["messages"]]
        expect(
            page.get("first") == 8 and got == [8, 9, 10],
            clause="RET-6",
            expected="first 8 and messages 8..10",
            received=page,
            channel=channel,
        )


@case("RET-7", "SUB-6", "SUB-11")
async def test_expired_messages_do_not_count_as_retained(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_age_s=AGE_S)
    await target.backend.publish_many(channel, 2)
    await asyncio.sleep(AGE_WAIT_S)  # offsets 1 and 2 are past A + 1 s, stored or not
    fresh = await target.backend.publish(channel, {"age": "fresh"})
    expect(fresh.get("offset") == 3, clause="RET-7", expected="offset 3", received=fresh)
    client = await target.client(grants=[grant(channel)])
    for from_ in (1, 2):
        reply = await client.subscribe(channel, from_=from_)
        expect_error(reply, "history_truncated", clause="RET-7", channel=channel)
    reply = expect_ok(
        await client.subscribe(channel, from_=1, allow_truncation=True), clause="RET-7"
    )
    expect(
        reply.get("from") == 3 and reply.get("truncated") == {"requested": 1, "first_available": 3},
        clause="RET-7",
        expected='from 3 with "truncated": {"requested": 1, "first_available": 3}',
        received=reply,
        channel=channel,
    )
    end = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(3, end + 1), clause="RET-7", channel=channel)
    if "history" in target.features:
        page = expect_ok(await client.history(channel), clause="RET-7")
        expect(
            page.get("first") == 3,
            clause="RET-7",
            expected="first 3: the expired offsets 1 and 2 are not retained",
            received=page,
            channel=channel,
        )
        reply = await client.history(channel, from_=2)
        expect_error(reply, "history_truncated", clause="RET-7", channel=channel)


@case("RET-8")
async def test_lifting_a_limit_restores_nothing(target: Target) -> None:
    aged, counted = target.channel("aged"), target.channel("counted")
    loop = asyncio.get_running_loop()
    await target.backend.set_retention(aged, max_age_s=AGE_S)
    await target.backend.publish(aged, {"age": "old"})
    published = loop.time()
    # While `aged` ages, unread: a count limit raised, then removed.
    await target.backend.set_retention(counted, max_messages=2)
    await target.backend.publish_many(counted, 5)
    for update in (10, None):
        await target.backend.set_retention(counted, max_messages=update)
        reply, offsets = await _retained(target, counted)
        expect(
            reply.get("from") == 4 and offsets == [4, 5],
            clause="RET-8",
            expected=f"from 4, offsets 4..5 after max_messages {update}: 1..3 stay removed",
            received=f"{reply}, delivered [{ranges(offsets)}]",
            channel=counted,
        )
    await asyncio.sleep(max(0.0, AGE_WAIT_S - (loop.time() - published)))
    # Nothing read `aged` since its message expired; lifting the limit must not bring it back.
    await target.backend.set_retention(aged, max_age_s=None)
    reply, offsets = await _retained(target, aged)
    expect(
        (reply.get("from"), reply.get("head")) == (2, 1) and not offsets,
        clause="RET-8",
        expected="from 2, head 1, nothing delivered: offset 1 expired before the limit went",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=aged,
    )
    if "history" in target.features:
        page = await target.backend.history(aged)
        expect(
            page["messages"] == [] and page.get("first") is None,
            clause="RET-8",
            expected="no messages, first null",
            received=page,
            channel=aged,
        )


@case("RET-9")
async def test_a_channel_starts_without_limits(target: Target) -> None:
    channel, other = target.channel(), target.channel("other")
    await target.backend.publish_many(channel, 20)
    answer = await target.backend.set_retention(channel, max_age_s=3600)
    expect(
        "max_messages" in answer and answer["max_messages"] is None,
        clause="RET-9",
        expected="max_messages null: no update had set it",
        received=answer,
        channel=channel,
    )
    reply, offsets = await _retained(target, channel)
    expect(
        offsets == list(range(1, 21)),
        clause="RET-9",
        expected="offsets 1..20: a channel never limited retains every message",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )
    answer = await target.backend.set_retention(other, max_messages=1000)
    expect(
        "max_age_s" in answer and answer["max_age_s"] is None,
        clause="RET-9",
        expected="max_age_s null: no update had set it",
        received=answer,
        channel=other,
    )


@case("OFF-4", feature="retention")
async def test_first_is_null_on_an_empty_channel_whatever_its_limits(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3, max_age_s=60)
    client = await target.client(grants=[grant(channel)])
    reply = expect_ok(await client.subscribe(channel, from_="beginning"), clause="OFF-4")
    expect(
        (reply.get("from"), reply.get("head")) == (1, 0),
        clause="OFF-4",
        expected="from 1 and head 0 (nothing retained, so head + 1)",
        received=reply,
        channel=channel,
    )
    if "history" in target.features:
        page = expect_ok(await client.history(channel), clause="OFF-4")
        expect(
            (page.get("first"), page.get("head"), page.get("messages")) == (None, 0, []),
            clause="OFF-4",
            expected="first null, head 0, no messages: max_messages 3 retains nothing yet",
            received=page,
            channel=channel,
        )


async def _restart_with_settings(target: Target, channel: str) -> tuple[str, dict[str, Any]]:
    """Limit ``channel`` (max_messages 2), publish 1..3, restart the target and publish once
    more; the epoch before and the answer of that publish."""
    if not target.restartable:
        pytest.skip("not claimed: restartable target")
    await target.backend.set_retention(channel, max_messages=2, max_age_s=3600)
    await target.backend.publish_many(channel, 2)
    epoch = str((await target.backend.publish(channel, {"n": 2}))["epoch"])
    await target.restart()
    return epoch, await target.backend.publish(channel, {"after": "restart"})


@case("RET-10", timeout=60)
async def test_settings_survive_a_restart_that_keeps_the_epoch(target: Target) -> None:
    channel = target.channel()
    epoch, after = await _restart_with_settings(target, channel)
    if after.get("epoch") != epoch:
        pytest.skip("the epoch changed across the restart (RET-11's case judges that)")
    reply, offsets = await _retained(target, channel)
    expect(
        offsets == [3, 4],
        clause="RET-10",
        expected="offsets 3..4: max_messages 2 still applied to the append after the restart",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )
    answer = await target.backend.set_retention(channel, max_age_s=3600)
    expect(
        answer.get("max_messages") == 2,
        clause="RET-10",
        expected=f"max_messages 2 kept with the epoch {epoch!r}",
        received=answer,
        channel=channel,
    )


@case("RET-11", timeout=60)
async def test_a_new_epoch_keeps_the_settings_or_has_none(target: Target) -> None:
    channel = target.channel()
    epoch, after = await _restart_with_settings(target, channel)
    if after.get("epoch") == epoch:
        pytest.skip("the epoch did not change across the restart (RET-10's case judges that)")
    answer = await target.backend.set_retention(channel, max_age_s=3600)
    kept = answer.get("max_messages", "absent")
    expect(
        kept in (2, None),
        clause="RET-11",
        expected="max_messages 2 (kept) or null (reset with the epoch)",
        received=answer,
        channel=channel,
    )
    head = (await target.backend.publish_many(channel, 3))[-1]
    reply, offsets = await _retained(target, channel)
    wanted = [head - 1, head] if kept == 2 else list(range(1, head + 1))
    expect(
        offsets == wanted,
        clause="RET-11",
        expected=f"offsets [{ranges(wanted)}], as max_messages {kept} says",
        received=f"{reply}, delivered [{ranges(offsets)}]",
        channel=channel,
    )
