"""`replay:subscribe` and `replay:unsubscribe` in depth (spec §6.1, §6.2, §7.3, §6 EVT-2).

The basics (``from`` forms, reply before messages, unsubscribe) are in
``test_subscribe_basics.py``; this module checks the order of the subscribe checks (SUB-1),
each failure code, how an omitted or integer ``from`` resolves, the reply's members, ending
and restarting subscriptions, pipelined events and the subscription limit.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

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

MAX_OFFSET = 9_007_199_254_740_991  # 2^53 - 1: the largest valid offset


def _other_epoch(epoch: object) -> str:
    """An epoch guaranteed to differ from ``epoch`` (still 1..64 characters)."""
    text = str(epoch)
    if len(text) < 64:
        return text + "x"
    return text[:-1] + ("y" if text[-1] == "x" else "x")


async def _epoch_and_head(target: Target, channel: str, count: int) -> tuple[str, int]:
    """Publish ``count`` messages; the channel's epoch and the last offset."""
    offsets = await target.backend.publish_many(channel, count - 1)
    last = await target.backend.publish(channel, {"n": count - 1})
    offsets.append(int(last["offset"]))
    return str(last["epoch"]), offsets[-1]


# --- SUB-1: the order of the checks ------------------------------------------------------------


@case("SUB-1")
@pytest.mark.parametrize(
    "extra",
    [
        {"from": 0},
        {"from": -3},
        {"from": "soon"},
        {"from": 1.5},
        {"epoch": ""},
        {"epoch": "e" * 65},
        {"allow_truncation": "yes"},
        {"unknown": 1},
    ],
    ids=[
        "from-0",
        "from-negative",
        "from-word",
        "from-fraction",
        "epoch-empty",
        "epoch-long",
        "truncation-type",
        "unknown-member",
    ],
)
async def test_shape_is_checked_before_the_grant(target: Target, extra: dict[str, Any]) -> None:
    allowed, denied = target.channel("allowed"), target.channel("denied")
    await target.backend.publish(denied, "exists")
    client = await target.client(grants=[grant(allowed, "subscribe")])
    # Malformed AND not granted: the shape check comes first (SUB-1), so bad_request.
    reply = await client.request("replay:subscribe", {"channel": denied, **extra})
    expect_error(reply, "bad_request", clause="SUB-1")
    # The same malformed payload on a granted channel is bad_request too (a control).
    reply = await client.request("replay:subscribe", {"channel": allowed, **extra})
    expect_error(reply, "bad_request", clause="SUB-1")


@case("SUB-1")
async def test_grant_is_checked_before_everything_else(target: Target) -> None:
    allowed, denied = target.channel("allowed"), target.channel("denied")
    epoch, head = await _epoch_and_head(target, denied, 3)
    client = await target.client(grants=[grant(allowed, "subscribe")])
    stale = _other_epoch(epoch)
    # Not granted AND stale epoch / above head + 1: forbidden wins.
    for payload in (
        {"from": 1, "epoch": stale},
        {"from": head + 5},
        {"from": head + 5, "epoch": stale},
        {"from": MAX_OFFSET},
    ):
        reply = await client.subscribe(denied, **_kwargs(payload))
        expect_error(reply, "forbidden", clause="SUB-1")


def _kwargs(payload: dict[str, Any]) -> dict[str, Any]:
    """``{"from": ..., "epoch": ...}`` as keyword arguments of ``ReplayClient.subscribe``."""
    return {("from_" if key == "from" else key): value for key, value in payload.items()}


@case("SUB-1", "ACC-7")
async def test_grant_is_checked_before_already_subscribed(target: Target) -> None:
    channel, other = target.channel("x"), target.channel("other")
    session = await target.register([grant(channel, "subscribe")])
    client = await target.client(session=session)
    expect_ok(await client.subscribe(channel, from_="latest"))
    # Narrow the grants: whether or not the server has ended the subscription yet (ACC-6
    # allows up to 1 s), a new subscribe lacks the grant, and the grant check comes before
    # the existing-subscription check, so the answer is forbidden either way.
    await target.register([grant(other, "subscribe")], session_id=session.session_id)
    reply = await client.subscribe(channel, from_="latest")
    expect_error(reply, "forbidden", clause="SUB-1")


