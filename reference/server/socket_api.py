"""The Socket.IO side: connect authentication, the five client events, auto-subscriptions.

Handlers run with ``async_handlers=False``, so python-socketio awaits each one before reading
the socket's next packet: one socket's events are processed strictly in order (EVT-2), and a
handler's ack is queued before any task it started can emit (SUB-13).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import socketio

from reference.core import grants, payloads, positions, subscribe_order
from reference.core.errors import (
    BadRequest,
    InternalError,
    NotSubscribed,
    ReplayError,
    Unauthorized,
)
from reference.core.event_names import names_client_event
from reference.core.frames import MalformedPacket
from reference.core.model import Action, AutoSubscription, JsonValue
from reference.core.payloads import SubscribeRequest
from reference.core.subscribe_order import Start
from reference.core.subscription import Trigger
from reference.core.tokens import hash_token
from reference.server.delivery import Subscription
from reference.server.node import Connection, ReplayNode
from reference.server.peer_guard import (
    GuardedEngineServer,
    GuardedPacket,
    close_now,
    log_refused,
)
from reference.server.wire import UNDECODABLE_EVENT

log = logging.getLogger(__name__)

SEND_QUEUE_HIGH_WATER = 2  # packets (each at most one batch) queued per socket (FLW-2)
DRAIN_POLL_S = 0.5

Reply = dict[str, JsonValue]
EventHandler = Callable[[Connection, Sequence[object]], Awaitable[Reply]]


# python-socketio's own ValueErrors for a packet in the wrong place; any other propagates.
_OUT_OF_PLACE = frozenset({"Unexpected binary packet"})


class ReplaySocketServer(socketio.AsyncServer):  # type: ignore[misc]  # socketio is untyped
    """python-socketio's server, but an EVENT packet that names no client event reaches no
    handler: it is dropped, with no reply and no effect (EVT-8, EVT-9); and a packet no client
    sends closes the connection with one log line and no traceback (see ``peer_guard``).

    python-socketio dispatches on the packet's first element, so ``42["disconnect"]`` would
    run the disconnect handler for a socket that stays connected, and ``42[5]`` or ``42[]``
    would raise in a handler or in python-socketio itself. ``_handle_event`` is the one place
    every EVENT (and reassembled BINARY_EVENT) packet passes before dispatch; it is private,
    so tests/test_socket_api.py pins this behaviour.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(serializer=GuardedPacket, **options)

    def _engineio_server_class(self) -> type[GuardedEngineServer]:
        return GuardedEngineServer

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        """Decode and dispatch, or close a peer that sent what no client sends.

        Like the official server, a packet for a namespace the socket has not joined, or a
        second CONNECT, closes the connection ("invalid state"); python-socketio would log a
        warning for each, or authenticate the socket again.
        """
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed:
            return  # frames read after we closed the peer
        try:
            if not data and eio_sid not in self._binary_packet:
                raise MalformedPacket("an empty Socket.IO packet")
            await super()._handle_eio_message(eio_sid, data)
        except MalformedPacket as exc:
            await self._refuse(eio_sid, str(exc))
        except ValueError as exc:
            if str(exc) not in _OUT_OF_PLACE:
                raise
            await self._refuse(eio_sid, "a binary packet before CONNECT")

    async def _refuse(self, eio_sid: str, problem: str) -> None:
        self._binary_packet.pop(eio_sid, None)
        log_refused(eio_sid, problem)
        await close_now(self.eio, eio_sid)

    def _joined(self, eio_sid: str, namespace: str | None) -> bool:
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or "/")
        return sid is not None and bool(self.manager.is_connected(sid, namespace or "/"))

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: object) -> None:
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is not None:
            raise MalformedPacket("a second CONNECT")
        await super()._handle_connect(eio_sid, namespace, data)

    async def _handle_ack(
        self, eio_sid: str, namespace: str | None, id: int | None, data: object
    ) -> None:
        # The server asks no client for an ack, so every ACK names an unknown id: ignored, as
        # the official server does (python-socketio would log a warning for each).
        if not self._joined(eio_sid, namespace):
            raise MalformedPacket("an ACK for a namespace it has not joined")

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: int | None, data: object
    ) -> None:
        if not self._joined(eio_sid, namespace):
            raise MalformedPacket("an EVENT for a namespace it has not joined")
        if not names_client_event(data):
            name = data[0] if isinstance(data, list) and data else None
            log.info("dropped an EVENT packet named %.60r (not a client event)", name)
            return
        await super()._handle_event(eio_sid, namespace, id, data)


