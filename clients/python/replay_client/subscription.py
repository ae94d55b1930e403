"""One channel the application reads, kept across connections.

Theory of operation
-------------------
A ``Subscription`` is driven by its client's single worker task, which feeds it, in arrival
order, the connection's ups and downs, the replies to its requests and the server's events
for its channel. Nothing else touches it, so it needs no locks, and a reply is always seen
before the ``replay:messages`` that follow it on the wire (SUB-13).

The guard (``guard.py``) remembers the epoch and the next offset the application may see; it
is seeded from the position store, so that every subscribe after the first is a resume from
``{epoch, next offset}`` (RES-1). The policy (``policy.py``) decides what happens when the
server says the position cannot be resumed.

=============  ==================================================  ============
state          event                                               next state
=============  ==================================================  ============
subscribing    ok reply, or a fitting ``replay:subscribed`` (§8)   subscribed
subscribing    retryable error reply: retry after a backoff        subscribing
subscribing    unresumable error reply, policy restart / continue  subscribing
subscribing    unresumable with ``fail``, or a fatal error reply   unsubscribed
subscribed     connection lost: resume on the next connection      subscribing
subscribed     gap, or a handler raised: unsubscribe, subscribe    subscribing
subscribed     ``replay:unsubscribed`` that can be resumed         subscribing
subscribed     ``replay:unsubscribed`` ``fail`` / fatal            unsubscribed
any            ``unsubscribe()`` or the client's ``close()``       unsubscribed
=============  ==================================================  ============

While ``subscribing``, ``replay:messages`` are dropped: they belong to a subscription the
library gave up on, and the next one delivers them again from the guard's offset.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from replay_client.acks import AckBatcher, AckOptions
from replay_client.backoff import Backoff
from replay_client.emitter import Emitter, Handler, settle
from replay_client.errors import ReplayClientError, error_from_reply
from replay_client.guard import Guard
from replay_client.policy import Plan, Policy, classify, plan_for
from replay_client.positions import PositionStore
from replay_client.records import (
    ErrorEvent,
    Message,
    MessagesEvent,
    Position,
    State,
    SubscribedEvent,
    Truncation,
    UnsubscribedEvent,
)

__all__ = ["From", "Link", "OnMessages", "Subscription", "SubscriptionStats"]

log = logging.getLogger(__name__)

EVENTS: Final = frozenset({"subscribed", "messages", "unsubscribed", "error"})
From = Literal["beginning", "latest"] | Position | None
OnMessages = Callable[[list[Message], MessagesEvent], object]
Reply = Callable[[Any], Awaitable[None]]


class Link(Protocol):
    """What a subscription needs of its client (the worker's view of the connection)."""

    @property
    def online(self) -> bool: ...

    async def send(self, event: str, payload: dict[str, Any], on_reply: Reply | None) -> bool:
        """Emit on the current connection; False when there is none. ``on_reply`` runs in
        the worker, and never when the connection ends first."""
        ...

    def later(self, delay: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` in the worker after ``delay`` seconds."""
        ...

    def backoff(self) -> Backoff: ...

    def ended(self, subscription: Subscription) -> None: ...


@dataclass
class SubscriptionStats:
    delivered: int = 0  # messages the application finished with
    duplicates: int = 0  # dropped by the guard: at or below the last delivered offset
    gaps: int = 0  # batches that skipped an offset, repaired by subscribing again
    stale: int = 0  # messages of a subscription the library had given up on
    foreign: int = 0  # messages of another epoch than the subscription's
    confirmations: int = 0  # ok replies: the first subscribe and every resume
    cursor: int | None = None  # the server cursor the last ok ack reply reported (ACK-4)


class Subscription:
    """The application's wish to read one channel (see the module docstring)."""

    def __init__(
        self,
        link: Link,
        channel: str,
        *,
        from_: From,
        on_messages: OnMessages | None,
        on_unresumable: Policy,
        ack: AckOptions | None,
        positions: PositionStore,
    ) -> None:
        self.channel = channel
        self.state: State = "subscribing"
        self.stats = SubscriptionStats()
        self._link = link
        self._from = from_
        self._on_messages = on_messages
        self._policy = on_unresumable
        self._positions = positions
        self._events = Emitter(EVENTS)
        self._guard = Guard()
        self._known_epoch: str | None = None
        self._plan: Plan | None = None
        self._attempt = 0  # replies and retries of an older attempt are ignored
        self._started = False
        self._backoff = link.backoff()
        self._acks = AckBatcher(ack, self._send_ack, link.later) if ack is not None else None

    # -- the application's side ---------------------------------------------------------

    def on(self, name: str, handler: Handler) -> None:
        """Listen to ``subscribed``, ``messages``, ``unsubscribed`` or ``error``."""
        self._events.on(name, handler)

    def off(self, name: str, handler: Handler) -> None:
        self._events.off(name, handler)

    # -- driven by the worker -----------------------------------------------------------

    async def start(self) -> None:
        """Read the stored position (unless ``from_`` was given) and subscribe."""
        if self._from is None:
            try:
                self._from = await settle(self._positions.get(self.channel))
            except Exception as exc:  # without its position it cannot start correctly
                log.warning("position store of %s failed", self.channel, exc_info=True)
                await self._report(ReplayClientError("positions_failed", repr(exc)))
                await self._end("positions_failed", repr(exc), announce=True)
                return
        if isinstance(self._from, Position):
            self._guard.start(self._from.epoch, self._from.offset + 1)
            self._known_epoch = self._from.epoch
        self._started = True
        if self._link.online and self.state == "subscribing":
            await self._subscribe()

    async def connected(self) -> None:
        if self.state == "unsubscribed" or not self._started:
            return
        self.state = "subscribing"
        await self._subscribe()
        if self._acks is not None:
            await self._acks.flush()

    def disconnected(self) -> None:
        if self.state != "unsubscribed":
            self.state = "subscribing"
            self._attempt += 1
        if self._acks is not None:
            self._acks.connection_lost()

    async def messages(self, epoch: str, raw: list[Any]) -> None:
        """A ``replay:messages`` batch of this channel."""
        if self.state != "subscribed":
            self.stats.stale += len(raw)
            return
        try:
            batch = [Message.from_wire(m) for m in raw]
        except (KeyError, TypeError, ValueError) as exc:
            await self._report(ReplayClientError("bad_reply", f"replay:messages: {exc!r}"))
            await self._subscribe_again(delay=True)
            return
        verdict = self._guard.judge(epoch, batch)
        self.stats.duplicates += verdict.duplicates
        if verdict.foreign:
            self.stats.foreign += len(raw)
        elif verdict.gap:
            self.stats.gaps += 1
            await self._report(ReplayClientError("gap", f"expected {self._guard.next_offset}"))
            await self._subscribe_again(delay=False)
        elif verdict.fresh:
            await self._deliver(MessagesEvent(self.channel, epoch, verdict.fresh))

    async def server_started(self, data: dict[str, Any]) -> None:
        """``replay:subscribed``: an auto-subscription of the session (§8) started this
        channel. It stands for our own subscribe when it starts where that one would: at the
        guard's next offset, or, reading through the server cursor, wherever the cursor says.
        Otherwise our subscribe fails ``already_subscribed`` and the repair replaces it."""
        guard = self._guard
        if guard.epoch is not None:
            fits = data.get("epoch") == guard.epoch and data.get("from") == guard.next_offset
        else:
            fits = self._from is None and self._acks is not None and self._plan is None
        if self.state == "subscribing" and self._started and fits:
            self._attempt += 1  # our own subscribe's already_subscribed is not news
            await self._replied(self._request(), data | {"ok": True})

    async def server_ended(self, reason: str, message: str | None) -> None:
        """``replay:unsubscribed`` for this channel."""
        if self.state == "unsubscribed":
            return
        await self._tell("unsubscribed", UnsubscribedEvent(self.channel, reason, message))
        if self.state == "subscribed":  # while subscribing it ended one we gave up on
            self.state = "subscribing"
            self._attempt += 1
            await self._after_failure(ReplayClientError(reason, message or ""), announce=False)

    async def unsubscribe(self, reason: str = "client") -> None:
        """End for good: ``replay:unsubscribe`` to the server, ``unsubscribed`` here.

        Safe from a handler and from any other task: every step it takes is one the worker
        tolerates at any of its own awaits (a stale reply or batch is ignored)."""
        if self.state == "unsubscribed":
            return
        await self._link.send("replay:unsubscribe", {"channel": self.channel}, None)
        await self._end(reason, None, announce=True)

    # -- subscribing ----------------------------------------------------------------------

    def _request(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"channel": self.channel}
        plan, guard = self._plan, self._guard
        if plan is not None and plan.start != "position":
            payload["from"] = plan.start
        elif guard.epoch is not None and guard.next_offset is not None:
            payload |= {"from": guard.next_offset, "epoch": guard.epoch}
            if plan is not None and plan.allow_truncation:
                payload["allow_truncation"] = True
        elif self._from in ("beginning", "latest"):
            payload["from"] = self._from
        elif self._acks is None:
            payload["from"] = "beginning"
        # else: no `from`, so the server resumes from the session's cursor (SUB-9)
        return payload

    async def _subscribe(self) -> None:
        if self.state == "unsubscribed":  # ended while a handler of ours was awaited
            return
        self._attempt += 1
        attempt, payload = self._attempt, self._request()

        async def on_reply(reply: Any) -> None:
            if attempt == self._attempt and self.state == "subscribing":
                await self._replied(payload, reply)

        await self._link.send("replay:subscribe", payload, on_reply)

    async def _replied(self, payload: dict[str, Any], reply: Any) -> None:
        if not (isinstance(reply, dict) and reply.get("ok") is True):
            error = error_from_reply(reply)
            await self._report(error)
            await self._after_failure(error, announce=True)
            return
        epoch, from_, head = str(reply["epoch"]), int(reply["from"]), int(reply["head"])
        plan, self._plan = self._plan, None
        raw = reply.get("truncated")
        truncation = (
            Truncation(int(raw["requested"]), int(raw["first_available"]))
            if isinstance(raw, dict)
            else None
        )
        guard = self._guard
        skipped = (
            guard.epoch == epoch and guard.next_offset is not None and from_ > guard.next_offset
        )
        truncated = truncation is not None or skipped or (plan is not None and plan.truncated)
        epoch_changed = (plan is not None and plan.epoch_changed) or (
            self._known_epoch is not None and epoch != self._known_epoch
        )
        recovered = payload.get("epoch") == epoch and payload.get("from") == from_
        guard.start(epoch, from_)
        self._known_epoch = epoch
        self.state = "subscribed"
        self.stats.confirmations += 1
        self._backoff.reset()
        event = SubscribedEvent(
            self.channel, epoch, from_, head, recovered and not truncated, truncated,
            epoch_changed, truncation,
        )  # fmt: skip
        await self._tell("subscribed", event)

    async def _after_failure(self, error: ReplayClientError, *, announce: bool) -> None:
        outcome = classify(error.code)
        if outcome == "retry":
            self._retry_later()
        elif outcome == "repair":
            await self._subscribe_again(delay=False)
        elif outcome == "unresumable" and (plan := plan_for(self._policy, error)) is not None:
            self._plan = plan
            if plan.forget:
                self._guard.forget()
            await self._subscribe()
        else:
            await self._end(error.code, error.message or None, announce=announce)

    async def _subscribe_again(self, *, delay: bool) -> None:
        """Repair: end the server's subscription (EVT-2 orders it before the new one)."""
        if self.state == "unsubscribed":
            return
        self.state = "subscribing"
        self._attempt += 1
        await self._link.send("replay:unsubscribe", {"channel": self.channel}, None)
        if delay:
            self._retry_later()
        else:
            await self._subscribe()

    def _retry_later(self) -> None:
        self._attempt += 1
        attempt = self._attempt

        async def retry() -> None:
            if attempt == self._attempt and self.state == "subscribing" and self._link.online:
                await self._subscribe()

        self._link.later(self._backoff.next_delay(), retry)

    async def _end(self, reason: str, message: str | None, *, announce: bool) -> None:
        self.state = "unsubscribed"
        self._attempt += 1
        self._link.ended(self)
        if announce:
            await self._tell("unsubscribed", UnsubscribedEvent(self.channel, reason, message))

    # -- delivering ----------------------------------------------------------------------

    async def _deliver(self, event: MessagesEvent) -> None:
        try:
            await self._events.emit("messages", event)
            if self._on_messages is not None:
                await settle(self._on_messages(event.messages, event))
        except Exception as exc:
            # Not finished: deliver again, after a backoff, from the last finished offset.
            log.warning("messages handler of %s raised", self.channel, exc_info=True)
            await self._report(ReplayClientError("handler_failed", repr(exc), retryable=True))
            await self._subscribe_again(delay=True)
            return
        last = event.messages[-1].offset
        self._guard.commit(last)
        self.stats.delivered += len(event.messages)
        await settle(self._positions.set(self.channel, Position(event.epoch, last)))
        if self._acks is not None:
            await self._acks.finished(event.epoch, last, len(event.messages))

    async def _send_ack(self, epoch: str, offset: int) -> bool:
        async def on_reply(reply: Any) -> None:
            if isinstance(reply, dict) and reply.get("ok") is True:
                self.stats.cursor = reply.get("cursor")
            else:
                await self._report(error_from_reply(reply))
            if self._acks is not None:
                await self._acks.replied()

        payload = {"channel": self.channel, "offset": offset, "epoch": epoch}
        return await self._link.send("replay:ack", payload, on_reply)

    async def _report(self, error: ReplayClientError) -> None:
        event = ErrorEvent(self.channel, error.code, error.message, error.retryable)
        await self._tell("error", event)

    async def _tell(self, name: str, event: object) -> None:
        """Run the application's handlers; their failure must not stop the library."""
        try:
            await self._events.emit(name, event)
        except Exception:
            log.exception("%s handler of %s raised", name, self.channel)
