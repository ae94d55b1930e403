"""What every cross-node bus shares: the wire form of events, an outbox, and catching up.

Theory of operation
-------------------
A node publishes an event by handing it to its own handler and sending it, tagged with the
node's random id, to the shared medium (Redis pub/sub, a MongoDB collection); every node hands
what it receives to its handler, skipping its own events, which it has already handled.

Events are hints, never data: the store stays the source of truth, and a node's reaction to
any event is to re-read it (wake subscriptions, re-read a session). So an extra event costs a
store read, and the only danger is a *missed* one: a subscription that sleeps although its
channel moved (CLU-2), or a socket that keeps grants that were narrowed or a session that was
deleted (CLU-4). Two mechanisms cover that:

- the outbox: an event that could not be sent is kept (deduplicated, bounded) and resent in
  the background until the medium takes it, so other nodes get it late rather than never;
- catching up: whenever a bus cannot be sure it heard everything (its connection dropped and
  came back, it skipped a gap), it calls the node's ``on_missed`` callback, which wakes every
  local subscription and re-reads every local session (``ReplayNode.resync``). The bus calls
  it only once it is receiving again, so whatever happened before is in the store by then and
  whatever happens after arrives as an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from reference.bus.base import Bus, BusEvent, HeadMoved, SessionChanged, SessionDeleted
from reference.core.errors import Unavailable

log = logging.getLogger(__name__)

Resync = Callable[[], Awaitable[None]]

_KINDS: dict[str, type[HeadMoved] | type[SessionChanged] | type[SessionDeleted]] = {
    "head": HeadMoved,
    "session": SessionChanged,
    "deleted": SessionDeleted,
}


def encode_bus_event(node: str, event: BusEvent) -> dict[str, str]:
    """The wire form of a bus event: ``{"node", "kind", "key"}``."""
    if isinstance(event, HeadMoved):
        return {"node": node, "kind": "head", "key": event.channel}
    kind = "session" if isinstance(event, SessionChanged) else "deleted"
    return {"node": node, "kind": kind, "key": event.session_id}


def decode_bus_event(wire: Any) -> tuple[str, BusEvent] | None:
    """``(node, event)`` from a bus event's wire form, or None for anything else."""
    if not isinstance(wire, dict):
        return None
    node, kind, key = wire.get("node"), wire.get("kind"), wire.get("key")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None or not isinstance(node, str) or not isinstance(key, str):
        return None
    return node, cls(key)


class RemoteBus(Bus):
    """A bus whose events cross processes; subclasses provide ``_send`` and the receiving."""

    #: Events kept for resending while the medium is unreachable; the oldest go first.
    outbox_limit: int = 10_000
    retry_min_s: float = 0.1
    retry_max_s: float = 2.0
    #: Between tries to handle an event that failed: short, since CLU-4 allows 1 s in all.
    redispatch_s: float = 0.25

    def __init__(self) -> None:
        super().__init__()
        self.node_id = secrets.token_hex(8)
        self._on_missed: Resync | None = None
        self._outbox: dict[BusEvent, None] = {}  # an ordered set
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Future[None]] = set()  # events handled again (_received)

    def on_missed(self, callback: Resync) -> None:
        """Set what to run when events may have been missed (``ReplayNode.resync``)."""
        self._on_missed = callback

    @property
    def pending(self) -> int:
        """Events waiting in the outbox."""
        return len(self._outbox)

    async def _send(self, wire: dict[str, str]) -> None:
        """Send one event to every other node; raise if the medium did not take it."""
        raise NotImplementedError

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        self._tasks.append(asyncio.ensure_future(coroutine))
        self._tasks[-1].set_name(name)

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._retries, *([self._flusher] if self._flusher else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._flusher = None

    # --- sending ----------------------------------------------------------------------------

    async def publish(self, event: BusEvent) -> None:
        # Other nodes first: their sockets wait on this as much as ours, and a failing local
        # handler must not keep it from them.
        try:
            await self._send(encode_bus_event(self.node_id, event))
        except Exception as exc:
            log.warning("bus: could not send %s (%s); queued for resending", event, exc)
            self._enqueue(event)
        await self._dispatch(event)

    def _enqueue(self, event: BusEvent) -> None:
        self._outbox.pop(event, None)
        self._outbox[event] = None
        while len(self._outbox) > self.outbox_limit:
            dropped = next(iter(self._outbox))
            del self._outbox[dropped]
            log.error("bus: outbox full; dropped %s", dropped)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        delay = self.retry_min_s
        while self._outbox:
            await asyncio.sleep(delay)
            for event in list(self._outbox):
                try:
                    await self._send(encode_bus_event(self.node_id, event))
                except Exception:
                    delay = min(delay * 2, self.retry_max_s)
                    break
                self._outbox.pop(event, None)
                delay = self.retry_min_s
        log.info("bus: outbox flushed")

    # --- receiving --------------------------------------------------------------------------

    async def _received(self, wire: Any) -> None:
        """Hand one event from the medium to the handler, unless it is ours or malformed."""
        decoded = decode_bus_event(json.loads(wire) if isinstance(wire, str | bytes) else wire)
        if decoded is None:
            log.warning("bus: ignored a malformed event")
            return
        node, event = decoded
        if node == self.node_id:
            return  # handled when it was published
        try:
            await self._dispatch(event)
        except Unavailable as exc:
            # Handling re-reads the store; dropped now, a narrowed grant or a delete would never
            # reach this node's sockets (CLU-4). So it is handled again once the store answers.
            log.warning("bus: handling %s failed (%s); retrying", event, exc)
            retry = asyncio.ensure_future(self._redispatch(event))
            self._retries.add(retry)
            retry.add_done_callback(self._retries.discard)
        except Exception:
            log.exception("bus: handling %s failed", event)

    async def _redispatch(self, event: BusEvent) -> None:
        while True:
            await asyncio.sleep(self.redispatch_s)
            try:
                await self._dispatch(event)
                return
            except Unavailable as exc:
                log.warning("bus: handling %s failed again (%s); retrying", event, exc)

    async def _missed(self) -> None:
        """Catch up after a possible loss of events; retried until the node manages it."""
        if self._on_missed is None:
            return
        delay = self.retry_min_s
        while True:
            try:
                await self._on_missed()
                return
            except Exception as exc:
                log.warning("bus: catching up failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