class SocketOutlet:
    """A subscription's view of its socket: emit, and the send-queue backlog (FLW-2)."""

    def __init__(self, sio: socketio.AsyncServer, sid: str) -> None:
        self._sio = sio
        self._sid = sid
        # A socket's Engine.IO session never changes; looked up once, not on every send.
        self._eio_sid: str | None = sio.manager.eio_sid_from_sid(sid, "/")

    async def emit(self, event: str, payload: dict[str, JsonValue]) -> None:
        await self._sio.emit(event, payload, to=self._sid)

    def _engineio_sid(self) -> str | None:
        if self._eio_sid is None:  # made before python-socketio registered the socket
            self._eio_sid = self._sio.manager.eio_sid_from_sid(self._sid, "/")
        return self._eio_sid

    async def send_packet(self, packet: str) -> None:
        # Straight to Engine.IO: the packet is already a Socket.IO EVENT for this namespace.
        eio_sid = self._engineio_sid()
        if eio_sid is not None:
            await self._sio.eio.send(eio_sid, packet)

    def _queue(self) -> asyncio.Queue[Any] | None:
        # python-socketio has no public send-queue API; Engine.IO's per-socket queue is the
        # only place a backlog is visible. If its shape ever changes we stop throttling
        # (and the flow-control test fails) rather than crash.
        eio_sid = self._engineio_sid()
        socket = self._sio.eio.sockets.get(eio_sid) if eio_sid else None
        queue = getattr(socket, "queue", None)
        return queue if isinstance(queue, asyncio.Queue) else None

    def backlogged(self) -> bool:
        queue = self._queue()
        return queue is not None and queue.qsize() >= SEND_QUEUE_HIGH_WATER

    async def drained(self) -> None:
        while self.backlogged():
            queue = self._queue()
            if queue is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.join(), DRAIN_POLL_S)


