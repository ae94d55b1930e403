"""A well-behaved python-socketio subscriber that follows channels across server trouble, as the
spec tells a client to: when the server ends a subscription with a reason after which nothing
was skipped (§7.3), it subscribes again from the next offset it has not seen, with that
offset's epoch (§10.4), retrying while the answer is ``unavailable``.

The subscribe's reply is taken in its acknowledgement callback, not by awaiting ``call``: the
callback runs before the handler of the next event (SUB-13 puts the reply first), whereas the
task awaiting ``call`` may resume only after the first ``replay:messages`` were handled.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import socketio

from bench.reliability.fleet import ANSWER_BOUND_S, Backend
from bench.reliability.ledger import Ledger, Stream, Verdict, judge_channel

RESUMABLE = ("unavailable", "internal", "lagging", "truncated")  # §7.3: nothing was skipped
RETRY_PAUSE_S = 0.2


class Resubscriber:
    """One socket subscribed to ``channels`` from the beginning, each judged by a ``Stream``."""

    def __init__(self, name: str, channels: tuple[str, ...]) -> None:
        self.name = name
        self.sio = socketio.AsyncClient(reconnection=False)
        self.streams = {c: Stream(f"{name}/{c}") for c in channels}
        self.reasons: Counter[str] = Counter()  # replay:unsubscribed reasons
        self.unavailable_replies = 0
        self.subscribes = 0
        self.slowest_reply_s = 0.0
        self.anomalies: list[str] = []
        self.ended_at: dict[str, float] = {}  # channel -> when the server ended it
        self.disconnected_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress = asyncio.Event()
        self.sio.on("replay:messages", self._on_messages)
        self.sio.on("replay:unsubscribed", self._on_unsubscribed)
        self.sio.on("disconnect", self._on_disconnect)

    async def join(self, backend: Backend, session_id: str, grants: list[dict[str, Any]]) -> None:
        """Register a session through ``backend``'s node and start on that node."""
        registered = await backend.register(session_id, grants)
        await self.start(backend.base.removesuffix("/replay/v1"), registered.body["token"])

    async def start(self, url: str, token: str) -> None:
        await self.sio.connect(url, auth={"token": token}, transports=["websocket"])
        for channel in self.streams:
            self.follow(channel)

    def follow(self, channel: str) -> None:
        """Subscribe (again) in the background, from where the stream stopped."""
        task = asyncio.create_task(self._subscribe(channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.sio.disconnect()

    async def caught_up(self, heads: dict[str, int], timeout_s: float) -> None:
        """Wait until every stream reached its channel's head; an anomaly if one does not."""
        try:
            async with asyncio.timeout(timeout_s):
                while any(self.streams[c].last < h for c, h in heads.items()):
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            seen = {c: s.last for c, s in self.streams.items()}
            self.anomalies.append(f"{self.name}: stuck at {seen}, heads {heads}")

    def _on_messages(self, event: dict[str, Any]) -> None:
        stream = self.streams.get(event["channel"])
        if stream is not None:
            stream.feed(str(event["epoch"]), [int(m["offset"]) for m in event["messages"]])
            self._progress.set()

    def _on_unsubscribed(self, event: dict[str, Any]) -> None:
        channel, reason = event["channel"], str(event["reason"])
        self.reasons[reason] += 1
        self.ended_at[channel] = time.monotonic()
        if channel in self.streams:
            self.streams[channel].ended()
            if reason in RESUMABLE:
                self.follow(channel)

    def _on_disconnect(self, *_: object) -> None:
        self.disconnected_at = time.monotonic()
        self._progress.set()

    async def subscribed(self) -> bool:
        """Wait until every channel had a subscription, or the socket is gone; whether it is."""
        while self.sio.connected and any(s.epoch is None for s in self.streams.values()):
            self._progress.clear()
            await self._progress.wait()
        return bool(self.sio.connected)

    async def _subscribe(self, channel: str) -> None:
        stream = self.streams[channel]
        while self.sio.connected:
            payload: dict[str, Any] = {"channel": channel, "from": "beginning"}
            if stream.last:
                payload |= {"from": stream.last + 1, "epoch": stream.epoch}
            reply = await self._ask(payload, stream)
            if reply is None or reply.get("ok"):
                return
            code = reply.get("error", {}).get("code")
            if code != "unavailable":
                self.anomalies.append(f"{self.name}: subscribe {payload} answered {reply}")
                return
            self.unavailable_replies += 1
            await asyncio.sleep(RETRY_PAUSE_S)

    async def _ask(self, payload: dict[str, Any], stream: Stream) -> dict[str, Any] | None:
        def on_ok(reply: dict[str, Any]) -> None:
            stream.started(reply)  # before the first replay:messages is handled
            self._progress.set()

        self.subscribes += 1
        return await self.ask("replay:subscribe", payload, on_ok)

    async def ask(
        self, event: str, payload: dict[str, Any], on_ok: Callable[[Any], None] | None = None
    ) -> dict[str, Any] | None:
        """Send a client event; its reply, or None (an anomaly) if none came in the bound."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[dict[str, Any]] = loop.create_future()

        def on_reply(reply: dict[str, Any]) -> None:
            if reply.get("ok") and on_ok is not None:
                on_ok(reply)
            if not answered.done():
                answered.set_result(reply)

        started = time.monotonic()
        await self.sio.emit(event, payload, callback=on_reply)
        try:
            return await asyncio.wait_for(answered, ANSWER_BOUND_S)
        except TimeoutError:
            if self.sio.connected:
                self.anomalies.append(f"{self.name}: no reply to {event} {payload} in "
                                      f"{ANSWER_BOUND_S:.0f} s")  # fmt: skip
            return None
        finally:
            self.slowest_reply_s = max(self.slowest_reply_s, time.monotonic() - started)


async def settle(
    workers: list[asyncio.Task[None]], backend: Backend, channels: tuple[str, ...],
    followers: list[Resubscriber], ledger: Ledger, timeout_s: float,
) -> list[Verdict]:  # fmt: skip
    """Once the attack stopped: wait for the publishers' last retries, read every channel back
    through ``backend``, let every follower catch up with its head, and judge the channels."""
    async with asyncio.timeout(timeout_s):
        await asyncio.gather(*workers)
    histories = {c: await backend.history(c) for c in channels}
    heads = {c: int(h["head"]) for c, h in histories.items()}
    for follower in followers:
        await follower.caught_up(heads, timeout_s)
    return [judge_channel(ledger, c, h) for c, h in histories.items()]