@case("SUB-1", "SUB-3")
async def test_already_subscribed_is_checked_before_the_position(target: Target) -> None:
    channel = target.channel()
    epoch, head = await _epoch_and_head(target, channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_="latest"))
    stale = _other_epoch(epoch)
    # Already subscribed AND a stale epoch / an offset above head + 1: already_subscribed.
    for payload in (
        {"from": 1, "epoch": stale},
        {"from": head + 5},
        {"from": head + 5, "epoch": stale},
        {"from": 1},
    ):
        reply = await client.subscribe(channel, **_kwargs(payload))
        expect_error(reply, "already_subscribed", clause="SUB-1")


@case("SUB-1", "SUB-4")
async def test_epoch_is_checked_before_the_upper_bound(target: Target) -> None:
    channel = target.channel()
    epoch, head = await _epoch_and_head(target, channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    # A stale epoch AND from above head + 1: epoch_mismatch wins.
    for from_ in (head + 2, head + 100, MAX_OFFSET):
        reply = await client.subscribe(channel, from_=from_, epoch=_other_epoch(epoch))
        expect_error(reply, "epoch_mismatch", clause="SUB-1")
    # The upper bound and the lower bound cannot both fail (the lowest retained offset is at
    # most head + 1), so their order is not observable; epoch before the lower bound is
    # checked with retention in test_epoch_is_checked_before_the_lower_bound.


@case("SUB-1", "SUB-4", "SUB-6", feature="retention")
async def test_epoch_is_checked_before_the_lower_bound(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3)
    epoch, head = await _epoch_and_head(target, channel, 10)  # retains 8..10 (RET-12)
    client = await target.client(grants=[grant(channel, "subscribe")])
    stale = _other_epoch(epoch)
    for from_ in (1, 2, head - 3):
        reply = await client.subscribe(channel, from_=from_, epoch=stale)
        expect_error(reply, "epoch_mismatch", clause="SUB-1")
        reply = await client.subscribe(channel, from_=from_, epoch=stale, allow_truncation=True)
        expect_error(reply, "epoch_mismatch", clause="SUB-1")


# --- SUB-2 .. SUB-6: each failure --------------------------------------------------------------


@case("SUB-2")
async def test_subscribe_without_a_subscribe_grant_is_forbidden(target: Target) -> None:
    prefix = target.channel()
    exact, other = f"{prefix}-exact", f"{prefix}-other"
    await target.backend.publish(other, "exists")
    client = await target.client(
        grants=[
            grant(exact, "subscribe"),
            grant(f"{prefix}-ro*", "history", "publish"),  # every action but subscribe
        ]
    )
    for channel in (other, f"{prefix}-ro", f"{prefix}-room", f"{prefix}-never-used", prefix):
        expect_error(
            await client.subscribe(channel, from_="beginning"), "forbidden", clause="SUB-2"
        )
        # A refused subscribe creates no subscription (EVT-6).
        expect_error(await client.unsubscribe(channel), "not_subscribed", clause="SUB-2")
    expect_ok(await client.subscribe(exact, from_="beginning"))
    # Nothing from the refused channels is delivered (a stray would be recorded: CON-4).
    await target.backend.publish(other, "after")
    await target.settle(exact, client)


@case("SUB-3")
async def test_duplicate_subscribe_leaves_the_subscription_unchanged(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await client.subscribe(channel, from_="latest"))
    start = reply["from"]
    await target.backend.publish_many(channel, 2)
    await client.wait_for_offset(channel, start + 1)
    # A duplicate asking for a different start must not restart or move the subscription.
    for payload in ({"from": "beginning"}, {"from": 1}, {"from": "latest"}, {}):
        reply = await client.subscribe(channel, **_kwargs(payload))
        expect_error(reply, "already_subscribed", clause="SUB-3")
    await target.backend.publish_many(channel, 2)
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(start, last + 1), clause="SUB-3", channel=channel)
    subscription = client.subscription(channel)
    expect(
        subscription is not None and len(client.stream(channel).subscriptions) == 1,
        clause="SUB-3",
        expected="the original subscription, still live",
        received=f"subscriptions {client.stream(channel).subscriptions}",
    )


