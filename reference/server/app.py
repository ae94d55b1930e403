"""Assemble a node: store, bus, aiohttp application and python-socketio server."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from reference.bus.base import Bus
from reference.core.model import Limits
from reference.server.compression import decline_websocket_compression
from reference.server.http_api import API_KEY, NODE_KEY, add_routes
from reference.server.node import ReplayNode
from reference.server.socket_api import ReplaySocketServer, SocketApi
from reference.server.wire import SocketJson
from reference.store.base import Store

#: The app's python-socketio server, for whoever needs to look at its sessions (tests do).
SOCKETS_KEY = web.AppKey("socketio_server", ReplaySocketServer)


@dataclass(frozen=True)
class ServerOptions:
    """Tunables of one node; the defaults are what ``replay-reference`` serves."""

    api_key: str
    limits: Limits = field(default_factory=Limits)
    cors_allowed_origins: str | list[str] = "*"
    ping_interval_s: float = 25.0
    ping_timeout_s: float = 20.0
    #: permessage-deflate on WebSockets; off by default (see ``reference.server.compression``)
    websocket_compression: bool = False


def transport_buffer_bytes(limits: Limits) -> int:
    """The HTTP body limit and Engine.IO's packet limit: at least API-8's minimum (any valid
    request fits however it is escaped) and above TRN-7's bound, so oversized data gets a
    typed ``payload_too_large`` instead of a closed connection."""
    return 6 * limits.max_payload_bytes + 64 * 1024


def build_app(store: Store, options: ServerOptions, bus: Bus | None = None) -> web.Application:
    """An aiohttp application serving the HTTP API and Socket.IO on one port.

    The store is opened on startup and closed on cleanup.
    """
    node = ReplayNode(store, limits=options.limits, bus=bus)
    sio = ReplaySocketServer(
        async_mode="aiohttp",
        async_handlers=False,  # one socket's events in order (EVT-2); see socket_api
        cors_allowed_origins=options.cors_allowed_origins,
        max_http_buffer_size=transport_buffer_bytes(options.limits),
        ping_interval=options.ping_interval_s,
        ping_timeout=options.ping_timeout_s,
        json=SocketJson,
    )
    if not options.websocket_compression:
        decline_websocket_compression(sio)
    SocketApi(node, sio)
    # No middleware: one would stay suspended under each socket's request (see http_api)
    app = web.Application(client_max_size=transport_buffer_bytes(options.limits))
    app[NODE_KEY] = node
    app[API_KEY] = options.api_key
    app[SOCKETS_KEY] = sio
    add_routes(app)
    sio.attach(app)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        await node.start()
        yield
        await node.stop()

    app.cleanup_ctx.append(lifecycle)

    async def close_sessions(app: web.Application) -> None:
        # Before aiohttp waits for requests in flight: long-polling GETs get their answer.
        await sio.eio.close_every_session()

    app.on_shutdown.append(close_sessions)
    return app
