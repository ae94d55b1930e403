"""A subscription's lifecycle (replay_client.subscription) on a fake link: every request it
sends and every event it tells, for the cases a real server does not produce on demand (a
gap, a live truncation or epoch change, a failing handler) and for ack batching."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from replay_client import AckOptions, MemoryPositions, Message, Position
from replay_client.acks import AckBatcher
from replay_client.backoff import Backoff, BackoffOptions
from replay_client.subscription import Subscription

Reply = Callable[[Any], Awaitable[None]]


@dataclass
class FakeLink:
    online: bool = True
    sent: list[tuple[str, dict[str, Any], Reply | None]] = field(default_factory=list)
    timers: list[tuple[float, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    ended_subscriptions: list[Subscription] = field(default_factory=list)

    async def send(self, event: str, payload: dict[str, Any], on_reply: Reply | None) -> bool:
        if not self.online:
            return False
        self.sent.append((event, payload, on_reply))
        return True

    def later(self, delay: float, action: Callable[[], Awaitable[None]]) -> None:
        self.timers.append((delay, action))

    def backoff(self) -> Backoff:
        return Backoff(BackoffOptions(0.1, 1.0, 0.0))

    def ended(self, subscription: Subscription) -> None:
        self.ended_subscriptions.append(subscription)

    def requests(self, event: str = "replay:subscribe") -> list[dict[str, Any]]:
        return [payload for name, payload, _ in self.sent if name == event]

    async def reply(self, reply: dict[str, Any], event: str = "replay:subscribe") -> None:
        callback = [cb for name, _, cb in self.sent if name == event][-1]
        assert callback is not None
        await callback(reply)

    async def fire_timers(self) -> None:
        timers, self.timers = self.timers, []
        for _, action in timers:
            await action()


def wire(*offsets: int) -> list[dict[str, Any]]:
    return [{"offset": o, "id": f"m{o}", "ts": 1, "data": {"n": o}} for o in offsets]


def ok(epoch: str = "e1", from_: int = 1, head: int = 0, **extra: Any) -> dict[str, Any]:
    return {"ok": True, "channel": "c", "epoch": epoch, "from": from_, "head": head} | extra


def error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": code}}


@dataclass
class Recorder:
    offsets: list[int] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    fail_next: bool = False

    def on_messages(self, messages: list[Message], _ctx: Any) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("application bug")
        self.offsets += [m.offset for m in messages]

    def watch(self, sub: Subscription) -> Subscription:
        for name in ("subscribed", "unsubscribed", "error"):
            sub.on(name, lambda e, name=name: self.events.append((name, e)))
        return sub

    def codes(self) -> list[str]:
        return [e.code for n, e in self.events if n == "error"]


async def subscription(
    link: FakeLink, app: Recorder, policy: str = "fail", **options: Any
) -> Subscription:
    options.setdefault("positions", MemoryPositions())
    options.setdefault("ack", None)
    options.setdefault("from_", "beginning")
    sub = Subscription(
        link, "c", on_messages=app.on_messages, on_unresumable=policy,  # type: ignore[arg-type]
        **options,
    )  # fmt: skip
    app.watch(sub)
    await sub.start()
    return sub


async def test_resumes_from_the_next_offset_with_its_epoch_after_a_disconnect() -> None:
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app)
    assert link.requests() == [{"channel": "c", "from": "beginning"}]
    await link.reply(ok(head=2))
    await sub.messages("e1", wire(1, 2))
    sub.disconnected()
    assert sub.state == "subscribing"
    await sub.connected()
    assert link.requests()[-1] == {"channel": "c", "from": 3, "epoch": "e1"}
    await link.reply(ok(from_=3, head=2))
    subscribed = [e for n, e in app.events if n == "subscribed"]
    assert [e.recovered for e in subscribed] == [False, True]
    await sub.messages("e1", wire(2, 3))  # a server resending 2: dropped
    assert app.offsets == [1, 2, 3] and sub.stats.duplicates == 1


async def test_starts_from_the_stored_position() -> None:
    link, app, positions = FakeLink(), Recorder(), MemoryPositions()
    await positions.set("c", Position("e1", 41))
    await subscription(link, app, positions=positions, from_=None)
    assert link.requests() == [{"channel": "c", "from": 42, "epoch": "e1"}]


async def test_a_gap_is_reported_and_repaired_by_subscribing_again() -> None:
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app)
    await link.reply(ok(head=9))
    await sub.messages("e1", wire(1, 2))
    await sub.messages("e1", wire(4, 5))
    assert app.codes() == ["gap"] and sub.stats.gaps == 1
    assert [name for name, _, _ in link.sent][-2:] == ["replay:unsubscribe", "replay:subscribe"]
    assert link.requests()[-1] == {"channel": "c", "from": 3, "epoch": "e1"}
    await sub.messages("e1", wire(3))  # of the old subscription: not delivered
    await link.reply(ok(from_=3, head=9))
    await sub.messages("e1", wire(3, 4, 5))
    assert app.offsets == [1, 2, 3, 4, 5] and sub.stats.stale == 1


async def test_messages_of_another_epoch_are_dropped() -> None:
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app)
    await link.reply(ok())
    await sub.messages("e0", wire(1))
    assert app.offsets == [] and sub.stats.foreign == 1


async def test_a_failing_handler_gets_the_messages_again_after_a_backoff() -> None:
    link, app, positions = FakeLink(), Recorder(fail_next=True), MemoryPositions()
    sub = await subscription(link, app, positions=positions)
    await link.reply(ok())
    await sub.messages("e1", wire(1, 2))
    assert app.codes() == ["handler_failed"] and await positions.get("c") is None
    await link.fire_timers()
    assert link.requests()[-1] == {"channel": "c", "from": 1, "epoch": "e1"}
    await link.reply(ok())
    await sub.messages("e1", wire(1, 2))
    assert app.offsets == [1, 2] and await positions.get("c") == Position("e1", 2)


@pytest.mark.parametrize("policy", ["fail", "restart", "continue"])
async def test_live_epoch_change(policy: str) -> None:
    """SIG-3: told first (``unsubscribed``), then the policy's resubscribe."""
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app, policy)
    await link.reply(ok())
    await sub.messages("e1", wire(1))
    await sub.server_ended("epoch_changed", None)
    assert app.events[1][0] == "unsubscribed" and app.events[1][1].reason == "epoch_changed"
    if policy == "fail":
        assert sub.state == "unsubscribed" and link.ended_subscriptions == [sub]
        assert len(link.requests()) == 1
        return
    assert link.requests()[-1] == {"channel": "c", "from": "beginning"}
    await link.reply(ok(epoch="e2"))
    assert app.events[-1][1].epoch_changed and sub.state == "subscribed"
    await sub.messages("e2", wire(1))
    assert app.offsets == [1, 1]