@case("SUB-4")
async def test_stale_epoch_with_an_integer_from_fails(target: Target) -> None:
    channel = target.channel()
    epoch, head = await _epoch_and_head(target, channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    stale = _other_epoch(epoch)
    for from_ in (1, head, head + 1):
        reply = await client.subscribe(channel, from_=from_, epoch=stale)
        expect_error(reply, "epoch_mismatch", clause="SUB-4")
    # Also on a never-used channel, whose epoch the client cannot have seen.
    fresh = target.channel("fresh")
    other = await target.client(grants=[grant(fresh, "subscribe")])
    expect_error(
        await other.subscribe(fresh, from_=1, epoch=f"never-{secrets.token_hex(8)}"),
        "epoch_mismatch",
        clause="SUB-4",
    )
    # The current epoch is accepted, and no failed attempt left a subscription behind.
    reply = expect_ok(await client.subscribe(channel, from_=1, epoch=epoch))
    expect(reply.get("epoch") == epoch, clause="SUB-4", expected=f"epoch {epoch}", received=reply)
    await client.wait_for_offset(channel, head)


@case("SUB-5")
async def test_from_above_head_plus_one_is_out_of_range(target: Target) -> None:
    channel = target.channel()
    epoch, head = await _epoch_and_head(target, channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    for from_ in (head + 2, MAX_OFFSET):
        reply = await client.subscribe(channel, from_=from_, epoch=epoch)
        expect_error(reply, "offset_out_of_range", clause="SUB-5")
    # head + 1 is the boundary: accepted, it delivers the next publish.
    reply = expect_ok(await client.subscribe(channel, from_=head + 1))
    expect(
        reply.get("from") == head + 1, clause="SUB-5", expected=f"from {head + 1}", received=reply
    )
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), [last], clause="SUB-5", channel=channel)


@case("SUB-5")
async def test_from_two_on_an_empty_channel_is_out_of_range(target: Target) -> None:
    channel = target.channel()
    client = await target.client(grants=[grant(channel, "subscribe")])
    await target.epoch(channel)  # the empty channel's epoch, which an offset travels with
    expect_error(await client.subscribe(channel, from_=2), "offset_out_of_range", clause="SUB-5")
    expect_ok(await client.subscribe(channel, from_=1))
    await target.settle(channel, client)
    expect_offsets(client.offsets(channel), [1], clause="SUB-5", channel=channel)


@case("SUB-6", feature="retention")
async def test_from_below_first_is_truncated(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3)
    epoch, head = await _epoch_and_head(target, channel, 10)  # first = 8 (RET-12)
    first = head - 2
    client = await target.client(grants=[grant(channel, "subscribe")])
    for from_, allow in ((1, None), (first - 1, None), (2, False)):
        reply = await client.subscribe(channel, from_=from_, epoch=epoch, allow_truncation=allow)
        expect_error(reply, "history_truncated", clause="SUB-6")
    reply = expect_ok(await client.subscribe(channel, from_=first))
    expect(reply.get("from") == first, clause="SUB-6", expected=f"from {first}", received=reply)
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(first, last + 1), clause="SUB-6", channel=channel)


# --- SUB-9 .. SUB-12: resolving from, and the reply ----------------------------------------------


@case("SUB-9")
async def test_omitted_from_without_a_cursor_is_latest(target: Target) -> None:
    channel = target.channel()
    _, head = await _epoch_and_head(target, channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await client.subscribe(channel), clause="SUB-9")
    expect(
        (reply.get("from"), reply.get("head")) == (head + 1, head),
        clause="SUB-9",
        expected=f"from {head + 1}, head {head} (as 'latest': the session has no cursor)",
        received=reply,
    )
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), [last], clause="SUB-9", channel=channel)


@case("SUB-9", feature="cursors")
async def test_omitted_from_with_a_cursor_starts_after_it(target: Target) -> None:
    channel = target.channel()
    await _epoch_and_head(target, channel, 5)
    session = await target.register([grant(channel, "subscribe")])
    acker = await target.client(session=session)
    expect_ok(await acker.ack(channel, 2))
    client = await target.client(session=session)
    reply = expect_ok(await client.subscribe(channel), clause="SUB-9")
    expect(reply.get("from") == 3, clause="SUB-9", expected="from 3 (cursor 2 + 1)", received=reply)
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(3, last + 1), clause="SUB-9", channel=channel)


