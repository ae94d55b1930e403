"""The live edge: subscriptions that have caught up, served by one task per channel.

A subscription reads on its own task until it catches up with the head (history, a slow
socket draining, a resume). Then it *parks* here and its task ends. When the channel's head
moves, the channel's one task reads the store once for every parked subscription at the same
offset, and hands each the same decision: the batch's Socket.IO packet is encoded once
(``reference.server.wire``) and sent to every socket in one pass. The live fan-out benchmark
(``bench/fanout.py``) spent a third of the server's time waking one task per subscriber per
publish, each joining the same read and making the same decision.

Nothing changes what a subscription delivers: it is still an offset ``next`` into the store,
moved by exactly one actor at a time (its own task, or this pass while it is parked). A
subscription that cannot take the batch at once (its socket is backlogged, FLW-2) leaves the
edge and drains on its own task, as before; one whose read ends it (SIG-2, SIG-3) or whose
grants no longer allow it (ACC-5) ends here. The handoff from history to live (HND-*) needs no
seam either: parking happens after a read found nothing past ``next``, and a parked
subscription is read for again at once, so a publish that raced the park is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

from reference.core.errors import Unavailable
from reference.core.model import Limits
from reference.core.subscription import Decision, Deliver, decide
from reference.server.notifier import Notifier
from reference.server.shared_reads import SharedReads
from reference.server.wire import BatchEncoder


class Subscription(Protocol):
    """What the edge needs of a subscription (``reference.server.delivery.Subscription``)."""

    channel: str
    epoch: str
    next: int

    async def take_live(self, decision: Decision, packet: str | None) -> bool:
        """Act on the edge's read for this position (``packet``: its batch, encoded, when it
        delivers); True while it stays at the edge."""
        ...

    async def fail(self) -> None:
        """End with ``internal``: the edge could not read for it."""
        ...


log = logging.getLogger(__name__)

STORE_RETRY_S = 0.5  # how long the edge waits before reading again after a store outage

_Position = tuple[str, int]  # epoch, next offset: the subscriptions one read serves


@dataclass
class _Channel:
    """The parked subscriptions of one channel, by position, and the task that serves them.

    A subscription stays in ``parked`` while a pass offers it a batch, and moves to its new
    position only after: so ``parked`` is empty exactly when nobody is left to serve.
    """

    parked: dict[_Position, dict[Subscription, None]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def add(self, subscription: Subscription) -> None:
        position = (subscription.epoch, subscription.next)
        self.parked.setdefault(position, {})[subscription] = None  # a set in join order

    def discard(self, subscription: Subscription, position: _Position) -> None:
        members = self.parked.get(position)
        if members is not None and subscription in members:
            del members[subscription]
            if not members:
                del self.parked[position]


class LiveEdge:
    """Where a node's caught-up subscriptions wait, one serving task per channel."""

    def __init__(
        self,
        reads: SharedReads,
        notifier: Notifier,
        encoder: BatchEncoder,
        limits: Limits,
        max_batch_bytes: int,
    ) -> None:
        self._reads = reads
        self._notifier = notifier
        self._encoder = encoder
        self._limits = limits
        self._max_batch_bytes = max_batch_bytes
        self._channels: dict[str, _Channel] = {}

    def park(self, subscription: Subscription) -> None:
        """Serve ``subscription`` from here on; call when its own read found nothing new."""
        channel = self._channels.get(subscription.channel)
        if channel is None:
            channel = self._channels[subscription.channel] = _Channel()
        channel.add(subscription)
        if channel.task is None:
            name = f"live:{subscription.channel}"
            channel.task = asyncio.create_task(
                self._serve(subscription.channel, channel), name=name
            )
        else:
            # Its read may predate a publish the serving task has already passed: read again.
            self._notifier.wake(subscription.channel)

    def leave(self, subscription: Subscription) -> None:
        """Stop serving ``subscription`` (it ended, or drains on its own task)."""
        channel = self._channels.get(subscription.channel)
        if channel is None:
            return
        channel.discard(subscription, (subscription.epoch, subscription.next))
        if not channel.parked:
            self._close(subscription.channel, channel)

    def parked(self, channel: str) -> int:
        """How many subscriptions of ``channel`` are at the live edge (for tests)."""
        entry = self._channels.get(channel)
        return sum(len(members) for members in entry.parked.values()) if entry else 0

    def _close(self, name: str, channel: _Channel) -> None:
        if self._channels.get(name) is channel:
            del self._channels[name]
        if channel.task is not None and channel.task is not asyncio.current_task():
            channel.task.cancel()  # it waits on the notifier: nobody is left to wake it for

    async def _serve(self, name: str, channel: _Channel) -> None:
        try:
            while channel.parked:
                seen = self._notifier.version(name)
                if not await self._pass(name, channel, seen) and channel.parked:
                    await self._notifier.wait(name, seen)
        finally:
            self._close(name, channel)

    async def _pass(self, name: str, channel: _Channel, seen: int) -> bool:
        """One read per position, its decision offered to each member there; True if more
        may be readable at once (something was sent, or the store failed)."""
        again = False
        for position in list(channel.parked):
            members = list(channel.parked.get(position, ()))
            if not members:
                continue
            epoch, start = position
            try:
                read = await self._reads.read(name, start, self._limits.max_batch, version=seen)
                decision = decide(
                    start,
                    epoch,
                    read,
                    max_count=self._limits.max_batch,
                    max_bytes=self._max_batch_bytes,
                )
            except Unavailable:
                log.warning("store unavailable; live delivery of %s retries", name)
                await asyncio.sleep(STORE_RETRY_S)
                return True
            except Exception:  # a broken store: end them rather than skip anything (SIG-1)
                log.exception("live delivery of %s failed", name)
                decision = None
            packet = None
            if isinstance(decision, Deliver):  # one encoding for every member (OFF-3)
                packet = self._encoder.messages_packet(name, epoch, decision.batch)
                again = True
            for member in members:
                if member not in channel.parked.get(position, ()):
                    continue  # it left while the store was read
                stays = await self._offer(member, decision, packet)
                channel.discard(member, position)
                if stays:
                    channel.add(member)  # at its new position
        return again

    @staticmethod
    async def _offer(member: Subscription, decision: Decision | None, packet: str | None) -> bool:
        """Hand ``member`` the pass's decision (``None``: the read failed); True if it stays."""
        try:
            if decision is not None:
                return await member.take_live(decision, packet)
        except Exception:
            log.exception("live delivery to a subscription of %s failed", member.channel)
        with contextlib.suppress(Exception):
            await member.fail()
        return False
