"""A bare python-socketio server for ``transports.py``: no replay logic, one transport.

    python bench/_bare_server.py --transport aiohttp --api-key KEY
    python bench/_bare_server.py --transport wsproto --api-key KEY   # ASGI under uvicorn

A socket connects with ``auth: {token: KEY}`` (refused otherwise) and joins the room named in
its handshake query (``?room=``); ``POST /publish/{room}`` with ``{"data": ...}`` emits
``message`` to the room and answers 201: the stock peer's shape (``bench/node/peer.mjs``), so
the Node load scripts drive it as the ``bare`` kind. WebSocket compression is declined, as the
reference and the stock peer do. The first line printed ends with the URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import socketio
from aiohttp import web

from reference.server.compression import decline_websocket_compression

#: --transport: how python-socketio is served; all but aiohttp are uvicorn's ``ws`` choices
TRANSPORTS = ("aiohttp", "websockets", "websockets-sansio", "wsproto")
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]


def socket_server(async_mode: str, api_key: str) -> socketio.AsyncServer:
    """The Socket.IO side: check the token, join the room from the query."""
    sio = socketio.AsyncServer(async_mode=async_mode, cors_allowed_origins="*")

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        if not isinstance(auth, dict) or auth.get("token") != api_key:
            return False
        rooms = parse_qs(environ.get("QUERY_STRING", "")).get("room")
        if rooms:
            await sio.enter_room(sid, rooms[0])
        return True

    return sio


async def serve_aiohttp(api_key: str, host: str) -> None:
    sio = socket_server("aiohttp", api_key)
    decline_websocket_compression(sio)

    async def publish(request: web.Request) -> web.Response:
        body = await request.json()
        await sio.emit("message", body["data"], room=request.match_info["room"])
        return web.json_response({}, status=201)

    app = web.Application()
    app.router.add_post("/publish/{room}", publish)
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    print(
        f"bare python-socketio (aiohttp) listening on http://{host}:{runner.addresses[0][1]}",
        flush=True,
    )
    await asyncio.Event().wait()


async def serve_uvicorn(api_key: str, host: str, ws: str) -> None:
    import uvicorn  # the bench extra

    sio = socket_server("asgi", api_key)

    async def publish(scope: dict[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        room = scope["path"].removeprefix("/publish/")
        await sio.emit("message", json.loads(body)["data"], room=room)
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    app = socketio.ASGIApp(sio, other_asgi_app=publish)
    config = uvicorn.Config(
        app, ws=ws, http="h11", loop="asyncio", lifespan="off", log_level="warning",
        ws_per_message_deflate=False, access_log=False,
    )  # fmt: skip
    listener = socket.create_server((host, 0))  # bound and listening before the URL is printed
    print(f"bare python-socketio (uvicorn, {ws}) listening on"
          f" http://{host}:{listener.getsockname()[1]}", flush=True)  # fmt: skip
    await uvicorn.Server(config).serve(sockets=[listener])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=TRANSPORTS, default="aiohttp")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    if args.transport == "aiohttp":
        coroutine = serve_aiohttp(args.api_key, args.host)
    else:
        coroutine = serve_uvicorn(args.api_key, args.host, args.transport)
    asyncio.run(coroutine)


if __name__ == "__main__":
    main()