@case("SUB-9", "SUB-6", "SUB-11", feature="cursors")
async def test_cursor_below_first_follows_the_lower_bound_rules(target: Target) -> None:
    if "retention" not in target.features:
        pytest.skip("not claimed: feature retention")
    channel = target.channel()
    await _epoch_and_head(target, channel, 3)
    session = await target.register([grant(channel, "subscribe")])
    acker = await target.client(session=session)
    expect_ok(await acker.ack(channel, 2))
    # Retention now drops the cursor's next offset (3): the cursor + 1 is below first.
    await target.backend.set_retention(channel, max_messages=2)
    _, head = await _epoch_and_head(target, channel, 5)  # head 8, first 7
    first = head - 1
    client = await target.client(session=session)
    expect_error(await client.subscribe(channel), "history_truncated", clause="SUB-6")
    reply = expect_ok(await client.subscribe(channel, allow_truncation=True), clause="SUB-11")
    expect(
        reply.get("from") == first
        and reply.get("truncated") == {"requested": 3, "first_available": first},
        clause="SUB-11",
        expected=f"from {first}, truncated {{requested: 3, first_available: {first}}}",
        received=reply,
    )


@case("SUB-16", "EPO-6", "EVT-6")
async def test_integer_from_without_epoch_is_a_bad_request(target: Target) -> None:
    channel = target.channel()
    epoch, head = await _epoch_and_head(target, channel, 5)
    client = await target.client(grants=[grant(channel, "subscribe")])
    for from_ in (3, 1, head + 1):
        reply = await client.subscribe(channel, from_=from_, epoch=None)
        expect_error(reply, "bad_request", clause="SUB-16")
    # It created no subscription (EVT-6): the same offset with its epoch is accepted.
    reply = expect_ok(await client.subscribe(channel, from_=3, epoch=epoch))
    expect(
        (reply.get("epoch"), reply.get("from")) == (epoch, 3),
        clause="SUB-16",
        expected=f"epoch {epoch}, from 3",
        received=reply,
    )
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(3, last + 1), clause="ORD-1", channel=channel)


@case("SUB-7", "SUB-8", "EPO-6")
async def test_keyword_starts_need_no_epoch(target: Target) -> None:
    channel = target.channel()
    await _epoch_and_head(target, channel, 2)
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_="beginning", epoch=None), clause="SUB-7")
    expect_ok(await client.unsubscribe(channel), clause="UNS-1")
    expect_ok(await client.subscribe(channel, from_="latest", epoch=None), clause="SUB-8")


@case("SUB-11", feature="retention")
async def test_allow_truncation_starts_at_first_and_says_so(target: Target) -> None:
    channel = target.channel()
    await target.backend.set_retention(channel, max_messages=3)
    epoch, head = await _epoch_and_head(target, channel, 10)
    first = head - 2
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(
        await client.subscribe(channel, from_=2, epoch=epoch, allow_truncation=True),
        clause="SUB-11",
    )
    expect(
        reply.get("from") == first
        and reply.get("truncated") == {"requested": 2, "first_available": first},
        clause="SUB-11",
        expected=f"from {first}, truncated {{requested: 2, first_available: {first}}}",
        received=reply,
    )
    last = await target.settle(channel, client)
    expect_offsets(
        client.offsets(channel), range(first, last + 1), clause="SUB-11", channel=channel
    )
    # At or above first, allow_truncation changes nothing: the subscription starts there.
    other = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(
        await other.subscribe(channel, from_=first + 1, allow_truncation=True), clause="SUB-11"
    )
    expect(
        reply.get("from") == first + 1,
        clause="SUB-11",
        expected=f"from {first + 1}",
        received=reply,
    )


