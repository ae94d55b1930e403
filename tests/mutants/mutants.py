"""Deliberately broken variants of the reference server, each one small and realistic.

A mutant is a function that monkeypatches the reference before it starts (``serve.py`` runs
it, then the normal CLI). The mutant gate (``tests/test_mutants.py``) runs the conformance
suite against each and checks that it fails for the expected reason: a conformance suite is
only worth the bugs it catches. These live in ``tests/`` on purpose: they must never ship.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from reference.core import grants, subscribe_order
from reference.core.errors import NotFound
from reference.core.model import Cursor, Session
from reference.core.subscribe_order import Start
from reference.core.subscription import CaughtUp, Deliver, End, Trigger, decide
from reference.server import delivery, http_api, node, socket_api
from reference.store import memory
from reference.store.memory import MemoryStore


@dataclass(frozen=True)
class Mutant:
    """A broken variant: what is wrong, and which clauses or anomalies should expose it."""

    name: str
    bug: str
    caught_by: frozenset[str]  # clause IDs and/or anomaly names; any one of them counts
    apply: Callable[[], None]


MUTANTS: dict[str, Mutant] = {}


def mutant(
    name: str, bug: str, *caught_by: str
) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(apply: Callable[[], None]) -> Callable[[], None]:
        MUTANTS[name] = Mutant(name, bug, frozenset(caught_by), apply)
        return apply

    return register


# --- delivery ----------------------------------------------------------------------------------


@mutant(
    "handoff-drop",
    "history is served up to the subscribe's head snapshot, then live delivery starts at the "
    "head as it is when the live listener is set up: publishes that raced the subscribe are lost",
    "HND-1",
    "HND-2",
    "HND-3",
    "SUB-14",
    "ORD-2",
    "lost",
    "gap",
    "CNS-2",
    "RES-1",
    "ORD-1",
)
def handoff_drop() -> None:
    original_init = delivery.Subscription.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._snapshot_head = kwargs["start"].state.head

    async def deliver_forever(self: Any) -> None:
        live = False
        while True:
            if not live and self.next > self._snapshot_head:
                live = True
                # "subscribe to live updates": a listener takes a round trip or two to set
                # up; at 1 ms the scenario gate saw a run with no publish in the window
                await asyncio.sleep(0.01)
                state = await self._reads.store.state(self.channel)
                self.next = max(self.next, state.head + 1)
            seen = self._notifier.version(self.channel)
            read = await self._reads.store.read(self.channel, self.next, self._limits.max_batch)
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
                await self._notifier.wait(self.channel, seen)
                self._move(Trigger.HEAD_MOVED)
                continue
            assert isinstance(decision, Deliver)
            await self._outlet.send_packet(
                self._encoder.messages_packet(self.channel, self.epoch, decision.batch)
            )
            self.next = decision.next_offset

    delivery.Subscription.__init__ = init  # type: ignore[method-assign]
    delivery.Subscription._deliver_forever = deliver_forever  # type: ignore[method-assign]


@mutant(
    "resume-duplicate",
    "a resume (integer from with its epoch) answers from L+1 but delivers from L: the last "
    "message the client already had comes again (inclusive/exclusive off by one)",
    "ORD-1",
    "RES-1",
    "duplicate",
    "ORD-3",
)
def resume_duplicate() -> None:
    resumes: dict[int, Start] = {}  # by identity; Start values are kept alive on purpose
    original_resolve = subscribe_order.resolve_from

    def resolve(start: Any, **kwargs: Any) -> Start:
        resolved = original_resolve(start, **kwargs)
        if isinstance(start, int) and kwargs.get("epoch") is not None:
            resumes[id(resolved)] = resolved
        return resolved

    original_init = delivery.Subscription.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        start = kwargs["start"]
        if resumes.pop(id(start), None) is start and self.next > start.state.lowest:
            self.next -= 1

    subscribe_order.resolve_from = resolve  # type: ignore[assignment]
    delivery.Subscription.__init__ = init  # type: ignore[method-assign]


@mutant(
    "live-reorder",
    "live messages are fanned out per publish, so a batch of racing publishes is emitted in "
    "reverse order",
    "ORD-2",
    "reorder",
    "gap",
    "CNS-2",
    "HND-2",
    "ORD-1",
)
def live_reorder() -> None:
    original = delivery.BatchEncoder.messages_packet

    def messages_packet(self: Any, channel: str, epoch: str, batch: Any) -> str:
        if len(batch) > 1 and batch[-1].ts - batch[0].ts < 50:
            batch = tuple(reversed(batch))
        return original(self, channel, epoch, batch)

    delivery.BatchEncoder.messages_packet = messages_packet  # type: ignore[method-assign]


@mutant(
    "slow-subscriber-drops",
    "a bounded per-socket send queue that drops batches when full, instead of pausing the "
    "subscription: a slow reader silently loses messages",
    "FLW-1",
    "ORD-2",
    "gap",
    "lost",
    "SIG-1",
    "SIG-2",
    "ORD-1",
)
def slow_subscriber_drops() -> None:
    original_send = socket_api.SocketOutlet.send_packet

    async def send_packet(self: Any, packet: str) -> None:
        queue = self._queue()
        if queue is not None and queue.qsize() >= socket_api.SEND_QUEUE_HIGH_WATER:
            return  # "drop when full"
        await original_send(self, packet)

    socket_api.SocketOutlet.send_packet = send_packet  # type: ignore[method-assign]
    socket_api.SocketOutlet.backlogged = lambda self: False  # type: ignore[method-assign]


@mutant(
    "delivers-after-unsubscribe",
    "unsubscribe answers at once and tears the subscription down in the background, so "
    "messages keep flowing for a moment after the reply",
    "UNS-3",
    "UNS-4",
    "SUB-3",
    "SES-16",
)
def delivers_after_unsubscribe() -> None:
    original = socket_api.SocketApi._unsubscribe
    pending: set[asyncio.Future[None]] = set()

    async def unsubscribe(self: Any, connection: Any, args: Any) -> Any:
        channel = args[0].get("channel") if args and isinstance(args[0], dict) else None
        subscription = connection.subscriptions.get(channel)
        if subscription is None:
            return await original(self, connection, args)

        def tear_down() -> None:
            task = asyncio.ensure_future(subscription.stop(Trigger.UNSUBSCRIBED))
            pending.add(task)
            task.add_done_callback(pending.discard)

        asyncio.get_running_loop().call_later(0.2, tear_down)
        return {}

    socket_api.SocketApi._unsubscribe = unsubscribe  # type: ignore[method-assign]


# --- positions and cursors ---------------------------------------------------------------------


@mutant(
    "stale-epoch-accepted",
    "the epoch of an integer from is not compared: a client resuming with an epoch the server "
    "no longer has gets a stream from another life of the channel",
    "SUB-4",
    "SIG-4",
    "SUB-1",
    "AUT-7",
    "HIS-10",
    "ACK-2",
)
def stale_epoch_accepted() -> None:
    original = subscribe_order.resolve_from

    def resolve(start: Any, **kwargs: Any) -> Start:
        # Whatever epoch came with the offset, resolve it as if it were the current one.
        return original(start, **{**kwargs, "epoch": kwargs["state"].epoch})

    subscribe_order.resolve_from = resolve  # type: ignore[assignment]


@mutant(
    "truncation-silent",
    "a start below the retained history silently moves to the first retained offset, without "
    "history_truncated and without 'truncated' in the reply",
    "SUB-6",
    "SUB-11",
    "SIG-1",
    "unsignalled-loss",
    "RET-12",
    "SUB-1",
    "AUT-4",
    "AUT-2",
)
def truncation_silent() -> None:
    original = subscribe_order.resolve_from

    def resolve(start: Any, **kwargs: Any) -> Start:
        resolved = original(start, **{**kwargs, "allow_truncation": True})
        return Start(resolved.state, resolved.offset)  # and say nothing about it

    subscribe_order.resolve_from = resolve  # type: ignore[assignment]


@mutant(
    "cursor-redelivers",
    "the stored cursor is read back as the next offset to deliver minus one (inclusive vs "
    "exclusive): a resume through the cursor redelivers the last acknowledged message",
    "CUR-1",
    "SUB-9",
    "AUT-1",
    "ACK-4",
    "ACK-6",
    "CUR-2",
    "CON-5",
    "SES-12",
)
def cursor_redelivers() -> None:
    original = MemoryStore.cursor

    async def cursor(self: MemoryStore, session_id: str, channel: str) -> Cursor | None:
        found = await original(self, session_id, channel)
        if found is None or found.offset <= 1:
            return found
        return Cursor(found.epoch, found.offset - 1)

    MemoryStore.cursor = cursor  # type: ignore[method-assign]


# --- access ------------------------------------------------------------------------------------


@mutant(
    "prefix-grant-leak",
    "a prefix grant is compared without its trailing separator, so 'room:*' also covers "
    "'room' and 'roommates'",
    "ACC-2",
    "leak",
    "ACC-5",
    "ACC-4",
)
def prefix_grant_leak() -> None:
    def pattern_matches(pattern: str, channel: str) -> bool:
        if pattern == "*":
            return True
        if pattern.endswith("*"):
            return channel.startswith(pattern[:-1].rstrip(":/.@-_"))
        return pattern == channel

    grants.pattern_matches = pattern_matches


@mutant(
    "expired-token-accepted",
    "a session's expiry is never compared with the clock: expired tokens still connect",
    "SES-10",
    "CON-2",
    "SES-11",
)
def expired_token_accepted() -> None:
    Session.is_live = lambda self, now_ms: True  # type: ignore[method-assign]


@mutant(
    "revocation-keeps-socket",
    "deleting a session removes it from the store but leaves its connected sockets alone, "
    "still receiving",
    "SES-15",
    "leak",
    "ACC-5",
    "CLU-4",
)
def revocation_keeps_socket() -> None:
    async def drop_session(self: Any, session_id: str) -> None:
        return None

    node.ReplayNode._drop_session = drop_session  # type: ignore[method-assign]


# --- retention -----------------------------------------------------------------------------------


@mutant(
    "retention-refused",
    "a retention update is refused although the feature is advertised, with an error object in "
    "an HTTP 200 answer: no limit is ever set, and every retention case stops at its setup",
    "RET-1",
)
def retention_refused() -> None:
    async def set_retention(request: web.Request) -> web.Response:
        http_api._authorize(request)
        error = {"code": "bad_request", "message": "retention is not enabled"}
        return web.json_response({"ok": False, "error": error})

    http_api.set_retention = set_retention


# --- publishing and robustness ----------------------------------------------------------------


@mutant(
    "idempotent-stored-twice",
    "idempotency keys are written under one key and looked up under another, so the lookup "
    "never finds them: a repeated id stores a second message",
    "IDM-6",
    "IDM-7",
    "IDM-2",
    "IDM-4",
    "IDM-5",
    "duplicated-publish",
    "PUB-4",
    "FEA-1",
)
def idempotent_stored_twice() -> None:
    original = MemoryStore.append

    async def append(self: MemoryStore, channel: str, payload: Any, message_id: str | None) -> Any:
        if message_id is not None:
            self._channel(channel).ids.pop(message_id, None)
        return await original(self, channel, payload, message_id)

    MemoryStore.append = append  # type: ignore[method-assign]


@mutant(
    "malformed-closes-socket",
    'a payload that fails validation makes the server drop the connection ("protocol error") '
    "instead of answering bad_request",
    "ROB-1",
    "ROB-2",
    "EVT-1",
    "EVT-3",
    "TRN-3",
    "TRN-5",
    "CHN-1",
)
def malformed_closes_socket() -> None:
    original = socket_api.SocketApi._replying

    def replying(self: Any, handler: Any) -> Any:
        wrapped = original(self, handler)

        async def reply(sid: str, *args: object) -> Any:
            answer = await wrapped(sid, *args)
            if answer.get("ok") is False and answer["error"]["code"] == "bad_request":
                await self.sio.disconnect(sid)
                return None
            return answer

        return reply

    socket_api.SocketApi._replying = replying  # type: ignore[method-assign]


@mutant(
    "silent-memory-cap",
    "retention is not advertised (its route answers 404), yet the memory store keeps only the "
    "1000 newest messages of each channel, an operator's memory cap, and trims past it",
    "LIF-3",
    "LIF-1",
    "SIG-1",
    "SUB-14",
    "DUR-1",
    "HIS-4",
    "SUB-1",  # a step subscribing from 1 refused history_truncated: trimmed without retention
)
def silent_memory_cap() -> None:
    node.OPTIONAL_FEATURES = tuple(f for f in node.OPTIONAL_FEATURES if f != "retention")

    async def no_retention_route(request: Any) -> Any:
        raise NotFound("no such route")  # API-6: the unadvertised feature's route

    http_api.set_retention = no_retention_route
    original = memory._Channel.expire_count

    def capped(self: Any) -> None:
        original(self)
        self.drop_before(self.head - 1000 + 1)

    memory._Channel.expire_count = capped  # type: ignore[method-assign]
