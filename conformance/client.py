"""A Socket.IO client of a target, for cases to drive: connect, emit, read, wait.

:class:`ReplayClient` wraps ``socketio.AsyncClient`` (WebSocket only, no reconnection). Every
operation is logged as invoked (``send``) and then completed (``reply``: ok, failed, or
indeterminate when the connection died first); what arrives is logged and checked on the fly
by the client's :class:`~conformance.recorder.Recorder`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import socketio

from conformance.errors import ConnectFailed, ConnectionLost, ConnectRefused, NoReply, SuiteError
from conformance.eventlog import KNOWN, KnownEpoch
from conformance.expectations import fail
from conformance.protocol import Reply, channel_of
from conformance.recorder import Recorder
from conformance.sio import SocketIOClient, emit_data, new_http_session
from conformance.text import ranges

if TYPE_CHECKING:
    from collections.abc import Callable

    from conformance.backend import Registration
    from conformance.eventlog import EventLog
    from conformance.spans import Span
    from conformance.streams import Stream

__all__ = ["REPLY_TIMEOUT_S", "ReplayClient"]

REPLY_TIMEOUT_S: Final = 10.0
WAIT_TIMEOUT_S: Final = 5.0


class ReplayClient:
    """One Socket.IO connection to a target node (or to a fault proxy in front of it)."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        log: EventLog,
        session: Registration | None = None,
        max_batch: int | None = None,
        timeout: float = REPLY_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.name = name
        self.log = log
        self.session = session
        self.timeout = timeout
        self.recorder = Recorder(name, log, max_batch)
        self.streams: dict[str, Stream] = self.recorder.book.streams
        self.events = self.recorder.events  # every server event, in arrival order
        self.disconnects = self.recorder.disconnects  # reasons, in order
        # A factory, not a shared session: engine.io closes its session when the connection
        # ends (and in __del__), so each connection gets its own. No cookie jar, so that a
        # cookie (a sticky-session cookie, say) never leaks from one client to another.
        self._http_sessions: list[aiohttp.ClientSession] = []
        self._sio = SocketIOClient(
            reconnection=False, handle_sigint=False, http_session=self._new_http_session
        )
        recorder = self.recorder
        self._sio.on("connect", recorder.on_connect)
        self._sio.on("connect_error", recorder.on_connect_error)
        self._sio.on("disconnect", recorder.on_disconnect)
        self._sio.on("replay:messages", recorder.on_messages)
        self._sio.on("replay:subscribed", recorder.on_subscribed)
        self._sio.on("replay:unsubscribed", recorder.on_unsubscribed)
        self._sio.on("*", recorder.on_other)

    def __repr__(self) -> str:
        return f"<ReplayClient {self.name} {self.url} connected={self.connected}>"

    @property
    def connected(self) -> bool:
        """Connected, as far as the client knows."""
        return self.recorder.connected

    @property
    def max_batch(self) -> int | None:
        """The target's ``limits.max_batch``: no ``replay:messages`` may carry more (DLV-2)."""
        return self.recorder.book.max_batch

    @max_batch.setter
    def max_batch(self, value: int | None) -> None:
        self.recorder.book.max_batch = value

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
        self.recorder.connect_error = None
        self.recorder.connect_op = self.log.invoke(self.name, "connect", channel=None, payload=auth)
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
                error_args = self.recorder.connect_error or ()
                data: object = error_args[0] if len(error_args) == 1 else list(error_args)
                self.recorder.check("connect-error", "CON-2", data, "CONNECT_ERROR")
                raise ConnectRefused(data) from None
            await self._sio.disconnect()  # release the transport of a half-open attempt
            raise ConnectFailed(f"{self.name} could not connect to {self.url}: {exc}") from exc

    def _new_http_session(self) -> aiohttp.ClientSession:
        # engine.io leaves a factory-made session open when a connection dies (it treats it
        # as the caller's), so the client keeps them and closes those of ended connections.
        session = new_http_session()
        self._http_sessions.append(session)
        return session

    async def _close_http_sessions(self, keep_current: bool) -> None:
        current = self._sio.eio.http if keep_current else None
        for session in self._http_sessions:
            if session is not current and not session.closed:
                await session.close()
        self._http_sessions = [s for s in self._http_sessions if not s.closed]

    async def disconnect(self) -> None:
        """Disconnect cleanly (a Socket.IO DISCONNECT, then the transport closes)."""
        await self._sio.disconnect()
        self.recorder.connected = False

    async def close(self) -> None:
        """Disconnect if needed and release the transport; never raises."""
        # Clean-up must not mask the case's outcome.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._sio.disconnect()
        with contextlib.suppress(Exception):
            await self._close_http_sessions(keep_current=False)
        self.recorder.connected = False

    @property
    def sid(self) -> str | None:
        """The Socket.IO session id of the current connection."""
        sid: str | None = self._sio.get_sid("/")
        return sid

    # --- client events -----------------------------------------------------------------------

    async def request(
        self, event: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Emit ``event`` with one object; its reply, a dict (EVT-1) that knows what it answers."""
        reply = await self.emit_raw(event, payload, timeout=timeout)
        answer = reply if isinstance(reply, dict) else {"ok": None, "invalid_reply": reply}
        return Reply.to(event, payload, answer)

    async def subscribe(
        self,
        channel: str,
        from_: int | str | None = None,
        *,
        epoch: str | KnownEpoch | None = KNOWN,
        allow_truncation: bool | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``replay:subscribe``; ``None`` arguments are omitted from the payload. An integer
        ``from`` goes with the epoch the case has seen for the channel unless ``epoch`` says
        otherwise (``None``: none at all)."""
        sent_epoch = self.log.epoch_for(channel, from_, epoch)
        fields = {"from": from_, "epoch": sent_epoch, "allow_truncation": allow_truncation}
        payload = _compact(channel=channel, **fields)
        known = self.streams.get(channel)
        ended = known.subscriptions[-1:] if known is not None else []
        reply = await self.request("replay:subscribe", payload, timeout=timeout)
        if isinstance(reply, Reply) and _refused_again(ended, reply):
            reply.step = "UNS-4"  # what the refusal breaks, when the case relied on it
        return reply

    async def unsubscribe(self, channel: str, *, timeout: float | None = None) -> dict[str, Any]:
        """``replay:unsubscribe``."""
        return await self.request("replay:unsubscribe", {"channel": channel}, timeout=timeout)

    async def ack(
        self,
        channel: str,
        offset: int,
        *,
        epoch: str | KnownEpoch | None = KNOWN,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``replay:ack`` (feature ``cursors``), with the epoch the case has seen for the
        channel unless ``epoch`` says otherwise (``None``: none at all)."""
        sent_epoch = self.log.epoch_for(channel, offset, epoch)
        payload = _compact(channel=channel, offset=offset, epoch=sent_epoch)
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
        epoch: str | KnownEpoch | None = KNOWN,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``replay:history`` (feature ``history``); an integer ``from`` goes with an epoch as
        in :meth:`subscribe`."""
        sent_epoch = self.log.epoch_for(channel, from_, epoch)
        payload = _compact(channel=channel, limit=limit, epoch=sent_epoch, **{"from": from_})
        return await self.request("replay:history", payload, timeout=timeout)

    async def emit_raw(self, event: str, *args: object, timeout: float | None = None) -> Any:
        """Emit ``event`` with exactly ``args`` and an ack callback; return the ack.

        The ack is its single argument, or the list of its arguments when there are not
        exactly one. Raises :class:`NoReply` (EVT-1) when none arrives within the timeout,
        :class:`ConnectionLost` when the socket disconnects first.
        """
        channel = channel_of(args[0]) if len(args) == 1 else None
        shown: object = args[0] if len(args) == 1 else list(args)
        op = self.log.invoke(self.name, event, channel=channel, payload=shown)
        if not self.connected:
            self.recorder.complete(op, event, channel, "indeterminate", None)
            raise ConnectionLost(f"{self.name} is not connected; {event} not sent")
        pending = self.recorder.awaiting(op, event, channel, shown)
        await self._sio.emit(
            event, emit_data(args), callback=lambda *reply: self.recorder.on_reply(pending, reply)
        )
        limit = timeout or self.timeout
        try:
            async with asyncio.timeout(limit):
                reply = await asyncio.shield(pending.future)
        except TimeoutError:
            self.recorder.drop(pending, "indeterminate")
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
        await self._sio.emit(event, emit_data(args))

    # --- reading what arrived ------------------------------------------------------------------

    def stream(self, channel: str) -> Stream:
        """The :class:`Stream` of ``channel`` (empty if nothing arrived yet)."""
        return self.recorder.book.stream(channel)

    def subscription(self, channel: str) -> Span | None:
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
            changed = self.recorder.changed
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
        clause: str = "SUB-14",
    ) -> None:
        """Wait until a message with offset ``offset`` (or above) arrived on ``channel``; a
        case judging delivery names its clause, a step fails SUB-14 (delivery from ``from``)."""
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


def _refused_again(ended: list[Span], reply: dict[str, Any]) -> bool:
    """A subscribe refused ``already_subscribed`` after the socket's ok unsubscribe: being
    able to subscribe again is what UNS-4 promises."""
    error = reply.get("error") if reply.get("ok") is False else None
    code = error.get("code") if isinstance(error, dict) else None
    return bool(ended) and ended[0].end == "unsubscribe" and code == "already_subscribed"


def _compact(**fields: object) -> dict[str, Any]:
    """The fields that are not None (an omitted member, not a JSON null)."""
    return {key: value for key, value in fields.items() if value is not None}