@case("SUB-12")
@pytest.mark.parametrize("start", ["beginning", "latest", "integer", "omitted"])
async def test_reply_carries_epoch_from_and_a_current_head(target: Target, start: str) -> None:
    channel = target.channel()
    epoch, before = await _epoch_and_head(target, channel, 5)
    client = await target.client(grants=[grant(channel, "subscribe")])
    starts: dict[str, int | str] = {"beginning": "beginning", "latest": "latest", "integer": 2}
    from_ = starts.get(start)  # None: omitted
    # Publishes race the subscribe, so the head moves while it is resolved.
    reply, _ = await asyncio.gather(
        client.subscribe(channel, from_=from_),
        target.backend.publish_concurrently(channel, 20, 5),
    )
    expect_ok(reply)
    after = int((await target.backend.publish(channel, "after the reply"))["offset"])
    head, resolved = reply.get("head"), reply.get("from")
    expect(reply.get("epoch") == epoch, clause="SUB-12", expected=f"epoch {epoch}", received=reply)
    expect(
        isinstance(head, int) and before <= head < after,
        clause="SUB-12",
        expected=f"a head current during the request: {before} <= head < {after}",
        received=reply,
    )
    expected_from = {"beginning": 1, "integer": 2}.get(start)
    if expected_from is None:  # latest, or omitted without a cursor
        expected_from = head + 1 if isinstance(head, int) else -1
    expect(
        resolved == expected_from and isinstance(head, int) and resolved <= head + 1,
        clause="SUB-12",
        expected=f"the resolved from {expected_from}, and from <= head + 1",
        received=reply,
    )
    await client.wait_for_offset(channel, after, clause="SUB-12")


@case("SUB-14")
async def test_history_then_live_from_the_resolved_from(target: Target) -> None:
    channel = target.channel()
    await _epoch_and_head(target, channel, 10)
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_=4))
    await client.wait_for_offset(channel, 10, clause="SUB-14")
    await target.backend.publish_many(channel, 5)
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(4, last + 1), clause="SUB-14", channel=channel)
    data = [m.get("data") for m in client.messages(channel)[:12]]
    expect(
        data == [{"n": n} for n in range(3, 10)] + [{"n": n} for n in range(5)],
        clause="SUB-14",
        expected="the messages at offsets 4..15, as published",
        received=data,
    )


# --- UNS-4 .. UNS-6 ----------------------------------------------------------------------------


@case("UNS-4")
async def test_subscribe_again_after_unsubscribing(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await client.subscribe(channel, from_="beginning"))
    await client.wait_for_offset(channel, 3)
    expect_ok(await client.unsubscribe(channel))
    await target.backend.publish_many(channel, 2)  # 4, 5: published while not subscribed
    # The new subscription is independent: it may start below what the old one delivered.
    reply = expect_ok(await client.subscribe(channel, from_=2), clause="UNS-4")
    expect(reply.get("from") == 2, clause="UNS-4", expected="from 2", received=reply)
    last = await target.settle(channel, client)
    old, new = client.stream(channel).subscriptions
    expect_offsets(old.offsets, [1, 2, 3], clause="UNS-4", channel=channel)
    expect_offsets(new.offsets, range(2, last + 1), clause="UNS-4", channel=channel)
    # And a third time, from latest.
    expect_ok(await client.unsubscribe(channel))
    reply = expect_ok(await client.subscribe(channel, from_="latest"), clause="UNS-4")
    expect(
        reply.get("from") == last + 1, clause="UNS-4", expected=f"from {last + 1}", received=reply
    )
    final = await target.settle(channel, client)
    expect_offsets(
        client.stream(channel).subscriptions[-1].offsets, [final], clause="UNS-4", channel=channel
    )


@case("UNS-5")
async def test_unsubscribe_needs_no_grant(target: Target) -> None:
    granted, ungranted = target.channel("granted"), target.channel("ungranted")
    await target.backend.publish(ungranted, "exists")
    client = await target.client(grants=[grant(granted, "subscribe")])
    # No grant at all on the channel: not_subscribed (UNS-2), not forbidden.
    expect_error(await client.unsubscribe(ungranted), "not_subscribed", clause="UNS-5")


@case("UNS-5", "UNS-6")
async def test_unsubscribe_after_the_grants_were_narrowed(target: Target) -> None:
    channel, other = target.channel("x"), target.channel("other")
    session = await target.register([grant(channel, "subscribe")])
    client = await target.client(session=session)
    expect_ok(await client.subscribe(channel, from_="latest"))
    # Remove every grant on the channel and unsubscribe at once: the server may or may not
    # have ended the subscription yet (ACC-6), but the unsubscribe never needs a grant.
    await target.register([grant(other, "subscribe")], session_id=session.session_id)
    reply = await client.unsubscribe(channel)
    stream = client.stream(channel)
    if _arrived_before_the_reply(target, client, "replay:unsubscribed", "replay:unsubscribe"):
        # The revocation came first: the socket no longer subscribed when it unsubscribed.
        expect_error(reply, "not_subscribed", clause="UNS-6")
    elif reply.get("ok") is not True:
        expect_error(reply, "not_subscribed", clause="UNS-5")
    expect(
        len(stream.subscriptions) == 1 and stream.current is None,
        clause="UNS-5",
        expected="the subscription ended (by the unsubscribe, or by the revocation)",
        received=f"subscriptions {stream.subscriptions}",
    )