@pytest.mark.parametrize("policy", ["fail", "restart", "continue"])
async def test_live_truncation(policy: str) -> None:
    """SIG-2: ``continue`` resumes from the position with allow_truncation (SUB-11)."""
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app, policy)
    await link.reply(ok())
    await sub.messages("e1", wire(1, 2))
    await sub.server_ended("truncated", "retention")
    if policy == "fail":
        assert sub.state == "unsubscribed"
        return
    expected = {"channel": "c", "from": "beginning"}
    if policy == "continue":
        expected = {"channel": "c", "from": 3, "epoch": "e1", "allow_truncation": True}
    assert link.requests()[-1] == expected
    reply = ok(from_=8, head=9)
    if policy == "continue":
        reply["truncated"] = {"requested": 3, "first_available": 8}
    await link.reply(reply)
    event = app.events[-1][1]
    assert event.truncated and not event.recovered and not event.epoch_changed
    assert (event.truncation is not None) == (policy == "continue")


async def test_a_resumable_server_end_resumes_after_a_backoff() -> None:
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app)
    await link.reply(ok())
    await sub.messages("e1", wire(1))
    await sub.server_ended("lagging", None)
    assert sub.state == "subscribing" and len(link.requests()) == 1
    assert [d for d, _ in link.timers] == [0.1]
    await link.fire_timers()
    assert link.requests()[-1] == {"channel": "c", "from": 2, "epoch": "e1"}


