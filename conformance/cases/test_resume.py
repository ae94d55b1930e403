"""Resuming after a disconnect (spec §10.4), no silent loss (§10.6), and what a connection
owns (§5: CON-3 to CON-5).

A client resumes by subscribing from the offset after the last one it saw, with the epoch it
saw. These cases drop connections cleanly and abruptly (a TCP reset through the fault proxy)
while publishes continue, and restart a non-durable target to make epochs stale.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from conformance import (
    ConnectFailed,
    ConnectRefused,
    Target,
    case,
    current,
    expect,
    expect_error,
    expect_offsets,
    expect_ok,
    fail,
    grant,
)
from conformance.text import summarize

CONNECT_ERROR_MESSAGES = ("unauthorized", "unavailable", "internal")


class Publisher:
    """Publishes to one channel, one message after the other, until stopped."""

    def __init__(self, target: Target, channel: str) -> None:
        self.target = target
        self.channel = channel
        self.acked = 0
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())
        current().defer(self._cancel)  # never left running after a failed case

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.target.backend.publish(self.channel, {"n": self.acked})
            self.acked += 1

    async def stop(self) -> None:
        """Stop after the publish in flight (re-raising a publish's failure)."""
        self._stop.set()
        await self._task

    async def _cancel(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# --- RES-1, RES-2 ----------------------------------------------------------------------------


@case("RES-1", "RES-2")
@pytest.mark.parametrize("drop", ["abrupt", "clean"])
@pytest.mark.parametrize("session", ["same-session", "new-session"])
async def test_resume_delivers_exactly_the_missed_messages(
    target: Target, drop: str, session: str
) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 20)
    registered = await target.register([grant(channel, "subscribe")])
    proxy = await target.proxy()
    first = await target.client(session=registered, proxy=proxy)
    reply = expect_ok(await first.subscribe(channel, from_=1))
    epoch = reply["epoch"]
    publisher = Publisher(target, channel)
    await first.wait_for_offset(channel, 40)
    # Drop the connection mid-stream while the publishes go on.
    if drop == "abrupt":
        await proxy.cut()
        await first.wait_disconnected(clause="RES-1")
    else:
        await first.disconnect()
    seen = first.offsets(channel)
    expect_offsets(seen, range(1, len(seen) + 1), clause="RES-1", channel=channel)
    last = seen[-1]
    if session == "same-session":
        second = await target.client(session=registered)
    else:
        second = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await second.subscribe(channel, from_=last + 1, epoch=epoch), clause="RES-1")
    expect(
        (reply.get("from"), reply.get("epoch")) == (last + 1, epoch),
        clause="RES-1",
        expected=f"from {last + 1}, epoch {epoch}",
        received=reply,
        channel=channel,
    )
    # Let the resumed subscription also catch up with live publishes before they stop.
    head = reply["head"]
    await second.wait_for_offset(channel, head + 20, clause="RES-1")
    await publisher.stop()
    end = await target.settle(channel, second)
    expect_offsets(
        second.offsets(channel), range(last + 1, end + 1), clause="RES-1", channel=channel
    )
    # Together the two connections saw every message exactly once, none extra.
    expect_offsets(
        seen + second.offsets(channel), range(1, end + 1), clause="RES-2", channel=channel
    )


@case("RES-2")
async def test_resume_on_another_session_sees_the_same_messages(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 10)
    first = await target.client(grants=[grant(channel, "subscribe")])
    reply = expect_ok(await first.subscribe(channel, from_=1))
    await first.wait_for_offset(channel, 10)
    await first.disconnect()
    # A client with a different session and client id resumes where the first stopped.
    second = await target.client(grants=[grant(f"{channel[:-2]}*", "subscribe")])
    expect_ok(await second.subscribe(channel, from_=6, epoch=reply["epoch"]), clause="RES-2")
    end = await target.settle(channel, second)
    expect_offsets(second.offsets(channel), range(6, end + 1), clause="RES-2", channel=channel)
    expect(
        first.messages(channel)[5:10] == second.messages(channel)[:5],
        clause="RES-2",
        expected="the same messages at offsets 6..10 for both sessions",
        received=f"{summarize(first.messages(channel)[5:10])} / "
        f"{summarize(second.messages(channel)[:5])}",
        channel=channel,
    )