def _arrived_before_the_reply(target: Target, client: ReplayClient, event: str, op: str) -> bool:
    """Whether server event ``event`` arrived before the reply to the client's last ``op``."""
    replies = target.log.find(kind="reply", name=op, actor=client.name)
    events = target.log.find(kind="event", name=event, actor=client.name)
    return bool(replies and events and events[0].seq < replies[-1].seq)


@case("UNS-6")
async def test_after_a_revocation_the_socket_no_longer_subscribes(target: Target) -> None:
    channel = target.channel()
    session = await target.register([grant(channel, "subscribe")])
    client = await target.client(session=session)
    control = await target.client(grants=[grant(channel, "subscribe")])
    for subscriber in (client, control):
        expect_ok(await subscriber.subscribe(channel, from_="latest"))
    await target.backend.publish(channel, "before")
    await client.wait_for_offset(channel, 1)
    await target.register([], session_id=session.session_id)
    await client.wait_for_event(
        "replay:unsubscribed", lambda p: p.get("channel") == channel, clause="UNS-6"
    )
    # Nothing more arrives for the ended subscription (a stray would be recorded: UNS-6).
    await target.settle(channel, control)
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="UNS-6")
    # With the grant back, a subscribe is accepted (not already_subscribed).
    await target.register([grant(channel, "subscribe")], session_id=session.session_id)
    reply = expect_ok(await client.subscribe(channel, from_=1), clause="UNS-6")
    expect(reply.get("from") == 1, clause="UNS-6", expected="from 1", received=reply)
    last = await target.settle(channel, client, control)
    expect_offsets(
        client.stream(channel).subscriptions[-1].offsets,
        range(1, last + 1),
        clause="UNS-6",
        channel=channel,
    )


@case("UNS-6")
async def test_after_a_failed_auto_subscription_the_socket_no_longer_subscribes(
    target: Target,
) -> None:
    channel = target.channel()
    # from 50 on a never-used channel cannot start (offset_out_of_range, AUT-4).
    entry = {"channel": channel, "from": 50, "epoch": await target.epoch(channel)}
    client = await target.client(grants=[grant(channel, "subscribe")], subscribe=[entry])
    await client.wait_for_event(
        "replay:unsubscribed", lambda p: p.get("channel") == channel, clause="UNS-6"
    )
    expect_error(await client.unsubscribe(channel), "not_subscribed", clause="UNS-6")
    expect_ok(await client.subscribe(channel, from_="beginning"), clause="UNS-6")
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(1, last + 1), clause="UNS-6", channel=channel)


# --- EVT-2: pipelined events ------------------------------------------------------------------


