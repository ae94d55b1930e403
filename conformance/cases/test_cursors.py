"""Cursors (spec §6.3 `replay:ack`, §10.5 resume through a cursor; feature `cursors`), and the
cursors a session keeps when its connections end (§5 CON-5)."""

from __future__ import annotations

import secrets

import pytest

from conformance import (
    ConnectRefused,
    ReplayClient,
    Target,
    case,
    expect,
    expect_error,
    expect_offsets,
    expect_ok,
    grant,
)


def _session_id() -> str:
    return f"conformance-{secrets.token_hex(8)}"


def _never_an_epoch() -> str:
    # Random, so that no target can have made it current.
    return f"conformance-not-an-epoch-{secrets.token_hex(12)}"


async def _resume_from(client: ReplayClient, channel: str) -> int:
    """Subscribe with an omitted ``from`` (cursor-based resume); the resolved ``from``, which
    the case judges (the subscribe is a step: refused, it fails SUB-9)."""
    reply = expect_ok(await client.subscribe(channel))
    resolved = reply.get("from")
    return resolved if isinstance(resolved, int) else -1


@case("ACK-1")
async def test_ack_without_subscribe_grant_is_forbidden(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 2)
    client = await target.client(grants=[grant(channel, "history", "publish")])
    expect_error(await client.ack(channel, 1), "forbidden", clause="ACK-1")
    # A prefix grant for subscribe on another channel family does not help.
    other = await target.client(grants=[grant(f"{channel}:*", "subscribe")])
    expect_error(await other.ack(channel, 1), "forbidden", clause="ACK-1")


@case("ACK-8", "EPO-6", "EVT-6")
async def test_ack_without_epoch_is_a_bad_request(target: Target) -> None:
    channel = target.channel()
    published = await target.backend.publish(channel, {"n": 0})
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_error(await client.ack(channel, 1, epoch=None), "bad_request", clause="ACK-8")
    # It moved no cursor (EVT-6): a resume through the cursor still starts at the head + 1.
    resolved = await _resume_from(client, channel)
    expect(resolved == 2, clause="EVT-6", expected="from 2 (no cursor)", received=resolved)
    reply = expect_ok(await client.ack(channel, 1, epoch=published["epoch"]))
    expect(reply.get("cursor") == 1, clause="ACK-4", expected="cursor 1", received=reply)


@case("ACK-9", "EPO-5")
async def test_ack_reply_carries_the_cursors_epoch(target: Target) -> None:
    channel = target.channel()
    published = await target.backend.publish(channel, {"n": 0})
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await client.ack(channel, 1, epoch=published["epoch"]))
    expect(
        (reply.get("epoch"), reply.get("cursor")) == (published["epoch"], 1),
        clause="ACK-9",
        expected=f"epoch {published['epoch']!r} with cursor 1",
        received=reply,
    )


@case("ACK-2")
async def test_ack_with_an_epoch_that_was_never_current(target: Target) -> None:
    channel = target.channel()
    published = await target.backend.publish(channel, {"n": 0})
    client = await target.client(grants=[grant(channel, "subscribe")])
    reply = await client.ack(channel, 1, epoch=_never_an_epoch())
    expect_error(reply, "epoch_mismatch", clause="ACK-2")
    # The current epoch is accepted.
    reply = expect_ok(await client.ack(channel, 1, epoch=published["epoch"]))
    expect(reply.get("cursor") == 1, clause="ACK-2", expected="cursor 1", received=reply)


@case("ACK-2", durable=False, timeout=60)
async def test_ack_with_the_epoch_before_a_restart(target: Target) -> None:
    if not target.restartable:
        pytest.skip("not claimed: restartable target")
    channel = target.channel()
    old_epoch = (await target.backend.publish(channel, {"n": 0}))["epoch"]
    await target.restart()  # a non-durable target loses history: a new epoch (DUR-3)
    new_epoch = (await target.backend.publish(channel, {"n": 0}))["epoch"]
    if new_epoch == old_epoch:
        pytest.skip("the epoch did not change across the restart (DUR-3's cases judge that)")
    # The session need not survive the restart: register one now.
    client = await target.client(grants=[grant(channel, "subscribe")])
    expect_error(await client.ack(channel, 1, epoch=old_epoch), "epoch_mismatch", clause="ACK-2")
    expect_ok(await client.ack(channel, 1, epoch=new_epoch))


