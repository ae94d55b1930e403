"""WebSocket compression (permessage-deflate, RFC 7692): off unless the operator asks for it.

socket.io-client offers permessage-deflate on every WebSocket, and aiohttp accepts any offer,
so every frame the reference sent was deflated once per socket: the live fan-out benchmark
spent most of its time in zlib, and each socket held a compressor and a decompressor (most of
the 130 KiB per socket that ``bench/memory.py`` measured). The stock Node.js server has the
same extension off by default (engine.io's ``perMessageDeflate: false``) for the same reasons.

python-engineio builds its ``WebSocketResponse`` itself, with no option for ``compress``; the
server is given its own WebSocket wrapper instead, which builds the response with
``compress=False``, so the handshake answers without the extension and both sides send plain
frames (RFC 7692 §5: a server declines by leaving it out). This replaced a middleware that
handed on a copy of the upgrade request without the offer: the copy and the middleware's
coroutine stayed alive for each socket's whole life (``bench/memory_profile.py``). The
wrapper extends the guarded one (``peer_guard``), so declining compression keeps the checks on
every received frame.
"""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

from reference.server.peer_guard import GuardedWebSocket


class PlainWebSocket(GuardedWebSocket):
    """The guarded WebSocket, answering the handshake without compression."""

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        response = web.WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await response.prepare(environ["aiohttp.request"])
        self._sock, self.environ = response, environ
        await self.handler(self)
        return response


def decline_websocket_compression(sio: socketio.AsyncServer) -> None:
    """Make ``sio`` (async_mode "aiohttp") accept WebSockets without permessage-deflate."""
    # engineio looks its WebSocket class up in this per-server table on every upgrade
    sio.eio._async = {**sio.eio._async, "websocket": PlainWebSocket}
