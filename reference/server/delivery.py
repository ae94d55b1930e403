"""A subscription's delivery: the loop described in ``reference.core.subscription``.

The loop reads the store at its offset ``next``, lets the core decide, and emits; it holds no
messages between turns. Its only outputs are ``replay:messages`` and, when the server ends it,
one ``replay:unsubscribed``. The loop runs on the subscription's own task while it catches up
or drains a slow socket; once caught up, it parks at the live edge (``reference.server.live``),
whose one task per channel makes the same decisions for every parked subscription at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from reference.core.errors import Unavailable
from reference.core.model import JsonValue, Limits
from reference.core.subscribe_order import Start
from reference.core.subscription import (
    UNSUBSCRIBED_REASONS,
    CaughtUp,
    Decision,
    Deliver,
    End,
    State,
    Trigger,
    advance,
    decide,
)
from reference.server.live import STORE_RETRY_S, LiveEdge
from reference.server.notifier import Notifier
from reference.server.shared_reads import SharedReads
from reference.server.wire import BatchEncoder

log = logging.getLogger(__name__)

# What one send attempt did: sent, found the socket full (FLW-2), or ended the subscription.
_Emitted = Literal["sent", "full", "ended"]


class Outlet(Protocol):
    """Where a subscription's events go: one socket."""

    async def emit(self, event: str, payload: dict[str, JsonValue]) -> None: ...

    async def send_packet(self, packet: str) -> None:
        """Send an already encoded Socket.IO packet (see ``reference.server.wire``)."""
        ...

    def backlogged(self) -> bool:
        """True while the socket's send queue is at or above its high-water mark (FLW-2)."""
        ...

    async def drained(self) -> None:
        """Return once the send queue is below its high-water mark, or the socket is gone."""
        ...


