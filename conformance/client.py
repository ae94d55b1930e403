"""A Socket.IO client of a target that records everything it sees and checks it on the fly.

:class:`ReplayClient` wraps ``socketio.AsyncClient`` (WebSocket only, no reconnection). Every
operation is logged as invoked (``send``) and then completed (``reply``: ok, failed, or
indeterminate when the connection died first); every server event is logged when it arrives.
Handlers and ack callbacks are plain functions that record on their first line: python-socketio
dispatches each incoming packet in its own task, in arrival order, so recording before any
``await`` keeps the log in the order the packets arrived (SUB-13 depends on it).

While recording, the client checks what needs no case-specific knowledge: every payload
against its schema, and (through its :class:`~conformance.streams.StreamBook`) every
subscription's stream (first offset = ``from``, then +1, one epoch, at most ``max_batch`` per
event, nothing outside a subscription). A problem is recorded as a violation and fails the
case when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import socketio
from socketio import packet

from conformance import schemas
from conformance.findings import (
    ConnectFailed,
    ConnectionLost,
    ConnectRefused,
    NoReply,
    SuiteError,
    fail,
    ranges,
)
from conformance.streams import Stream, StreamBook, Subscription

if TYPE_CHECKING:
    from collections.abc import Callable

    from conformance.backend import Session
    from conformance.findings import EventLog

__all__ = ["REPLY_TIMEOUT_S", "ReplayClient", "Stream", "Subscription"]

REPLY_TIMEOUT_S: Final = 10.0
WAIT_TIMEOUT_S: Final = 5.0
# Which schema, and which clause defining it, each server event's payload is checked against.
_EVENT_SCHEMAS: Final = {
    "replay:messages": ("messages-event", "DLV-1"),
    "replay:subscribed": ("subscribed-event", "AUT-2"),
    "replay:unsubscribed": ("unsubscribed-event", "UNS-6"),
}
_MESSAGE_PROBLEM = re.compile(r"^messages/\d+")


@dataclass(eq=False)
class _Pending:
    op: int
    event: str
    channel: str | None
    future: asyncio.Future[tuple[object, ...]]


class _SocketIO(socketio.AsyncClient):  # type: ignore[misc]
    """python-socketio's client, able to send a CONNECT without any auth payload (CON-2)."""

    omit_auth = False

    async def _handle_eio_connect(self) -> None:
        if not self.omit_auth:
            await super()._handle_eio_connect()
            return
        # The stock client always sends an object (``auth or {}``): replicate it without one.
        self.sid = self.eio.sid
        for namespace in self.connection_namespaces:
            await self._send_packet(self.packet_class(packet.CONNECT, namespace=namespace))