class SocketApi:
    """Binds a ``ReplayNode`` to a python-socketio server."""

    def __init__(self, node: ReplayNode, sio: socketio.AsyncServer) -> None:
        self.node = node
        self.sio = sio
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        node.set_disconnector(self._disconnect)
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        events: Mapping[str, EventHandler] = {
            "replay:subscribe": self._subscribe,
            "replay:unsubscribe": self._unsubscribe,
            "replay:ack": self._ack,
            "replay:publish": self._publish,
            "replay:history": self._history,
        }
        for event, handler in events.items():
            sio.on(event, self._replying(handler))
        sio.on("*", self.on_unknown_event)

    # --- connection lifecycle ---------------------------------------------------------------

    async def on_connect(self, sid: str, environ: object, auth: object = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")  # CON-2
        try:
            session = await self.node.store.session_by_token_hash(hash_token(token))
        except ReplayError as exc:
            log.warning("connect refused: %s", exc)
            raise socketio.exceptions.ConnectionRefusedError(exc.code) from None  # CON-3
        if session is None or not session.is_live(self.node.store.clock()):
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")  # CON-2, SES-10
        connection = Connection(
            sid, session.session_id, session.incarnation, session.grants, session.expires_at
        )
        self.node.add_connection(connection)
        self._schedule_expiry(connection)
        if session.subscribe:
            self._spawn(self._auto_subscribe(connection))
        else:
            connection.ready.set()

    async def on_disconnect(self, sid: str, reason: object = None) -> None:
        timer = self._expiry.pop(sid, None)
        if timer is not None:
            timer.cancel()
        await self.node.remove_connection(sid)

    async def _disconnect(self, sid: str) -> None:
        await self.sio.disconnect(sid)

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_expiry(self, connection: Connection) -> None:
        """Disconnect the socket when its session expires (SES-11); a re-registration moves the
        expiry, so the timer re-arms when it fires early (SES-24)."""
        old = self._expiry.pop(connection.sid, None)
        if old is not None:
            old.cancel()
        delay_s = max(0.0, (connection.expires_at - self.node.store.clock()) / 1000)
        self._expiry[connection.sid] = asyncio.get_running_loop().call_later(
            delay_s, self._expire, connection.sid
        )

    def _expire(self, sid: str) -> None:
        connection = self.node.connections.get(sid)
        if connection is None:
            return
        if connection.expires_at > self.node.store.clock():  # re-registered since: re-arm
            self._schedule_expiry(connection)
            return
        log.info("session %s expired; disconnecting %s", connection.session_id, sid)
        self._spawn(self.node.end_subscriptions(connection, Trigger.DISCONNECTED))
        self._spawn(self._disconnect(sid))

    async def _auto_subscribe(self, connection: Connection) -> None:
        """Start the session's auto-subscriptions once the socket is connected (AUT-1 to AUT-9),
        then let the socket's own events through (AUT-8)."""
        try:
            await self._start_auto_subscriptions(connection)
        finally:
            connection.ready.set()

    async def _start_auto_subscriptions(self, connection: Connection) -> None:
        # python-socketio marks the socket connected right after the connect handler returns
        # and the CONNECT packet is queued; events sent before that would be lost (AUT-3).
        while not self.sio.manager.is_connected(connection.sid, "/"):
            if connection.sid not in self.node.connections:
                return
            await asyncio.sleep(0)
        session = await self.node.store.session(connection.session_id)
        if session is None:
            return
        outlet = SocketOutlet(self.sio, connection.sid)
        for entry in session.subscribe:
            async with connection.lock:
                try:
                    start = await self._start_subscription(connection, entry)
                except ReplayError as exc:  # AUT-4: report, keep the connection
                    await outlet.emit(
                        "replay:unsubscribed",
                        {"channel": entry.channel, "reason": exc.code, "message": exc.message},
                    )
                    continue
                await outlet.emit("replay:subscribed", start.to_wire(entry.channel))  # AUT-2
                connection.subscriptions[entry.channel].launch()

    # --- client events ----------------------------------------------------------------------

    def _replying(self, handler: EventHandler) -> Callable[..., Awaitable[Reply]]:
        async def reply(sid: str, *args: object) -> Reply:
            try:
                connection = self.node.connections.get(sid)
                if connection is None:
                    raise Unauthorized("the socket is not authenticated")
                await connection.ready.wait()  # AUT-8: auto-subscriptions come first
                return {"ok": True, **await handler(connection, args)}
            except ReplayError as exc:
                return {"ok": False, "error": exc.to_wire()}
            except Exception:  # ROB-6: report, never drop the socket
                log.exception("handler failed")
                return {"ok": False, "error": InternalError("internal server error").to_wire()}

        return reply

    async def on_unknown_event(self, event: str, sid: str, *args: object) -> Reply | None:
        if event == UNDECODABLE_EVENT:  # ROB-1: valid JSON, but nested too deep to decode
            return {"ok": False, "error": BadRequest("payload nested too deeply").to_wire()}
        if event.startswith("replay:"):  # EVT-4
            return {"ok": False, "error": BadRequest(f"unknown event {event[:60]!r}").to_wire()}
        return None

    async def _current_grants(self, connection: Connection) -> None:
        """Re-read the session so that every operation sees the current grants (ACC-7)."""
        session = await self.node.store.session(connection.session_id)
        # SES-15: a session deleted and registered again under its id is not this socket's.
        if (
            session is None
            or not connection.belongs_to(session)
            or not session.is_live(self.node.store.clock())
        ):
            raise Unauthorized("the session has ended")
        connection.grants = session.grants

    async def _start_subscription(
        self, connection: Connection, request: SubscribeRequest | AutoSubscription
    ) -> Start:
        """SUB-1 from its second check on, then register the subscription (not launch it).

        The store is read between ``subscribe_order``'s two pure steps, so only once the
        checks that need no read have passed.
        """
        admitted = subscribe_order.admit(
            request,
            grants=connection.grants,
            subscribed=connection.subscriptions.keys(),
            max_subscriptions=self.node.limits.max_subscriptions,
        )
        channel = admitted.channel
        state = await self.node.store.state(channel)
        cursor = None
        if admitted.needs_cursor:
            cursor = await self.node.store.cursor(connection.session_id, channel)
        resolved = subscribe_order.resolve(admitted, state=state, cursor=cursor)
        connection.subscriptions[channel] = Subscription(
            channel=channel,
            start=resolved,
            reads=self.node.reads,
            notifier=self.node.notifier,
            live=self.node.live,
            outlet=SocketOutlet(self.sio, connection.sid),
            limits=self.node.limits,
            max_batch_bytes=self.node.max_batch_bytes,
            encoder=self.node.encoder,
            # bound methods rather than closures: smaller, and one per subscription
            may_deliver=connection.may_subscribe,
            on_end=connection.forget,
        )
        return resolved

    async def _subscribe(self, connection: Connection, args: Sequence[object]) -> Reply:
        request = payloads.parse_subscribe(args)  # SUB-1's first check: the payload shape
        await self._current_grants(connection)
        async with connection.lock:  # the auto-subscription task may be registering too
            start = await self._start_subscription(connection, request)
            # The reply is queued when this handler returns, before the task below first runs.
            connection.subscriptions[request.channel].launch()
        return start.to_wire(request.channel)

    async def _unsubscribe(self, connection: Connection, args: Sequence[object]) -> Reply:
        request = payloads.parse_unsubscribe(args)  # UNS-5: no grant needed
        async with connection.lock:
            subscription = connection.subscriptions.get(request.channel)
            if subscription is None:
                raise NotSubscribed(f"not subscribed to {request.channel!r}")  # UNS-2
            await subscription.stop(Trigger.UNSUBSCRIBED)  # returns once nothing more is emitted
        return {}

    async def _ack(self, connection: Connection, args: Sequence[object]) -> Reply:
        request = payloads.parse_ack(args)
        await self._current_grants(connection)
        grants.require(connection.grants, request.channel, Action.SUBSCRIBE)  # ACK-1
        state = await self.node.store.state(request.channel)
        positions.check_ack(request.offset, request.epoch, state)  # ACK-2, ACK-3
        cursor = await self.node.store.advance_cursor(
            connection.session_id, request.channel, state.epoch, request.offset
        )
        return {"epoch": cursor.epoch, "cursor": cursor.offset}  # ACK-9

    async def _publish(self, connection: Connection, args: Sequence[object]) -> Reply:
        request = payloads.parse_publish(args, self.node.limits.max_payload_bytes)
        await self._current_grants(connection)
        grants.require(connection.grants, request.channel, Action.PUBLISH)  # PUB-5
        result = await self.node.publish(request)
        return result.to_wire()

    async def _history(self, connection: Connection, args: Sequence[object]) -> Reply:
        request = payloads.parse_history(args)
        await self._current_grants(connection)
        grants.require(connection.grants, request.channel, Action.HISTORY)  # HIS-3
        return await self.node.history(request)