class Subscription:
    """One channel delivered to one socket from a resolved start (spec §6.1, §10)."""

    def __init__(
        self,
        *,
        channel: str,
        start: Start,
        reads: SharedReads,
        notifier: Notifier,
        live: LiveEdge,
        outlet: Outlet,
        limits: Limits,
        max_batch_bytes: int,
        encoder: BatchEncoder,
        may_deliver: Callable[[str], bool],
        on_end: Callable[[Subscription], Awaitable[None]],
    ) -> None:
        self.channel = channel
        self.epoch = start.state.epoch
        self.next = start.offset
        self.state = State.STARTING
        self._reads = reads
        self._notifier = notifier
        self._live = live
        self._outlet = outlet
        self._limits = limits
        self._max_batch_bytes = max_batch_bytes
        self._encoder = encoder
        self._may_deliver = may_deliver
        self._on_end = on_end
        self._task: asyncio.Task[None] | None = None

    def _move(self, trigger: Trigger) -> None:
        self.state = advance(self.state, trigger)

    def _ended(self) -> bool:
        """Read after an await, which may have ended the subscription (a method, so that a
        type checker does not narrow ``state`` across the await)."""
        return self.state is State.ENDED

    def _draining(self) -> bool:
        return self.state is State.DRAINING

    def launch(self) -> None:
        """Start delivering. Call after the ok reply or ``replay:subscribed`` is queued (SUB-13,
        AUT-2): the task's first emit then lands behind it in the socket's send queue."""
        self._move(Trigger.ANNOUNCED)
        self._task = asyncio.create_task(self._run(), name=f"subscription:{self.channel}")

    async def stop(self, trigger: Trigger) -> None:
        """End the subscription from outside its task (unsubscribe, disconnect, revocation).

        Returns only once the task has finished, so nothing of this subscription is emitted
        after the caller's next step (UNS-3, SES-15). A server-decided ``trigger`` is announced
        with ``replay:unsubscribed``.
        """
        if self.state is State.ENDED:
            return
        self._move(trigger)
        self._live.leave(self)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._announce_end(trigger)

    async def _announce_end(self, trigger: Trigger) -> None:
        reason = UNSUBSCRIBED_REASONS.get(trigger)
        if reason is not None:
            payload: dict[str, JsonValue] = {"channel": self.channel, "reason": reason}
            await self._outlet.emit("replay:unsubscribed", payload)
        await self._on_end(self)

    async def _end_from_inside(self, trigger: Trigger) -> None:
        self._move(trigger)
        await self._announce_end(trigger)

    async def fail(self) -> None:
        """End with ``internal`` after an unexpected error (SIG-1: never skip past it)."""
        if not self._ended():
            await self._end_from_inside(Trigger.FAILED)

    async def _run(self) -> None:
        try:
            await self._deliver_forever()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("subscription to %s failed", self.channel)
            await self.fail()

    async def _deliver_forever(self) -> None:
        # An await below can end the subscription from inside this task: a send to a socket
        # that just closed runs its disconnect, which stops this subscription (stop() cannot
        # cancel the task it runs in). So the loop looks at the state after each await.
        while not self._ended():
            if self._draining():  # its socket is full (FLW-2): wait, then read again, since
                await self._outlet.drained()  # retention may have moved meanwhile
                if self._ended():
                    return
                self._move(Trigger.DRAINED)
            seen = self._notifier.version(self.channel)
            try:
                read = await self._reads.read(
                    self.channel, self.next, self._limits.max_batch, version=seen
                )
            except Unavailable:
                log.warning("store unavailable; subscription to %s retries", self.channel)
                await asyncio.sleep(STORE_RETRY_S)
                continue
            if self._ended():
                return
            decision = decide(
                self.next,
                self.epoch,
                read,
                max_count=self._limits.max_batch,
                max_bytes=self._max_batch_bytes,
            )
            if isinstance(decision, End):
                await self._end_from_inside(decision.trigger)
                return
            if isinstance(decision, CaughtUp):
                self._move(Trigger.CAUGHT_UP)
                self._live.park(self)  # the live edge delivers from here on; this task ends
                self._task = None  # and is not kept alive by the subscription it served
                return
            assert isinstance(decision, Deliver)
            if not await self._send(decision):
                return

    async def _send(self, decision: Deliver) -> bool:
        """Emit ``decision``'s batch, or move to DRAINING if the socket is full (FLW-2);
        False once the subscription ended (its grants changed, or the send ended it)."""
        sent = await self._emit(decision, None)
        if sent == "full":
            self._move(Trigger.BACKLOGGED)
        return sent != "ended"

    async def _emit(self, decision: Deliver, packet: str | None) -> _Emitted:
        """Send the batch (``packet``, or encoded here) unless the grants no longer allow it
        (ACC-5: the subscription ends) or the socket is full (FLW-2: nothing is sent)."""
        if not self._may_deliver(self.channel):  # ACC-5: grants changed under us
            await self._end_from_inside(Trigger.REVOKED)
            return "ended"
        if self._outlet.backlogged():
            return "full"
        if packet is None:
            packet = self._encoder.messages_packet(self.channel, self.epoch, decision.batch)
        await self._outlet.send_packet(packet)
        if self._ended():
            return "ended"
        self.next = decision.next_offset
        return "sent"

    async def take_live(self, decision: Decision, packet: str | None) -> bool:
        """The live edge's read, decided for this subscription's position (with the batch's
        encoded packet when it delivers); True while it stays at the edge.

        At the edge a subscription stays WAITING: the edge's read and send are the turn a
        caught-up subscription takes (§7.4), made for all of them at once. It leaves the
        edge through the moves of its own loop: ending, or a full socket it drains on its
        own task (FLW-2).
        """
        if self._ended():
            return False
        if isinstance(decision, End):
            await self._end_from_inside(decision.trigger)
            return False
        if isinstance(decision, CaughtUp):
            return True
        sent = await self._emit(decision, packet)
        if sent == "full":
            self._move(Trigger.HEAD_MOVED)
            self._move(Trigger.BACKLOGGED)
            self._task = asyncio.create_task(self._run(), name=f"subscription:{self.channel}")
        return sent == "sent"
