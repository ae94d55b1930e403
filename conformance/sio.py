"""python-socketio's client, adapted to what the suite must be able to send.

The stock client always sends an auth object and spreads a tuple into several arguments; a
conformance suite must send exactly what a case asks for, malformed payloads included (CON-2,
EVT-1).
"""

from __future__ import annotations

import aiohttp
import socketio
from socketio import packet

__all__ = ["SocketIOClient", "emit_data", "new_http_session"]


class SocketIOClient(socketio.AsyncClient):  # type: ignore[misc]
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


def new_http_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


def emit_data(args: tuple[object, ...]) -> object:
    """What to hand python-socketio's ``emit`` so that exactly ``args`` are sent."""
    if not args:
        return None
    if len(args) > 1:
        return args  # a tuple is spread into several arguments
    # A lone tuple would be spread too: send it as the one JSON array it stands for.
    return list(args[0]) if isinstance(args[0], tuple) else args[0]