class ReplayClient:
    """One Socket.IO connection to a target node (or to a fault proxy in front of it)."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        log: EventLog,
        session: Session | None = None,
        max_batch: int | None = None,
        timeout: float = REPLY_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.name = name
        self.log = log
        self.session = session
        self.timeout = timeout
        self._book = StreamBook(self._violation, max_batch)
        self.streams: dict[str, Stream] = self._book.streams
        self.events: list[tuple[str, Any]] = []  # every server event, in arrival order
        self.disconnects: list[str] = []  # reasons, in order
        self.connected = False
        self._pending: dict[int, _Pending] = {}
        self._subscribing: Counter[str] = Counter()
        self._connect_op: int | None = None
        self._connect_error: tuple[object, ...] | None = None
        self._changed = asyncio.Event()
        # A factory, not a shared session: engine.io closes its session when the connection
        # ends (and in __del__), so each connection gets its own. No cookie jar, so that a
        # cookie (a sticky-session cookie, say) never leaks from one client to another.
        self._http_sessions: list[aiohttp.ClientSession] = []
        self._sio = _SocketIO(
            reconnection=False, handle_sigint=False, http_session=self._new_http_session
        )
        self._sio.on("connect", self._on_connect)
        self._sio.on("connect_error", self._on_connect_error)
        self._sio.on("disconnect", self._on_disconnect)
        self._sio.on("replay:messages", self._on_messages)
        self._sio.on("replay:subscribed", self._on_subscribed)
        self._sio.on("replay:unsubscribed", self._on_unsubscribed)
        self._sio.on("*", self._on_other)

    def __repr__(self) -> str:
        return f"<ReplayClient {self.name} {self.url} connected={self.connected}>"

    @property
    def max_batch(self) -> int | None:
        """The target's ``limits.max_batch``: no ``replay:messages`` may carry more (DLV-2)."""
        return self._book.max_batch

    @max_batch.setter
    def max_batch(self, value: int | None) -> None:
        self._book.max_batch = value

    # --- connection --------------------------------------------------------------------------

    async def connect(self, token: str | None = None, *, timeout: float | None = None) -> None:
        """Connect with ``{"token": token}`` (default: the client's session token).

        Raises :class:`ConnectRefused` on CONNECT_ERROR, :class:`ConnectFailed` when the
        connection fails below Socket.IO.
        """
        token = token or (self.session.token if self.session else None)
        if token is None:
            raise SuiteError(f"{self.name}: no token to connect with (no session)")
        await self.connect_raw({"token": token}, timeout=timeout)

    async def connect_raw(self, auth: object, *, timeout: float | None = None) -> None:
        """Connect with ``auth`` as the CONNECT payload (``None``: no payload at all)."""
        if self.connected:
            raise SuiteError(f"{self.name} is already connected")
        await self._close_http_sessions(keep_current=False)  # the previous connection's
        self._sio.eio.http = None
        self._sio.omit_auth = auth is None
        self._connect_error = None
        self._connect_op = self.log.invoke(self.name, "connect", channel=None, payload=auth)
        try:
            await self._sio.connect(
                self.url,
                auth=auth,
                transports=["websocket"],
                namespaces=["/"],
                wait_timeout=timeout or self.timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            if "/" in self._sio.failed_namespaces:
                error_args = self._last_connect_error()
                data = error_args[0] if len(error_args) == 1 else list(error_args)
                self._check("connect-error", "CON-2", data, "CONNECT_ERROR")
                raise ConnectRefused(data) from None
            await self._sio.disconnect()  # release the transport of a half-open attempt
            raise ConnectFailed(f"{self.name} could not connect to {self.url}: {exc}") from exc

    def _new_http_session(self) -> aiohttp.ClientSession:
        # engine.io leaves a factory-made session open when a connection dies (it treats it
        # as the caller's), so the client keeps them and closes those of ended connections.
        session = _new_http_session()
        self._http_sessions.append(session)
        return session

    async def _close_http_sessions(self, keep_current: bool) -> None:
        current = self._sio.eio.http if keep_current else None
        for session in self._http_sessions:
            if session is not current and not session.closed:
                await session.close()
        self._http_sessions = [s for s in self._http_sessions if not s.closed]

    def _last_connect_error(self) -> tuple[object, ...]:
        # A method, not an attribute read, because the handler sets it behind mypy's back.
        return self._connect_error or ()

    async def disconnect(self) -> None:
        """Disconnect cleanly (a Socket.IO DISCONNECT, then the transport closes)."""
        await self._sio.disconnect()
        self.connected = False

    async def close(self) -> None:
        """Disconnect if needed and release the transport; never raises."""
        # Clean-up must not mask the case's outcome.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._sio.disconnect()
        with contextlib.suppress(Exception):
            await self._close_http_sessions(keep_current=False)
        self.connected = False

    @property
    def sid(self) -> str | None:
        """The Socket.IO session id of the current connection."""
        sid: str | None = self._sio.get_sid("/")
        return sid

    # --- client events -----------------------------------------------------------------------

    async def request(
        self, event: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Emit ``event`` with one object and return its reply (a dict, as EVT-1 requires)."""
        reply = await self.emit_raw(event, payload, timeout=timeout)
        return reply if isinstance(reply, dict) else {"ok": None, "invalid_reply": reply}

    async def subscribe(
        self,
        channel: str,
        from_: int | str | None = None,
        *,
        epoch: str | None = None,
        allow_truncation: bool | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``replay:subscribe``; ``None`` arguments are omitted from the payload."""
        fields = {"from": from_, "epoch": epoch, "allow_truncation": allow_truncation}
        payload = _compact(channel=channel, **fields)
        return await self.request("replay:subscribe", payload, timeout=timeout)

    async def unsubscribe(self, channel: str, *, timeout: float | None = None) -> dict[str, Any]:
        """``replay:unsubscribe``."""
        return await self.request("replay:unsubscribe", {"channel": channel}, timeout=timeout)

    async def ack(
        self, channel: str, offset: int, *, epoch: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """``replay:ack`` (feature ``cursors``)."""
        payload = _compact(channel=channel, offset=offset, epoch=epoch)
        return await self.request("replay:ack", payload, timeout=timeout)

    async def publish(
        self, channel: str, data: object, *, id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """``replay:publish`` (feature ``client-publish``); ``data`` is sent even if None."""
        payload = {"channel": channel, "data": data, **_compact(id=id)}
        return await self.request("replay:publish", payload, timeout=timeout)

    async def history(
        self,
        channel: str,
        from_: int | str | None = None,
        *,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``replay:history`` (feature ``history``)."""
        payload = _compact(channel=channel, limit=limit, **{"from": from_})
        return await self.request("replay:history", payload, timeout=timeout)

    async def emit_raw(self, event: str, *args: object, timeout: float | None = None) -> Any:
        """Emit ``event`` with exactly ``args`` and an ack callback; return the ack.

        The ack is its single argument, or the list of its arguments when there are not
        exactly one. Raises :class:`NoReply` (EVT-1) when none arrives within the timeout,
        :class:`ConnectionLost` when the socket disconnects first.
        """
        channel = _channel_of(args[0]) if len(args) == 1 else None
        shown: object = args[0] if len(args) == 1 else list(args)
        op = self.log.invoke(self.name, event, channel=channel, payload=shown)
        if not self.connected:
            self._complete(op, event, channel, "indeterminate", None)
            raise ConnectionLost(f"{self.name} is not connected; {event} not sent")
        pending = _Pending(op, event, channel, asyncio.get_running_loop().create_future())
        self._pending[op] = pending
        if event == "replay:subscribe" and channel is not None:
            self._subscribing[channel] += 1
        await self._sio.emit(
            event, _emit_data(args), callback=lambda *reply: self._on_reply(pending, reply)
        )
        limit = timeout or self.timeout
        try:
            async with asyncio.timeout(limit):
                reply = await asyncio.shield(pending.future)
        except TimeoutError:
            self._drop(pending, "indeterminate")
            raise NoReply(
                "EVT-1",
                f"exactly one reply to {event} within {limit:g} s",
                "no reply",
                self.log.tail(channel, self.name),
            ) from None
        return reply[0] if len(reply) == 1 else list(reply)

    async def emit_no_ack(self, event: str, *args: object) -> None:
        """Emit ``event`` with ``args`` and no ack callback (nothing to wait for)."""
        self.log.invoke(self.name, event, channel=None, payload=list(args))
        await self._sio.emit(event, _emit_data(args))

    # --- reading what arrived ------------------------------------------------------------------

    def stream(self, channel: str) -> Stream:
        """The :class:`Stream` of ``channel`` (empty if nothing arrived yet)."""
        return self._book.stream(channel)

    def subscription(self, channel: str) -> Subscription | None:
        """The live subscription to ``channel``, as far as the client knows."""
        return self.stream(channel).current

    def offsets(self, channel: str) -> list[int]:
        """Offsets of every message received on ``channel``, in arrival order."""
        return self.stream(channel).offsets

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message received on ``channel``, in arrival order."""
        return list(self.stream(channel).received)

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        what: str,
        *,
        timeout: float = WAIT_TIMEOUT_S,
        clause: str | None = None,
        channel: str | None = None,
        received: Callable[[], str] | None = None,
        connected: bool = True,
    ) -> None:
        """Wait until ``predicate()`` holds; fail the case (citing ``clause``) on timeout.

        With ``connected`` (the default) the wait also ends, failing, when the client is
        disconnected: nothing more can arrive then.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate() and (remaining := deadline - loop.time()) > 0:
            if connected and not self.connected:
                break
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()
        if not predicate():
            got = received() if received else "nothing matching"
            if connected and not self.connected:
                got += f" (then {self.name} was disconnected: {self._last_disconnect()})"
            fail(clause, f"{what} within {timeout:g} s", got, channel=channel, actor=self.name)

    def _last_disconnect(self) -> str:
        return self.disconnects[-1] if self.disconnects else "never connected"

    async def wait_for_offset(
        self,
        channel: str,
        offset: int,
        *,
        timeout: float = WAIT_TIMEOUT_S,
        clause: str | None = None,
    ) -> None:
        """Wait until a message with offset ``offset`` (or above) arrived on ``channel``."""
        await self.wait_until(
            lambda: any(o >= offset for o in self.offsets(channel)),
            f"offset {offset} delivered on {channel} to {self.name}",
            timeout=timeout,
            clause=clause,
            channel=channel,
            received=lambda: f"offsets [{ranges(self.offsets(channel))}]",
        )

    async def wait_for_event(
        self,
        name: str,
        predicate: Callable[[Any], bool] | None = None,
        *,
        timeout: float = WAIT_TIMEOUT_S,
        clause: str | None = None,
        since: int = 0,
    ) -> Any:
        """The payload of the first server event ``name`` (from index ``since`` of
        :attr:`events`) that satisfies ``predicate``, waiting for it if needed."""

        def find() -> Any:
            for event, payload in self.events[since:]:
                if event == name and (predicate is None or predicate(payload)):
                    return payload
            return None

        await self.wait_until(
            lambda: find() is not None,
            f"a {name} event",
            timeout=timeout,
            clause=clause,
            received=lambda: f"events {[e for e, _ in self.events]}",
        )
        return find()

    async def wait_disconnected(
        self, *, timeout: float = WAIT_TIMEOUT_S, clause: str | None = None
    ) -> str:
        """Wait until the connection ends; returns the reason python-socketio gave."""
        await self.wait_until(
            lambda: not self.connected,
            f"{self.name} disconnected",
            timeout=timeout,
            clause=clause,
            received=lambda: "still connected",
            connected=False,
        )
        return self._last_disconnect()

    # --- recording (plain functions: see the module docstring) ---------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _complete(
        self, op: int, event: str, channel: str | None, outcome: str, payload: object
    ) -> None:
        self.log.record(
            self.name, "reply", event, channel=channel, op=op, outcome=outcome, payload=payload
        )

    def _drop(self, pending: _Pending, outcome: str) -> None:
        if self._pending.pop(pending.op, None) is None:
            return
        self._complete(pending.op, pending.event, pending.channel, outcome, None)
        if pending.event == "replay:subscribe" and pending.channel is not None:
            self._subscribing[pending.channel] -= 1

    def _on_reply(self, pending: _Pending, args: tuple[object, ...]) -> None:
        reply = args[0] if len(args) == 1 else list(args)
        ok = isinstance(reply, dict) and reply.get("ok") is True
        self._complete(pending.op, pending.event, pending.channel, "ok" if ok else "failed", reply)
        still_pending = self._pending.pop(pending.op, None) is not None
        if still_pending and pending.event == "replay:subscribe" and pending.channel is not None:
            self._subscribing[pending.channel] -= 1
        if len(args) != 1:
            self._violation(
                "EVT-1", f"one reply argument to {pending.event}", f"{len(args)}", pending.channel
            )
        else:
            problems = schemas.validate_reply(pending.event, reply)
            if problems:
                self._violation(
                    "EVT-1",
                    f"a valid reply to {pending.event}",
                    "; ".join(problems),
                    pending.channel,
                )
        if ok and isinstance(reply, dict) and pending.channel is not None:
            if pending.event == "replay:subscribe":
                self._book.open(pending.channel, reply, "reply")
            elif pending.event == "replay:unsubscribe":
                self._end(pending.channel, "unsubscribe")
        if not pending.future.done():
            pending.future.set_result(args)
        self._notify()

    def _on_connect(self) -> None:
        self.log.record(self.name, "connect", "connect", op=self._connect_op, outcome="ok")
        self.connected = True
        self._notify()

    def _on_connect_error(self, *args: object) -> None:
        payload = args[0] if len(args) == 1 else list(args)
        self.log.record(
            self.name,
            "connect_error",
            "connect",
            op=self._connect_op,
            outcome="failed",
            payload=payload,
        )
        self._connect_error = args
        self._notify()

    def _on_disconnect(self, reason: object = None) -> None:
        self.log.record(self.name, "disconnect", "disconnect", payload=str(reason))
        self.connected = False
        self.disconnects.append(str(reason))
        self._book.end_all("disconnect")
        for pending in list(self._pending.values()):
            self._drop(pending, "indeterminate")
            if not pending.future.done():
                pending.future.set_exception(
                    ConnectionLost(
                        f"{self.name} disconnected ({reason}) before {pending.event}'s reply"
                    )
                )
        self._notify()

    def _on_messages(self, *args: object) -> None:
        payload = self._event("replay:messages", args)
        if not isinstance(payload, dict) or not isinstance(payload.get("channel"), str):
            return
        messages = payload.get("messages")
        if not isinstance(messages, list):
            return
        channel: str = payload["channel"]
        self._book.receive(
            channel,
            payload.get("epoch"),
            messages,
            subscribing=self._subscribing[channel] > 0,
            connected=self.connected,
        )
        self._notify()

    def _on_subscribed(self, *args: object) -> None:
        payload = self._event("replay:subscribed", args)
        if isinstance(payload, dict) and isinstance(payload.get("channel"), str):
            self._book.open(payload["channel"], payload, "auto")
        self._notify()

    def _on_unsubscribed(self, *args: object) -> None:
        payload = self._event("replay:unsubscribed", args)
        if isinstance(payload, dict) and isinstance(payload.get("channel"), str):
            self.stream(payload["channel"]).unsubscribed.append(payload)
            self._end(payload["channel"], f"unsubscribed:{payload.get('reason')}")
        self._notify()

    def _on_other(self, event: str, *args: object) -> None:
        self._event(event, args)
        self._notify()

    def _event(self, event: str, args: tuple[object, ...]) -> object:
        """Log a server event, validate its payload; return the payload."""
        payload = args[0] if len(args) == 1 else list(args)
        self.log.record(self.name, "event", event, channel=_channel_of(payload), payload=payload)
        self.events.append((event, payload))
        if event in _EVENT_SCHEMAS:
            schema, clause = _EVENT_SCHEMAS[event]
            if len(args) != 1:
                self._violation(clause, f"one object argument in {event}", f"{len(args)}", None)
            problems = schemas.validate(schema, payload)
            if problems:
                if schema == "messages-event" and all(_MESSAGE_PROBLEM.match(p) for p in problems):
                    clause = "MSG-1"
                self._violation(
                    clause, f"a valid {event} payload", "; ".join(problems), _channel_of(payload)
                )
        return payload

    def _check(self, schema: str, clause: str, payload: object, what: str) -> None:
        problems = schemas.validate(schema, payload)
        if problems:
            self._violation(clause, f"a valid {what} payload", "; ".join(problems), None)

    def _violation(self, clause: str, expected: str, received: str, channel: str | None) -> None:
        self.log.violation(clause, expected, received, channel=channel, actor=self.name)

    def _end(self, channel: str, why: str) -> None:
        """End the live subscription to ``channel`` (see :mod:`conformance.streams`)."""
        self._book.end(channel, why)


def _compact(**fields: object) -> dict[str, Any]:
    """The fields that are not None (an omitted member, not a JSON null)."""
    return {key: value for key, value in fields.items() if value is not None}


def _new_http_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


def _emit_data(args: tuple[object, ...]) -> object:
    """What to hand python-socketio's ``emit`` so that exactly ``args`` are sent."""
    if not args:
        return None
    if len(args) > 1:
        return args  # a tuple is spread into several arguments
    # A lone tuple would be spread too: send it as the one JSON array it stands for.
    return list(args[0]) if isinstance(args[0], tuple) else args[0]


def _channel_of(payload: object) -> str | None:
    channel = payload.get("channel") if isinstance(payload, dict) else None
    return channel if isinstance(channel, str) else None