@case("EVT-2")
async def test_pipelined_subscribe_and_unsubscribe_keep_their_order(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe")])
    # Sent back to back, without waiting for a reply: the unsubscribe finds the subscription.
    for _ in range(3):
        subscribed, unsubscribed = await asyncio.gather(
            client.subscribe(channel, from_="beginning"), client.unsubscribe(channel)
        )
        expect_ok(subscribed, clause="EVT-2")
        expect_ok(unsubscribed, clause="EVT-2")
    # subscribe, unsubscribe, subscribe: all three succeed, and the last one is live.
    replies = await asyncio.gather(
        client.subscribe(channel, from_="latest"),
        client.unsubscribe(channel),
        client.subscribe(channel, from_="latest"),
    )
    for reply in replies:
        expect_ok(reply, clause="EVT-2")
    # unsubscribe then subscribe of a subscribed channel: both succeed too.
    pair = await asyncio.gather(
        client.unsubscribe(channel), client.subscribe(channel, from_="latest")
    )
    for reply in pair:
        expect_ok(reply, clause="EVT-2")
    last = await target.settle(channel, client)
    expect_offsets(
        client.stream(channel).subscriptions[-1].offsets, [last], clause="EVT-2", channel=channel
    )


@case("EVT-2", feature="client-publish")
async def test_pipelined_subscribe_publish_history_keep_their_order(target: Target) -> None:
    if "history" not in target.features:
        pytest.skip("not claimed: feature history")
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(grants=[grant(channel)])
    subscribed, published, history = await asyncio.gather(
        client.subscribe(channel, from_="latest"),
        client.publish(channel, {"pipelined": True}),
        client.history(channel, from_="beginning"),
    )
    expect_ok(subscribed, clause="EVT-2")
    expect_ok(published, clause="EVT-2")
    expect_ok(history, clause="EVT-2")
    offset = published.get("offset")
    # The subscribe resolved "latest" before the publish, so it starts at the new message ...
    expect(
        subscribed.get("from") == offset == 3,
        clause="EVT-2",
        expected="the subscription (from latest) to start at the pipelined publish, offset 3",
        received=f"subscribe {subscribed}, publish {published}",
    )
    # ... and the history read, sent after the publish, contains it.
    offsets = [m.get("offset") for m in history.get("messages", [])]
    expect(
        offsets == [1, 2, 3] and history.get("head") == 3,
        clause="EVT-2",
        expected="history after the publish: offsets [1, 2, 3], head 3",
        received=history,
    )
    await client.wait_for_offset(channel, 3, clause="EVT-2")
    last = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(3, last + 1), clause="EVT-2", channel=channel)


# --- SUB-15: the subscription limit ------------------------------------------------------------


@case("SUB-15", "SUB-1")
async def test_one_subscription_above_the_limit_is_rate_limited(target: Target) -> None:
    limit = target.limits.get("max_subscriptions")
    if limit is None:
        pytest.skip("limits.max_subscriptions is not advertised")
    if limit > 1000:
        pytest.skip(f"limits.max_subscriptions {limit} is too large to reach in a case")
    prefix = target.channel()
    denied = target.channel("denied")
    client = await target.client(grants=[grant(f"{prefix}-*", "subscribe")])
    names = [f"{prefix}-{n}" for n in range(limit)]
    # Concurrently: the limit must hold however the subscribes interleave.
    replies = await asyncio.gather(*(client.subscribe(n, from_="latest") for n in names))
    for reply in replies:
        expect_ok(reply, clause="SUB-15")
    extra = f"{prefix}-{limit}"
    expect_error(await client.subscribe(extra, from_="latest"), "rate_limited", clause="SUB-15")
    # SUB-1: grant and existing subscription come before the limit, the epoch after it.
    expect_error(await client.subscribe(denied, from_="latest"), "forbidden", clause="SUB-1")
    reply = await client.subscribe(names[0], from_=1, epoch="stale")
    expect_error(reply, "already_subscribed", clause="SUB-1")
    reply = await client.subscribe(extra, from_=5, epoch="stale")
    expect_error(reply, "rate_limited", clause="SUB-1")
    # One fewer subscription makes room for exactly one more.
    expect_ok(await client.unsubscribe(names[0]))
    expect_ok(await client.subscribe(extra, from_="latest"), clause="SUB-15")
    expect_error(await client.subscribe(names[0], from_="latest"), "rate_limited", clause="SUB-15")
    # The refused channel got no subscription: a publish to it is not delivered (CON-4).
    await target.backend.publish(names[0], "not for this socket")
    await target.settle(extra, client)


@case("SUB-15")
async def test_the_limit_is_per_socket(target: Target) -> None:
    limit = target.limits.get("max_subscriptions")
    if limit is None:
        pytest.skip("limits.max_subscriptions is not advertised")
    if limit > 1000:
        pytest.skip(f"limits.max_subscriptions {limit} is too large to reach in a case")
    prefix = target.channel()
    session = await target.register([grant(f"{prefix}-*", "subscribe")])
    first = await target.client(session=session)
    replies = await asyncio.gather(
        *(first.subscribe(f"{prefix}-{n}", from_="latest") for n in range(limit))
    )
    for reply in replies:
        expect_ok(reply, clause="SUB-15")
    # Another socket of the same session has its own allowance.
    second = await target.client(session=session)
    expect_ok(await second.subscribe(f"{prefix}-{limit}", from_="latest"), clause="SUB-15")
    expect_ok(await second.subscribe(f"{prefix}-0", from_="latest"), clause="SUB-15")