@case("ACK-3")
async def test_ack_above_head_is_out_of_range(target: Target) -> None:
    channel, empty = target.channel(), target.channel("empty")
    await target.backend.publish_many(channel, 3)
    client = await target.client(grants=[grant(channel, "subscribe"), grant(empty, "subscribe")])
    expect_error(await client.ack(channel, 4), "offset_out_of_range", clause="ACK-3")
    expect_error(await client.ack(channel, 1000), "offset_out_of_range", clause="ACK-3")
    await target.epoch(empty)  # the empty channel's epoch, which an offset travels with
    expect_error(await client.ack(empty, 1), "offset_out_of_range", clause="ACK-3")
    reply = expect_ok(await client.ack(channel, 3))
    expect(reply.get("cursor") == 3, clause="ACK-3", expected="cursor 3", received=reply)


@case("ACK-4", "SUB-9")
async def test_ack_keeps_the_highest_offset(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    epoch = (await target.backend.publish(channel, {"n": 5}))["epoch"]
    session = await target.register([grant(channel, "subscribe")])
    client = await target.client(session=session)
    for offset, cursor in ((3, 3), (1, 3), (3, 3), (5, 5), (2, 5)):
        reply = expect_ok(await client.ack(channel, offset, epoch=epoch), clause="ACK-4")
        expect(
            reply.get("cursor") == cursor,
            clause="ACK-4",
            expected=f"cursor {cursor} after ack {offset} (max of cursor and offset)",
            received=reply,
            channel=channel,
        )
    resumed = await target.client(session=session)
    start = await _resume_from(resumed, channel)
    expect(start == 6, clause="ACK-4", expected="from 6 (cursor 5)", received=start)
    await resumed.wait_for_offset(channel, 6, clause="ACK-4")
    expect_offsets(resumed.offsets(channel), [6], clause="ACK-4", channel=channel)


@case("ACK-5")
async def test_ack_needs_no_subscription(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 4)
    session = await target.register([grant(channel, "subscribe")])
    client = await target.client(session=session)
    reply = expect_ok(await client.ack(channel, 2), clause="ACK-5")
    expect(reply.get("cursor") == 2, clause="ACK-5", expected="cursor 2", received=reply)
    # It took effect: a resume starts after it.
    start = await _resume_from(client, channel)
    expect(start == 3, clause="ACK-5", expected="from 3 (cursor 2)", received=start)


@case("ACK-6", "SES-2")
async def test_cursor_survives_reconnect_and_reregistration(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 6)
    session_id = _session_id()
    grants = [grant(channel, "subscribe")]
    session = await target.register(grants, session_id=session_id)
    first = await target.client(session=session)
    expect_ok(await first.ack(channel, 2))
    await first.disconnect()
    # A new connection of the same session.
    second = await target.client(session=session)
    start = await _resume_from(second, channel)
    expect(start == 3, clause="ACK-6", expected="from 3 after a reconnect", received=start)
    expect_ok(await second.ack(channel, 4))
    await second.disconnect()
    # Re-registration (SES-2) keeps it too.
    again = await target.register(grants, session_id=session_id)
    third = await target.client(session=again)
    start = await _resume_from(third, channel)
    expect(start == 5, clause="ACK-6", expected="from 5 after re-registration", received=start)


async def _epoch_change_keeping_the_session(
    target: Target, session_token: str, channel: str, old_epoch: str
) -> ReplayClient:
    """Restart the target, publish in the channel's new epoch, and reconnect the session.

    Skips the case when the target has no black-box way to do that: sessions that do not
    survive a restart (an in-memory target), or an epoch a restart does not change.
    """
    await target.restart()
    new = await target.backend.publish_many(channel, 5)
    head = await target.backend.publish(channel, {"n": 5})
    if head["epoch"] == old_epoch or new != [1, 2, 3, 4, 5]:
        pytest.skip("not claimed: the restart did not give the channel a new epoch")
    client = await target.client(connect=False)
    try:
        await client.connect(session_token)
    except ConnectRefused:
        pytest.skip(
            "not claimed: no black-box way to change a channel's epoch while a session keeps "
            "its cursor (the session did not survive the target's restart)"
        )
    return client


@case("ACK-7", durable=False, timeout=60)
async def test_cursor_of_an_older_epoch_is_ignored(target: Target) -> None:
    if not target.restartable:
        pytest.skip("not claimed: restartable target")
    channel = target.channel()
    await target.backend.publish_many(channel, 4)
    old_epoch = (await target.backend.publish(channel, {"n": 4}))["epoch"]
    session = await target.register([grant(channel, "subscribe")])
    client = await target.client(session=session)
    reply = expect_ok(await client.ack(channel, 3))
    expect(reply.get("cursor") == 3, clause="ACK-7", expected="cursor 3", received=reply)
    resumed = await _epoch_change_keeping_the_session(target, session.token, channel, old_epoch)
    # The cursor (3) belongs to the old epoch: an omitted `from` is "latest" (head 6 -> 7).
    start = await _resume_from(resumed, channel)
    expect(start == 7, clause="ACK-7", expected="from 7: the old cursor ignored", received=start)


# --- resume through a cursor (§10.5) -------------------------------------------------------------


@case("CUR-1", "CUR-2")
async def test_omitted_from_resumes_after_the_cursor(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 6)
    session = await target.register([grant(channel, "subscribe")])
    first = await target.client(session=session)
    reply = expect_ok(await first.subscribe(channel, from_="beginning"))
    await first.wait_for_offset(channel, 6)
    # Delivered 1..6, acknowledged 1..3 only.
    expect_ok(await first.ack(channel, 3, epoch=reply["epoch"]))
    await first.disconnect()
    await target.backend.publish_many(channel, 2, [{"n": 6}, {"n": 7}])
    second = await target.client(session=session)
    start = await _resume_from(second, channel)
    expect(start == 4, clause="CUR-1", expected="from 4 (cursor 3)", received=start)
    await second.wait_for_offset(channel, 8, clause="CUR-2")
    received = second.offsets(channel)
    expect(
        not [o for o in received if o <= 3],
        clause="CUR-1",
        expected="no offset at or below the cursor 3",
        received=received,
        channel=channel,
    )
    expect_offsets(received, range(4, 9), clause="CUR-2", channel=channel)


@case("CUR-1", "CUR-2", "AUT-1")
async def test_auto_subscription_resumes_after_the_cursor(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 6)
    session = await target.register(
        [grant(channel, "subscribe")], subscribe=[{"channel": channel, "from": "beginning"}]
    )
    first = await target.client(session=session)
    await first.wait_for_offset(channel, 6)
    expect_ok(await first.ack(channel, 4))
    await first.disconnect()
    await target.backend.publish_many(channel, 2, [{"n": 6}, {"n": 7}])
    second = await target.client(session=session)
    subscribed = await second.wait_for_event("replay:subscribed", clause="CUR-1")
    expect(
        subscribed.get("from") == 5,
        clause="CUR-1",
        expected="auto-subscription from 5: the cursor (4) wins over the entry's beginning",
        received=subscribed,
    )
    await second.wait_for_offset(channel, 8, clause="CUR-2")
    expect_offsets(second.offsets(channel), range(5, 9), clause="CUR-2", channel=channel)


@case("CON-5", "ACK-6")
@pytest.mark.parametrize("how", ["clean", "abrupt"])
async def test_cursors_are_kept_when_the_connection_ends(target: Target, how: str) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    session = await target.register([grant(channel, "subscribe")])
    proxy = await target.proxy()
    first = await target.client(session=session, proxy=proxy)
    expect_ok(await first.subscribe(channel, from_="beginning"))
    await first.wait_for_offset(channel, 5)
    expect_ok(await first.ack(channel, 3))
    if how == "clean":
        await first.disconnect()
    else:
        await proxy.cut()  # TCP RST: no Socket.IO DISCONNECT
        await first.wait_disconnected(clause="CON-5")
    second = await target.client(session=session)
    # The ended connection's subscription is gone, and the session's cursor is not.
    start = await _resume_from(second, channel)
    expect(start == 4, clause="CON-5", expected="from 4: the cursor (3) kept", received=start)
    await second.wait_for_offset(channel, 5, clause="CON-5")
    expect_offsets(second.offsets(channel), [4, 5], clause="CON-5", channel=channel)