# --- CON-4, CON-5 ----------------------------------------------------------------------------


@case("CON-4")
async def test_a_new_connection_has_only_the_auto_subscriptions(target: Target) -> None:
    auto, manual = target.channel("auto"), target.channel("manual")
    session = await target.register(
        [grant(auto, "subscribe"), grant(manual, "subscribe")],
        subscribe=[{"channel": auto, "from": "latest"}],
    )
    first = await target.client(session=session)
    await first.wait_for_event("replay:subscribed", clause="CON-4")
    expect_ok(await first.subscribe(manual, from_="latest"))
    # A second connection of the same session, while the first is still connected ...
    second = await target.client(session=session)
    await second.wait_for_event("replay:subscribed", clause="CON-4")
    # ... and a third after the first has gone.
    await first.disconnect()
    third = await target.client(session=session)
    await third.wait_for_event("replay:subscribed", clause="CON-4")
    control = await target.client(grants=[grant(manual, "subscribe")])
    expect_ok(await control.subscribe(manual, from_="latest"))
    for client in (second, third):
        auto_channels = [p.get("channel") for n, p in client.events if n == "replay:subscribed"]
        expect(
            auto_channels == [auto],
            clause="CON-4",
            expected=f"only the auto-subscription to {auto}",
            received=auto_channels,
        )
        expect_error(await client.unsubscribe(manual), "not_subscribed", clause="CON-4")
    # Nothing of the manual channel reaches the new connections (a stray is recorded: CON-4).
    await target.settle(manual, control)
    await target.settle(auto, second, third)
    for client in (second, third):
        expect(
            client.offsets(manual) == [],
            clause="CON-4",
            expected=f"no replay:messages for {manual}",
            received=f"offsets {client.offsets(manual)}",
            channel=manual,
        )


@case("CON-5", feature="cursors")
@pytest.mark.parametrize("drop", ["abrupt", "clean"])
async def test_cursors_outlive_the_connection(target: Target, drop: str) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    session = await target.register([grant(channel, "subscribe")])
    proxy = await target.proxy()
    first = await target.client(session=session, proxy=proxy)
    expect_ok(await first.subscribe(channel, from_=1))
    await first.wait_for_offset(channel, 5)
    expect_ok(await first.ack(channel, 3))
    if drop == "abrupt":
        await proxy.cut()
        await first.wait_disconnected(clause="CON-5")
    else:
        await first.disconnect()
    second = await target.client(session=session)
    reply = expect_ok(await second.subscribe(channel))
    expect(
        reply.get("from") == 4,
        clause="CON-5",
        expected="from 4: the cursor (3) kept after the connection ended",
        received=reply,
    )
    end = await target.settle(channel, second)
    expect_offsets(second.offsets(channel), range(4, end + 1), clause="CON-5", channel=channel)


# --- CON-3 -------------------------------------------------------------------------------------


@case("CON-3", "CON-2")
async def test_every_connect_error_is_one_of_three_messages(target: Target) -> None:
    replaced = await target.register([])
    await target.register([], session_id=replaced.session_id)
    revoked = await target.register([])
    await target.backend.delete_session(revoked.session_id)
    must_refuse: dict[str, object] = {
        "no auth": None,
        "empty auth": {},
        "empty token": {"token": ""},
        "null token": {"token": None},
        "numeric token": {"token": 42},
        "object token": {"token": {"token": replaced.token}},
        "unknown token": {"token": secrets.token_urlsafe(32)},
        "overlong token": {"token": "t" * 600},
        "replaced token": {"token": replaced.token},
        "revoked token": {"token": revoked.token},
        "token with spaces": {"token": f" {revoked.token} "},
    }
    # Not even an object: a server may refuse it or drop the connection as malformed.
    may_fail: dict[str, object] = {"string auth": "token", "array auth": [replaced.token]}
    messages: dict[str, object] = {}
    for label, auth in {**must_refuse, **may_fail}.items():
        client = await target.client(connect=False, name=label.replace(" ", "-"))
        try:
            await client.connect_raw(auth)
        except ConnectRefused as refused:
            messages[label] = refused.message
            continue
        except ConnectFailed:
            if label in may_fail:
                continue
            fail("CON-2", f"a CONNECT_ERROR for {label}", "the connection failed below Socket.IO")
        fail("CON-2", f"the connection with {label} refused", "it was accepted")
    wrong = {label: m for label, m in messages.items() if m not in CONNECT_ERROR_MESSAGES}
    expect(
        not wrong,
        clause="CON-3",
        expected=f"every CONNECT_ERROR message one of {list(CONNECT_ERROR_MESSAGES)}",
        received=wrong,
    )