@pytest.mark.parametrize("code", ["forbidden", "bad_request"])
async def test_fatal_replies_end_whatever_the_policy(code: str) -> None:
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app, "restart")
    await link.reply(error(code))
    assert sub.state == "unsubscribed" and app.codes() == [code]
    assert [e.reason for n, e in app.events if n == "unsubscribed"] == [code]


async def test_already_subscribed_by_an_auto_subscription_is_repaired() -> None:
    link, app = FakeLink(), Recorder()
    await subscription(link, app)
    await link.reply(error("already_subscribed"))
    assert [name for name, _, _ in link.sent] == [
        "replay:subscribe", "replay:unsubscribe", "replay:subscribe",
    ]  # fmt: skip


async def test_unsubscribe_tells_the_server_and_the_application() -> None:
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app)
    await link.reply(ok())
    await sub.unsubscribe()
    assert sub.state == "unsubscribed" and link.requests("replay:unsubscribe") == [{"channel": "c"}]
    assert [e.reason for n, e in app.events if n == "unsubscribed"] == ["client"]
    await sub.messages("e1", wire(1))
    assert app.offsets == []


async def test_acks_follow_the_handler_batched() -> None:
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app, ack=AckOptions(max_delay=0.2, max_messages=3), from_=None)
    assert link.requests() == [{"channel": "c"}]  # from omitted: the server cursor (SUB-9)
    await link.reply(ok(from_=5))
    await sub.messages("e1", wire(5))
    assert link.requests("replay:ack") == [] and [d for d, _ in link.timers] == [0.2]
    await sub.messages("e1", wire(6, 7))  # 3 messages: send now
    assert link.requests("replay:ack") == [{"channel": "c", "offset": 7, "epoch": "e1"}]
    await sub.messages("e1", wire(8, 9, 10))  # one in flight: wait for its reply
    assert len(link.requests("replay:ack")) == 1
    await link.reply({"ok": True, "epoch": "e1", "cursor": 7}, "replay:ack")
    assert link.requests("replay:ack")[-1]["offset"] == 10 and sub.stats.cursor == 7
    await link.fire_timers()  # the first timer finds nothing new to send
    assert len(link.requests("replay:ack")) == 2


async def test_an_ack_lost_with_its_connection_is_sent_again() -> None:
    link, sent = FakeLink(), []

    async def send(epoch: str, offset: int) -> bool:
        sent.append(offset)
        return True

    acks = AckBatcher(AckOptions(max_messages=1), send, link.later)
    await acks.finished("e1", 4, 1)
    acks.connection_lost()
    await acks.flush()
    assert sent == [4, 4]
    await acks.replied()
    await acks.flush()
    assert sent == [4, 4]


async def test_events_reject_unknown_names() -> None:
    sub = await subscription(FakeLink(), Recorder())
    with pytest.raises(ValueError):
        sub.on("message", lambda e: None)
    await asyncio.sleep(0)


async def test_ended_from_an_error_handler_it_subscribes_no_more() -> None:
    """The application unsubscribes while the library awaits its ``error`` handler: the
    policy's resubscribe must not follow."""
    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app, "restart")
    sub.on("error", lambda _event: sub.unsubscribe())
    await link.reply(error("epoch_mismatch"))
    assert sub.state == "unsubscribed" and len(link.requests()) == 1


async def test_a_failing_position_store_ends_the_subscription_told() -> None:
    class Broken:
        async def get(self, channel: str) -> Position | None:
            raise OSError("disk gone")

        async def set(self, channel: str, position: Position) -> None:
            raise AssertionError("never reached")

    link, app = FakeLink(), Recorder()
    sub = await subscription(link, app, positions=Broken(), from_=None)
    assert sub.state == "unsubscribed" and link.requests() == []
    assert app.codes() == ["positions_failed"] and link.ended_subscriptions == [sub]
