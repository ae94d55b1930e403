"""Serve the reference in-process for end-to-end tests, and a small recording client.

The conformance suite has its own, richer client; this one stays deliberately small so that
tests of the reference do not depend on the suite (and the reverse).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import socketio
from aiohttp import web

from reference.bus.base import Bus
from reference.core.model import Limits
from reference.server.app import ServerOptions, build_app
from reference.store.base import Store
from reference.store.memory import MemoryStore

API_KEY = "test-api-key"
ALL_ACTIONS = ["subscribe", "publish", "history"]


@dataclass
class Served:
    """A running reference node and an HTTP session for its backend API."""

    url: str
    http: aiohttp.ClientSession
    store: Store
    app: web.Application
    clients: list[Client] = field(default_factory=list)

    async def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with self.http.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            text = await response.text()
            return response.status, (await response.json() if text else None)

    async def publish(self, channel: str, data: object, message_id: str | None = None) -> Any:
        body: dict[str, object] = {"data": data}
        if message_id is not None:
            body["id"] = message_id
        status, reply = await self.call(
            "POST", f"/replay/v1/channels/{quote(channel, safe='')}/messages", body
        )
        assert status in (200, 201), reply
        return reply

    async def register(
        self,
        grants: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body = {
            "client_id": "tester",
            "grants": grants or [{"channels": "*", "actions": ALL_ACTIONS}],
        }
        status, reply = await self.call("POST", "/replay/v1/sessions", body | extra)
        assert status in (200, 201), reply
        return reply  # type: ignore[no-any-return]

    async def client(
        self, token: str | None = None, url: str | None = None, **register: Any
    ) -> Client:
        """A connected client; registers a session with ``register`` unless given a token."""
        if token is None:
            token = (await self.register(**register))["token"]
        client = Client()
        await client.connect(url or self.url, token)
        self.clients.append(client)
        return client


class ConnectRefused(Exception):
    """The server answered CONNECT with CONNECT_ERROR; ``str()`` is its message."""


class Client:
    """A python-socketio client that records what the server sends, in arrival order."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.messages: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.events: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        self._changed = asyncio.Event()
        self.sio.on("replay:messages", self._on_messages)
        self.sio.on("replay:subscribed", lambda data: self._record("replay:subscribed", data))
        self.sio.on("replay:unsubscribed", lambda data: self._record("replay:unsubscribed", data))
        self.sio.on("disconnect", self._on_disconnect)
        self.connect_error: Any = None
        self.sio.on("connect_error", self._on_connect_error)

    def _record(self, name: str, data: Any) -> None:
        self.events.append((name, data))
        self._changed.set()

    def _on_messages(self, data: dict[str, Any]) -> None:
        self.messages[data["channel"]].extend(data["messages"])
        self._record("replay:messages", data)

    def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnected.set()

    def _on_connect_error(self, data: Any = None) -> None:
        self.connect_error = data

    async def connect(self, url: str, token: str | None, **auth: Any) -> None:
        """Connect, or raise ``ConnectRefused`` with the server's CONNECT_ERROR message."""
        payload = {"token": token, **auth} if token is not None else auth
        try:
            await self.sio.connect(url, auth=payload, transports=["websocket"], wait_timeout=5)
        except socketio.exceptions.ConnectionError as exc:
            message = (
                self.connect_error.get("message") if isinstance(self.connect_error, dict) else None
            )
            raise ConnectRefused(str(message or exc)) from exc

    async def call(self, event: str, *args: Any, timeout: float = 5) -> Any:
        """Emit ``args`` as the event's arguments with an ack; return (and log) the reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ack(*reply: Any) -> None:
            if not future.done():
                future.set_result(reply[0] if len(reply) == 1 else list(reply))
                self._record(f"reply:{event}", future.result())

        # python-socketio sends a tuple as several arguments and anything else as one.
        data = args[0] if len(args) == 1 and not isinstance(args[0], tuple) else args
        await self.sio.emit(event, data, callback=on_ack)
        return await asyncio.wait_for(future, timeout)

    def offsets(self, channel: str) -> list[int]:
        return [m["offset"] for m in self.messages[channel]]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_offset(self, channel: str, offset: int, timeout: float = 5) -> None:
        await self.wait_until(lambda: offset in self.offsets(channel), timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


@contextlib.asynccontextmanager
async def serve(
    store: Store | None = None,
    *,
    limits: Limits | None = None,
    bus: Bus | None = None,
    ping_interval_s: float = 25.0,
    ping_timeout_s: float = 20.0,
    websocket_compression: bool = False,
    setup: Callable[[web.Application], None] | None = None,
) -> AsyncIterator[Served]:
    """Run a reference node on a free port for the duration of the block."""
    store = store or MemoryStore()
    options = ServerOptions(
        api_key=API_KEY,
        limits=limits or Limits(),
        ping_interval_s=ping_interval_s,
        ping_timeout_s=ping_timeout_s,
        websocket_compression=websocket_compression,
    )
    app = build_app(store, options, bus=bus)
    if setup is not None:
        setup(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        served = Served(f"http://127.0.0.1:{port}", http, store, app)
        try:
            yield served
        finally:
            for client in served.clients:
                await client.close()
            await runner.cleanup()
