"""Closing peers that send what no standard client sends, with one short log line each.

python-engineio and python-socketio log a traceback at error level for every frame they cannot
decode and mostly keep the connection: 1,200 hostile connections wrote about 6,000 tracebacks.
The checks are pure (``reference.core.frames``); this module applies them where the libraries
take input in, through the hooks they offer for swapping parts: the Engine.IO server class
(``socketio.AsyncServer._engineio_server_class``), its async driver (``_async``: how a request
is read and a WebSocket received from) and the Socket.IO packet class (``serializer=``). They
are private, so tests/test_hostile_peers.py pins what each one is relied on for.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from contextvars import ContextVar
from typing import Any

import engineio
import socketio
from engineio.async_drivers import aiohttp as engineio_aiohttp

from reference.core.frames import (
    MalformedPacket,
    engine_frame_problem,
    polling_body_problem,
    socket_packet_problem,
)

log = logging.getLogger(__name__)

#: The Engine.IO session whose long-polling POST is being handled (and tasks it spawned).
_POSTING: ContextVar[str | None] = ContextVar("posting", default=None)


def log_refused(peer: object, problem: str) -> None:
    """The one line a refused peer gets: a warning, no traceback."""
    log.warning("closing a peer that sent %s", problem, extra={"peer": str(peer)[:40]})


class RefusedFrame(engineio.exceptions.EngineIOError):  # type: ignore[misc]  # untyped
    """Raised inside python-engineio, which then closes the session and answers 400."""


async def close_now(server: Any, sid: str) -> None:
    """Close an Engine.IO session without waiting for its send queue to drain.

    python-engineio's ``disconnect`` waits for the queue, which for a long-polling peer only
    drains on its next GET: the POST that brought the bad packet would hang until the ping
    timeout. The session's end then ends its queue (``GuardedEngineServer._trigger_event``),
    which answers a waiting GET and ends a WebSocket's writer, and so the connection.
    """
    socket = server.sockets.get(sid)
    if socket is not None and not socket.closed:
        await socket.close(wait=False)


class GuardedBody:
    """A long-polling POST body, checked before python-engineio decodes it."""

    def __init__(self, body: Any, server: Any, query: str) -> None:
        self._body = body
        self._server = server
        self._sid = urllib.parse.parse_qs(query).get("sid", ["?"])[0]

    async def read(self, length: int = -1) -> bytes:
        data: bytes = await self._body.read(length)
        problem = polling_body_problem(data)
        if problem is not None:
            log_refused(self._sid, problem)
            await close_now(self._server, self._sid)
            raise RefusedFrame(problem)  # python-engineio answers 400
        return data


class GuardedWebSocket(engineio_aiohttp.WebSocket):  # type: ignore[misc]  # untyped
    """python-engineio's aiohttp WebSocket, but a frame it could not decode ends the connection.

    python-engineio decodes a received frame outside its error handling, so an empty frame or
    a packet type that is not a digit escapes its handler with a traceback; ``OSError`` from
    ``wait`` is what it treats as the connection closing, quietly.
    """

    async def wait(self) -> str | bytes:
        frame: str | bytes = await super().wait()
        problem = engine_frame_problem(frame)
        if problem is not None:
            log_refused(getattr(getattr(self.handler, "__self__", None), "sid", "?"), problem)
            raise OSError(problem)
        return frame


class FirstTimeAsInfo(logging.Filter):
    """python-engineio logs the first bad request of each kind (an unknown session id, a bad
    transport or version) at error level, then at info: a peer's mistake, not the server's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and str(record.msg).endswith(_FIRST_TIME_SUFFIX):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_FIRST_TIME_SUFFIX = "(further occurrences of this error will be logged with level INFO)"


class GuardedEngineServer(engineio.AsyncServer):  # type: ignore[misc]  # untyped
    """python-engineio's server reading requests and WebSocket frames through the guards."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        logger: logging.Logger = self.logger
        if not any(isinstance(f, FirstTimeAsInfo) for f in logger.filters):
            logger.addFilter(FirstTimeAsInfo())
        drivers: dict[str, Any] = self._async  # type: ignore[has-type]  # set in engineio
        if drivers.get("translate_request") is engineio_aiohttp.translate_request:
            self._async = {
                **drivers,
                "translate_request": self._translate_request,
                "websocket": GuardedWebSocket,
            }

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        """python-engineio answers a POST for a session that is closed but not yet swept with
        an uncaught KeyError (a 500 and a traceback); sweeping it first makes that a 400."""
        request = args[0] if args else None
        sid = request.query.get("sid") if request is not None else None
        socket = self.sockets.get(sid) if sid else None
        if socket is not None and socket.closed:
            self.sockets.pop(sid, None)
        posting = _POSTING.set(sid if request is not None and request.method == "POST" else None)
        try:
            return await super().handle_request(*args, **kwargs)
        finally:
            _POSTING.reset(posting)

    async def disconnect(self, sid: str | None = None) -> None:
        """python-engineio closes a session whose POST it refused (a body over the size limit,
        a packet it does not know) and waits for its send queue to drain: over long-polling
        that is the peer's next GET, which a broken peer never sends, so the POST hung until
        the ping timeout. That session is closed without waiting; every other disconnect is
        python-engineio's."""
        if sid is None or sid != _POSTING.get():
            await super().disconnect(sid)
            return
        await close_now(self, sid)
        self.sockets.pop(sid, None)

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        """After a session's disconnect handlers, end its queue, so that a long-polling GET
        waiting on it is answered. A client that closes over long-polling (socket.io-client's
        ``close()`` POSTs a CLOSE while its GET waits) left that GET, and one handler, waiting
        out the ping interval and timeout, and the server's graceful shutdown with it."""
        result = await super()._trigger_event(event, *args, **kwargs)
        socket = self.sockets.get(args[0]) if event == "disconnect" and args else None
        if socket is not None:
            # After close() has queued its CLOSE packet, which the GET should still carry
            asyncio.get_running_loop().call_soon(socket.queue.put_nowait, None)
        return result

    async def close_every_session(self) -> None:
        """Close every session now (the server is shutting down): a long-polling GET waiting
        for packets is answered, so the web server's graceful shutdown does not wait out the
        ping interval for it."""
        for sid in list(self.sockets):
            await close_now(self, sid)

    def _translate_request(self, request: Any) -> dict[str, Any]:
        environ: dict[str, Any] = engineio_aiohttp.translate_request(request)
        environ["wsgi.input"] = GuardedBody(environ["wsgi.input"], self, environ["QUERY_STRING"])
        return environ


class GuardedPacket(socketio.packet.Packet):  # type: ignore[misc]  # untyped
    """A Socket.IO packet that raises ``MalformedPacket`` for what no client sends."""

    def decode(self, encoded_packet: str | bytes) -> int:
        if not isinstance(encoded_packet, str):
            raise MalformedPacket("a binary frame outside a binary packet")
        try:
            attachments = int(super().decode(encoded_packet) or 0)
        except (ValueError, TypeError, IndexError, KeyError):
            raise MalformedPacket("an undecodable Socket.IO packet") from None
        problem = socket_packet_problem(self.packet_type, attachments, self.data)
        if problem is not None:
            raise MalformedPacket(problem)
        return attachments