# --- SIG-1, SIG-3, SIG-4 -----------------------------------------------------------------------


@case("SIG-4", "SIG-1", "SUB-4", durable=False)
async def test_a_stale_epoch_after_a_restart_is_an_error(target: Target) -> None:
    if not target.restartable:
        pytest.skip("not claimed: restartable target")
    channel = target.channel()
    await target.backend.publish_many(channel, 5)
    old_epoch = str((await target.backend.publish(channel, {"n": 5}))["epoch"])
    await target.restart()  # a non-durable target loses history: new epoch (DUR-3)
    await target.backend.publish_many(channel, 3)  # offsets 1..3 of the new epoch
    client = await target.client(grants=[grant(channel, "subscribe")])
    # Resuming with the old epoch is an error wherever the offset falls in the new epoch,
    # never a silent restart from 1 (SIG-4) nor a stream that skips (SIG-1).
    for from_ in (7, 1, 2, 4):
        reply = await client.subscribe(channel, from_=from_, epoch=old_epoch)
        expect_error(reply, "epoch_mismatch", clause="SIG-4")
    if "cursors" in target.features:
        reply = await client.ack(channel, 2, epoch=old_epoch)
        expect_error(reply, "epoch_mismatch", clause="SIG-4")
    reply = expect_ok(await client.subscribe(channel, from_="beginning"))
    expect(
        reply.get("epoch") != old_epoch and reply.get("from") == 1,
        clause="SIG-4",
        expected=f"a new epoch (not {old_epoch}) starting at 1",
        received=reply,
    )
    end = await target.settle(channel, client)
    expect_offsets(client.offsets(channel), range(1, end + 1), clause="SIG-1", channel=channel)


@case("SIG-3")
async def test_epoch_change_while_subscribed_ends_the_subscription(target: Target) -> None:
    # SIG-3 needs a channel whose epoch changes while a socket subscribes to it. Per EPO-3 an
    # epoch changes only when history may have been lost: a non-durable target's restart, or
    # a wiped store. A restart also ends every socket (the process is gone), so no live
    # subscription can observe the change, and the protocol offers a black-box suite no way
    # to wipe a running target's store (retention never changes the epoch, RET-4). Until a
    # target exposes such a trigger, SIG-3 is not observable: report it as not claimed.
    pytest.skip("not claimed: no way to change a channel's epoch while a socket stays connected")


@case("RES-4", "SUB-6", "SUB-11", feature="retention")
async def test_a_resume_past_retention_fails_or_starts_truncated(target: Target) -> None:
    channel = target.channel()
    await target.backend.publish_many(channel, 10)
    first = await target.client(grants=[grant(channel, "subscribe")])
    expect_ok(await first.subscribe(channel, from_="beginning"), clause="SUB-7")
    await first.wait_for_offset(channel, 10, clause="SUB-14")
    await first.disconnect()  # the client saw up to 10, and resumes from 6 (say, a lost page)
    await target.backend.set_retention(channel, max_messages=3)
    await target.backend.publish(channel, {"n": 10})  # offset 11: 9 to 11 are retained (RET-12)
    second = await target.client(grants=[grant(channel, "subscribe")])
    expect_error(await second.subscribe(channel, from_=6), "history_truncated", clause="RES-4")
    reply = expect_ok(
        await second.subscribe(channel, from_=6, allow_truncation=True), clause="RES-4"
    )
    expect(
        reply.get("from") == 9 and reply.get("truncated") == {"requested": 6, "first_available": 9},
        clause="RES-4",
        expected='from 9 with "truncated": {"requested": 6, "first_available": 9}',
        received=reply,
        channel=channel,
    )
    await second.wait_for_offset(channel, 11, clause="RES-4")
    expect_offsets(second.offsets(channel), [9, 10, 11], clause="RES-4", channel=channel)
